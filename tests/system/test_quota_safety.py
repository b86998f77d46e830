"""Never spend the operator's quota for nothing, through the real gunicorn and the openai SDK
with its default retries: no call billed twice, none for a client that has left, and deadlines
that bound the whole request."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import openai
import pytest
import requests

from tests.support.fakes.workers_ai import Scripted
from tests.support.service import API_KEY, read_sse

CAPACITY = Scripted(429, 3040, "AiError: Capacity temporarily exceeded, please try again.")

# fault, Workers AI requests one default SDK call may cause (the SDK itself would try 3 times)
FAULTS = [
    pytest.param(Scripted(mode="drop"), 1, id="dropped-after-request-sent"),
    pytest.param(Scripted(mode="hang"), 1, id="read-timeout"),
    pytest.param(Scripted(504, mode="raw_text"), 1, id="bare-504"),
    pytest.param(Scripted(408, 3007, "AiError: timeout"), 1, id="3007-timeout"),
    pytest.param(Scripted(mode="html"), 1, id="html-instead-of-image"),
    pytest.param(CAPACITY, 3, id="3040-capacity"),
    pytest.param(Scripted(429, 0, "Too many requests"), 3, id="plain-429"),
    pytest.param(Scripted(503, mode="raw_text"), 3, id="bare-503"),
    pytest.param(Scripted(500, 9999, "something new"), 1, id="500"),
]


@pytest.fixture
def served(gunicorn, service_env):
    def start(**overrides):
        return gunicorn({**service_env, **overrides}, workers=1)

    return start


@pytest.mark.parametrize("fault, expected_calls", FAULTS)
def test_one_sdk_call_makes_only_the_upstream_calls_the_service_decided(
    served, fake_ai, fault, expected_calls
):
    server = served(UPSTREAM_TIMEOUT="1")
    fake_ai.script(*[fault] * 10)
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY)  # max_retries=2
    with pytest.raises(openai.APIError):
        client.chat.completions.create(
            model="flux", messages=[{"role": "user", "content": "a fox"}]
        )
    assert len(fake_ai.calls) == expected_calls


def test_queued_requests_whose_clients_left_are_never_sent(served, fake_ai):
    server = served(UPSTREAM_CONCURRENCY="1")
    fake_ai.latency = 1.5
    outcomes = []

    def chat(timeout: float) -> None:
        try:
            response = requests.post(
                server.url + "/v1/chat/completions",
                json={"messages": [{"role": "user", "content": "a fox"}]},
                headers={"Authorization": f"Bearer {API_KEY}"},
                timeout=timeout,
            )
            outcomes.append(response.status_code)
        except requests.Timeout:
            outcomes.append("gave up")

    patient = threading.Thread(target=chat, args=(10,))
    patient.start()
    time.sleep(0.3)  # it holds the only upstream slot for 1.5 s
    impatient = [threading.Thread(target=chat, args=(0.5,)) for _ in range(4)]
    for thread in impatient:  # these queue behind it, then give up
        thread.start()
    for thread in (patient, *impatient):
        thread.join()
    time.sleep(2)  # long enough for a queued request to have been sent, had it been
    assert sorted(map(str, outcomes)) == ["200"] + ["gave up"] * 4
    assert len(fake_ai.calls) == 1
    assert server.log.count("path=/v1/chat/completions status=499") == 4
    assert server.log.count("path=/v1/chat/completions status=200") == 1


def test_stream_closed_while_optimizing_never_calls_workers_ai(
    served, fake_ai, fake_optimizer, optimizer_env
):
    server = served(**{**optimizer_env, "OPTIMIZER_TIMEOUT": "5", "STREAM_HEARTBEAT": "0.2"})
    fake_optimizer.latency = 2
    response = requests.post(
        server.url + "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "a fox"}], "stream": True},
        headers={"Authorization": f"Bearer {API_KEY}"},
        stream=True,
        timeout=10,
    )
    lines = response.iter_lines()
    assert next(lines).startswith(b"data: ")  # the stream has started
    time.sleep(0.5)
    response.close()  # the person closed the tab
    time.sleep(2.5)  # the optimizer answers meanwhile
    assert len(fake_optimizer.calls) == 1
    assert fake_ai.calls == []
    assert "path=/v1/chat/completions status=499" in server.log


def test_trickling_upstream_answers_504_within_the_deadline(served, fake_ai):
    server = served(UPSTREAM_TIMEOUT="2")
    fake_ai.script(Scripted(mode="trickle", trickle_every=0.5))
    started = time.monotonic()
    response = requests.post(
        server.url + "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "a fox"}]},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=30,
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"
    assert elapsed < 2 + 1
    assert len(fake_ai.calls) == 1


def test_trickling_optimizer_is_cut_at_optimizer_timeout(
    start_service, fake_ai, fake_optimizer, optimizer_env
):
    fake_optimizer.mode = "trickle"
    service = start_service(**optimizer_env)  # OPTIMIZER_TIMEOUT is 1 s
    started = time.monotonic()
    response = service.chat("a fox")
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert "the optimizer timed out" in response.json()["choices"][0]["message"]["content"]
    assert elapsed < 1 + 1


def test_deadline_counts_queueing_and_retries(start_service, fake_ai):
    """Three capacity errors of 0.8 s each would take 2.4 s plus backoff: the deadline is 1.5 s."""
    service = start_service(UPSTREAM_TIMEOUT="1.5")
    fake_ai.latency = 0.8
    fake_ai.script(CAPACITY, CAPACITY, CAPACITY)
    started = time.monotonic()
    response = service.chat("a fox")
    elapsed = time.monotonic() - started
    assert response.status_code in (503, 504)
    assert elapsed < 1.5 + 0.5


def test_a_retry_that_cannot_finish_in_time_is_not_started(start_service, fake_ai):
    service = start_service(UPSTREAM_TIMEOUT="1.5")
    fake_ai.latency = 1.0
    assert service.chat("a fox").status_code == 200  # a try takes ~1 s: the service learns it
    fake_ai.script(CAPACITY)
    response = service.chat("a fox")  # 0.5 s left after the 3040: a retry would be cut off
    assert response.status_code == 503
    assert response.headers["x-should-retry"] == "false"
    assert len(fake_ai.calls) == 2


def test_stream_deadline_error_arrives_in_band(start_service, fake_ai):
    service = start_service(UPSTREAM_TIMEOUT="1")
    fake_ai.script(Scripted(mode="trickle", trickle_every=0.5))
    started = time.monotonic()
    events = read_sse(service.chat("a fox", stream=True), started)
    errors = [
        e.json["error"] for e in events if e.data and e.data != "[DONE]" and "error" in e.json
    ]
    assert errors and errors[0]["code"] == "upstream_timeout"
    assert events[-1].data == "[DONE]" and events[-1].at < 1 + 1


def test_when_one_of_n_images_fails_the_others_stop_before_their_next_paid_step(
    start_service, fake_ai
):
    service = start_service(UPSTREAM_RETRY_BACKOFF="0.3")
    fake_ai.latency = 0.3
    fake_ai.script(Scripted(408, 3007, "AiError: timeout"), *[CAPACITY] * 20)
    response = service.post("/v1/images/generations", {"prompt": "a fox", "n": 4})
    assert response.status_code == 504  # the first failure is the answer
    calls = len(fake_ai.calls)
    time.sleep(1.5)  # the others' retries would have gone out by now
    assert len(fake_ai.calls) == calls == 4
    memory = service.app.extensions["flux_api"].image_memory
    assert memory.in_use == 0


def test_cloudflare_retry_after_longer_than_the_time_left_is_not_waited_for(start_service, fake_ai):
    service = start_service(UPSTREAM_TIMEOUT="5")
    limited = Scripted(429, 0, "Too many requests", headers={"Retry-After": "30"})
    fake_ai.script(limited, limited, limited)
    started = time.monotonic()
    response = service.chat("a fox")
    assert response.status_code == 429 and response.headers["Retry-After"] == "30"
    assert len(fake_ai.calls) == 1 and time.monotonic() - started < 1


def test_cloudflare_retry_after_is_the_least_wait_before_a_retry(start_service, fake_ai):
    service = start_service(UPSTREAM_TIMEOUT="10")
    fake_ai.script(Scripted(429, 0, "Too many requests", headers={"Retry-After": "1"}))
    started = time.monotonic()
    assert service.chat("a fox").status_code == 200
    assert len(fake_ai.calls) == 2 and time.monotonic() - started >= 1


@pytest.mark.parametrize("response_format", ["b64_json", "url"])
def test_an_optimizer_answer_that_is_not_valid_unicode_is_cleaned_before_it_is_paid_for(
    start_service, fake_ai, fake_optimizer, optimizer_env, response_format
):
    """A lone surrogate from the optimizer used to fail the answer after the image was paid
    for (a cut b64_json body, which the SDK repeats; a 500 for url)."""
    fake_optimizer.mode = "surrogate"
    service = start_service(**optimizer_env)
    body = {"prompt": "a fox", "response_format": response_format}
    response = service.post("/v1/images/generations", body)
    assert response.status_code == 200
    assert response.json()["data"][0]["revised_prompt"].endswith("a fox")
    assert len(fake_ai.calls) == 1


@pytest.fixture
def slow_headers_upstream():
    """An HTTP server that sends its status line and headers one byte every 50 ms (~12 s)."""
    listener = socket.create_server(("127.0.0.1", 0))
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Pad: "
        + b"a" * 200
        + b"\r\nContent-Length: 2\r\n\r\n{}"
    )

    def answer(connection: socket.socket) -> None:
        with connection, contextlib.suppress(OSError):
            connection.recv(65536)
            for byte in head:
                connection.sendall(bytes([byte]))
                time.sleep(0.05)

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = listener.accept()
                threading.Thread(target=answer, args=(connection,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


def test_headers_sent_a_byte_at_a_time_are_cut_at_the_deadline(
    start_service, slow_headers_upstream
):
    service = start_service(
        UPSTREAM_TIMEOUT="2", CF_API_BASE=f"{slow_headers_upstream}/accounts/{{account_id}}/ai/run"
    )
    started = time.monotonic()
    response = service.chat("a fox")
    assert response.status_code == 504
    assert time.monotonic() - started < 2 + 1


def test_an_optimizer_sending_headers_a_byte_at_a_time_is_cut_at_its_timeout(
    start_service, fake_ai, optimizer_env, slow_headers_upstream
):
    service = start_service(**{**optimizer_env, "EXTERNAL_API_BASE": slow_headers_upstream})
    started = time.monotonic()
    response = service.chat("a fox")  # OPTIMIZER_TIMEOUT is 1 s: then the prompt as written
    assert response.status_code == 200
    assert "the optimizer timed out" in response.json()["choices"][0]["message"]["content"]
    assert time.monotonic() - started < 1 + 1
