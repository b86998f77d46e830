"""Every Workers AI failure class becomes a precise OpenAI error; retries only where they help."""

import time
from datetime import UTC, datetime

import pytest

from tests.support.fakes.workers_ai import Scripted
from tests.support.upstream_failures import CASES


@pytest.mark.parametrize("scripted, status, code, words", CASES)
def test_upstream_error_classes(service, fake_ai, scripted, status, code, words):
    fake_ai.script(scripted)
    response = service.chat("a fox")
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert words in error["message"]
    # Not retried by the service, and a repeat could bill again: the SDK must not repeat it.
    assert response.headers.get("x-should-retry") == "false"
    assert len(fake_ai.calls) == 1  # none of these is retried


def test_bad_token_is_a_502_naming_cf_api_token_never_a_401(start_service, fake_ai):
    service = start_service(CF_API_TOKEN="wrong-token")
    response = service.chat("a fox")
    assert response.status_code == 502
    assert "CF_API_TOKEN" in response.json()["error"]["message"]


def test_bad_account_is_a_502_naming_cf_account_id(start_service, fake_ai):
    service = start_service(CF_ACCOUNT_ID="not-my-account")
    response = service.chat("a fox")
    assert response.status_code == 502
    assert "CF_ACCOUNT_ID" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "transient",
    [
        Scripted(429, 3040, "AiError: Capacity temporarily exceeded, please try again."),
        Scripted(429, 0, "Too many requests"),
        Scripted(503, mode="raw_text"),
        Scripted(502, mode="raw_text"),
    ],
)
def test_transient_failures_are_retried_and_can_succeed(service, fake_ai, transient):
    fake_ai.script(transient, transient)
    response = service.chat("a fox")
    assert response.status_code == 200
    assert len(fake_ai.calls) == 3


def test_capacity_errors_give_up_after_three_tries(service, fake_ai):
    capacity = Scripted(429, 3040, "AiError: Capacity temporarily exceeded, please try again.")
    fake_ai.script(capacity, capacity, capacity, capacity)
    response = service.chat("a fox")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "upstream_unavailable"
    assert response.headers["x-should-retry"] == "false"  # already retried here
    assert len(fake_ai.calls) == 3


def test_rate_limit_after_retries_is_a_429_rate_limit_exceeded(service, fake_ai):
    limited = Scripted(429, 0, "Too many requests")
    fake_ai.script(limited, limited, limited)
    response = service.chat("a fox")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limit_exceeded"


def test_connection_refused_is_retried_then_503(start_service):
    service = start_service(CF_API_BASE="http://127.0.0.1:9/client/v4/accounts/{account_id}/ai/run")
    response = service.chat("a fox")
    assert response.status_code == 503
    assert "could not connect" in response.json()["error"]["message"]


def test_read_timeout_is_a_504_after_upstream_timeout_and_not_retried(start_service, fake_ai):
    service = start_service(UPSTREAM_TIMEOUT="0.5")
    fake_ai.latency = 2
    started = time.monotonic()
    response = service.chat("a fox")
    elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert response.headers["x-should-retry"] == "false"
    assert "0.5 s" in response.json()["error"]["message"]
    assert 0.5 <= elapsed < 1.9
    assert len(fake_ai.calls) == 1


def test_service_is_healthy_after_an_upstream_failure(service, fake_ai):
    fake_ai.script(Scripted(mode="html"))
    assert service.chat("a fox").status_code == 502
    assert service.chat("a fox").status_code == 200


def test_bare_504_is_a_timeout_and_not_retried(service, fake_ai):
    """A proxy's 504 means it gave up waiting: the generation may still run and be billed."""
    fake_ai.script(Scripted(504, mode="raw_text"), Scripted(504, mode="raw_text"))
    response = service.chat("a fox")
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"
    assert response.headers["x-should-retry"] == "false"
    assert len(fake_ai.calls) == 1


def test_cloudflare_retry_after_is_passed_on(start_service, fake_ai):
    service = start_service(UPSTREAM_TIMEOUT="5")  # too short to wait 17 s for a retry
    limited = Scripted(429, 0, "Too many requests", headers={"Retry-After": "17"})
    fake_ai.script(limited, limited, limited)
    response = service.chat("a fox")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "17"
    assert response.headers["x-should-retry"] == "false"


def test_daily_quota_says_when_it_resets(service, fake_ai):
    fake_ai.script(Scripted(429, 4006, "AiError: you have used up your daily free allocation"))
    response = service.chat("a fox")
    now = datetime.now(UTC)
    to_midnight = 86400 - (now.hour * 3600 + now.minute * 60 + now.second)
    assert response.status_code == 429
    assert abs(int(response.headers["Retry-After"]) - to_midnight) <= 2


def test_a_quota_message_without_the_code_is_still_the_quota(service, fake_ai):
    fake_ai.script(Scripted(429, 0, "you have used up your daily free allocation of neurons"))
    response = service.chat("a fox")
    assert response.json()["error"]["code"] == "insufficient_quota"
    assert len(fake_ai.calls) == 1  # not retried like a plain rate limit


def test_tls_failure_says_tls(start_service, fake_ai, caplog):
    """An https:// CF_API_BASE whose server does not speak TLS (here: plain HTTP)."""
    https_base = fake_ai.url.replace("http://", "https://")
    service = start_service(CF_API_BASE=f"{https_base}/client/v4/accounts/{{account_id}}/ai/run")
    response = service.chat("a fox")
    error = response.json()["error"]
    assert response.status_code == 502 and error["code"] == "upstream_tls_error"
    assert "TLS" in error["message"] and "CF_API_BASE" in error["message"]
    assert response.headers["x-should-retry"] == "false"
    assert any("tls_failed" in record.getMessage() for record in caplog.records)


def test_a_cut_off_raw_image_is_not_served(service, fake_ai):
    """Raw-bytes models (SDXL here): the first half of a JPEG is not an image."""
    fake_ai.script(Scripted(mode="half_image"))
    response = service.post(
        "/v1/images/generations",
        {"prompt": "a fox", "model": "@cf/bytedance/stable-diffusion-xl-lightning"},
    )
    assert response.status_code == 502
    assert "cut off" in response.json()["error"]["message"]
