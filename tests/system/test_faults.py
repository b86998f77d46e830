"""Fault injection: every upstream failure, through every delivery (chat, stream, images).

Each fault must end in its documented error (in-band for a stream, whose status is already 200)
or in a recovery, and leave the service healthy: the next request through the same delivery
succeeds, and no thread is left waiting on Workers AI.
"""

from __future__ import annotations

import sys
import time

import pytest

from tests.support.deliveries import DELIVERIES, Outcome, deliver
from tests.support.fakes.workers_ai import Scripted
from tests.support.upstream_failures import CASES


def assert_failed(outcome: Outcome, delivery: str, status: int, code: str) -> None:
    assert outcome.error is not None and outcome.error["code"] == code, outcome
    assert outcome.status == (200 if delivery == "stream" else status)
    assert outcome.error["message"] and "Traceback" not in outcome.text


def assert_succeeded(outcome: Outcome) -> None:
    assert outcome.status == 200 and outcome.error is None, outcome
    assert "/image/" in outcome.text or "b64_json" in outcome.text


def threads_calling_workers_ai() -> list[str]:
    """Names of this process's threads (the in-process service's) inside a Workers AI call."""
    import threading

    names = {thread.ident: thread.name for thread in threading.enumerate()}
    busy = []
    for ident, frame in sys._current_frames().items():
        while frame is not None:
            if frame.f_code.co_name == "call_once" and "workers_ai" in frame.f_code.co_filename:
                busy.append(names.get(ident, str(ident)))
                break
            frame = frame.f_back
    return busy


def assert_healthy_after(service, delivery: str) -> None:
    assert_succeeded(deliver(service, delivery))
    deadline = time.monotonic() + 2
    while threads_calling_workers_ai() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threads_calling_workers_ai() == []


@pytest.mark.parametrize("delivery", DELIVERIES)
@pytest.mark.parametrize(
    "scripted, status, code",
    [(case[0], case[1], case[2]) for case in CASES],
    ids=[f"{case[0].code or case[0].mode}-{case[2]}" for case in CASES],
)
def test_every_cloudflare_error_class(service, fake_ai, delivery, scripted, status, code):
    fake_ai.script(scripted)
    assert_failed(deliver(service, delivery), delivery, status, code)
    assert len(fake_ai.calls) == 1  # none of these is worth a retry
    if code == "insufficient_quota":  # the only account is parked until 00:00 UTC: a 429
        again = service.chat("a fox", stream=delivery == "stream")  # before any work, even a
        assert again.status_code == 429  # stream's first byte
        assert again.json()["error"]["code"] == code
        assert len(fake_ai.calls) == 1
        return
    assert_healthy_after(service, delivery)


@pytest.mark.parametrize("delivery", DELIVERIES)
def test_read_timeout_is_a_504_and_leaves_no_thread_waiting(start_service, fake_ai, delivery):
    service = start_service(UPSTREAM_TIMEOUT="0.5")
    fake_ai.latency = 2
    started = time.monotonic()
    outcome = deliver(service, delivery)
    assert time.monotonic() - started < 1.9  # gave up at UPSTREAM_TIMEOUT, not at the answer
    assert_failed(outcome, delivery, 504, "upstream_timeout")
    assert threads_calling_workers_ai() == []
    fake_ai.latency = 0
    assert_healthy_after(service, delivery)


@pytest.mark.parametrize("delivery", DELIVERIES)
def test_connection_refused_is_a_503(start_service, fake_ai, delivery):
    service = start_service(CF_API_BASE="http://127.0.0.1:9/client/v4/accounts/{account_id}/ai/run")
    assert_failed(deliver(service, delivery), delivery, 503, "upstream_unavailable")


@pytest.mark.parametrize("delivery", DELIVERIES)
def test_connection_reset_mid_answer_is_a_502(service, fake_ai, delivery):
    fake_ai.script(Scripted(mode="reset"))
    outcome = deliver(service, delivery)
    assert_failed(outcome, delivery, 502, "upstream_error")
    assert (
        "connection" in outcome.error["message"] or "could not be read" in outcome.error["message"]
    )
    assert len(fake_ai.calls) == 1  # the request was sent: a retry could bill twice
    assert_healthy_after(service, delivery)


@pytest.mark.parametrize("delivery", DELIVERIES)
def test_capacity_errors_that_clear_after_two_retries_succeed(service, fake_ai, delivery):
    capacity = Scripted(429, 3040, "AiError: Capacity temporarily exceeded, please try again.")
    fake_ai.script(capacity, capacity)
    assert_succeeded(deliver(service, delivery))
    assert len(fake_ai.calls) == 3


@pytest.mark.parametrize("delivery", DELIVERIES)
@pytest.mark.parametrize("mode", ["hang", "error", "empty", "garbage", "enormous"])
def test_optimizer_faults_fall_back_or_cut_and_still_generate(
    start_service, optimizer_env, fake_ai, fake_optimizer, delivery, mode
):
    service = start_service(**optimizer_env)  # OPTIMIZER_TIMEOUT is 1 s
    fake_optimizer.mode = mode
    started = time.monotonic()
    outcome = deliver(service, delivery)
    assert time.monotonic() - started < 2.5
    assert_succeeded(outcome)
    sent = fake_ai.calls[-1]["fields"]["prompt"]
    if mode == "enormous":
        assert 0 < len(sent) <= 2048  # cut to the model's limit
    else:
        assert sent == "a fox"  # the prompt as written
    fake_optimizer.mode = "ok"
    assert_healthy_after(service, delivery)
