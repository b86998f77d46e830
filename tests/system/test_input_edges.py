"""Odd input at the edges: each is a clear 4xx before any work, never a billed call that fails."""

from __future__ import annotations

import logging
import time

import pytest
import requests

from tests.support.service import API_KEY

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def test_lone_surrogate_in_a_prompt_is_a_400_naming_the_field(service, fake_ai):
    raw = '{"messages": [{"role": "user", "content": "a fox \\ud800"}]}'
    response = requests.post(
        service.url + "/v1/chat/completions",
        data=raw,
        headers={**AUTH, "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages"
    assert fake_ai.calls == []


def _chunked_body(size: int):
    yield b'{"messages": [{"role": "user", "content": "'
    for _ in range(size // 1000):
        yield b"a" * 1000
    yield b'"}]}'


@pytest.mark.parametrize("runner", ["werkzeug", "gunicorn"])
def test_chunked_body_over_the_limit_is_a_413_naming_the_setting(
    runner, start_service, gunicorn, service_env, fake_ai
):
    url = start_service().url if runner == "werkzeug" else gunicorn(service_env, workers=1).url
    response = requests.post(
        url + "/v1/chat/completions", data=_chunked_body(100_000), headers=AUTH, timeout=10
    )
    assert response.status_code == 413
    message = response.json()["error"]["message"]
    assert "MAX_BODY_KB" in message and "64 KB" in message
    assert fake_ai.calls == []


def test_chunked_body_under_the_limit_is_read_whole(service, fake_ai):
    response = requests.post(
        service.url + "/v1/chat/completions", data=_chunked_body(1_500), headers=AUTH, timeout=10
    )
    assert response.status_code == 200


@pytest.mark.parametrize("host", ["a.com)![x](y", "exämple.com", "a..b", "x:99999", "a b"])
def test_a_host_that_is_not_a_host_name_is_a_400_before_any_call(service, fake_ai, host):
    response = requests.post(
        service.url + "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "a fox"}]},
        headers={**AUTH, "Host": host.encode("utf-8")},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"]  # ours naming PUBLIC_BASE_URL, or werkzeug's
    assert fake_ai.calls == []
    if host == "a.com)![x](y":
        assert "PUBLIC_BASE_URL" in response.json()["error"]["message"]


def test_public_base_url_makes_the_host_irrelevant(start_service, fake_ai):
    service = start_service(PUBLIC_BASE_URL="https://img.example.com")
    response = requests.post(
        service.url + "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "a fox"}]},
        headers={**AUTH, "Host": "a.com)![x](y"},
        timeout=10,
    )
    assert response.status_code == 200
    assert "](https://img.example.com/image/" in response.json()["choices"][0]["message"]["content"]


def test_a_docker_service_host_warns_once_naming_public_base_url(
    service, fake_ai, caplog, monkeypatch
):
    monkeypatch.setattr("flux_api.web.hosts._warned", False)
    caplog.set_level(logging.WARNING, logger="flux_api.web.hosts")
    for _ in range(3):
        response = service.chat("a fox", headers={"Host": "flux-api:8000"})
        assert response.status_code == 200
        assert (
            "](http://flux-api:8000/image/" in response.json()["choices"][0]["message"]["content"]
        )
    warnings = [r.getMessage() for r in caplog.records if r.name == "flux_api.web.hosts"]
    assert len(warnings) == 1 and "PUBLIC_BASE_URL" in warnings[0]


def test_a_public_host_does_not_warn(service, fake_ai, caplog, monkeypatch):
    monkeypatch.setattr("flux_api.web.hosts._warned", False)
    caplog.set_level(logging.WARNING, logger="flux_api.web.hosts")
    assert service.chat("a fox", headers={"Host": "img.example.com"}).status_code == 200
    assert service.chat("a fox", headers={"Host": "localhost:8000"}).status_code == 200
    assert [r for r in caplog.records if r.name == "flux_api.web.hosts"] == []


def test_healthz_shows_the_image_count_to_the_operator_only(service, fake_ai):
    assert service.chat("a fox").status_code == 200
    anonymous = service.get("/healthz", key=None).json()
    assert anonymous["status"] == "ok" and "images_stored" not in anonymous
    assert service.get("/healthz", key="sk-wrong").json().get("images_stored") is None
    assert service.get("/healthz").json()["images_stored"] == 1


def test_a_request_whose_client_stayed_is_logged_with_its_status(service, fake_ai, caplog):
    """The client closing its connection after the answer is normal: not a 499."""
    caplog.set_level(logging.INFO, logger="flux_api.access")
    assert service.chat("a fox").status_code == 200
    deadline = time.monotonic() + 5
    while not (lines := [r.getMessage() for r in caplog.records if r.name == "flux_api.access"]):
        assert time.monotonic() < deadline, "no access line"  # written once the body is sent
        time.sleep(0.02)
    assert "status=200" in lines[0] and "499" not in lines[0]
