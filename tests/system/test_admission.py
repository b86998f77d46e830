"""Admission under the real gunicorn (one worker of 6 threads, 2 kept in reserve: 4 generations
at once) and the fake Workers AI with latency: a generation beyond what the worker holds is
shed at once, 503 + Retry-After + `x-should-retry: true`, without any Workers AI call; cheap
requests still answer; a key beyond its share is shed while another key is admitted."""

from __future__ import annotations

import functools
import json
import re
import socket
import subprocess
import time
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
import requests

from tests.support.metrics import Scrape
from tests.support.nginx import Nginx
from tests.support.programs import Gunicorn
from tests.support.service import API_KEY

SMALL = {"GUNICORN_THREADS": "6", "GENERATION_RESERVE": "2"}  # 4 generations at once
ALICE = "sk-alice-0123456789abcdef"
BOB = "sk-bob-0123456789abcdef"
TWO_KEYS = {"API_KEY": f"alice:{ALICE}, bob:{BOB}", "KEY_SHARE": "0.5"}  # 2 each
LATENCY = 3.0  # long enough for a test to act while generations are held


def post(url: str, path: str, body: dict, key: str = API_KEY, **kwargs) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"}
    return requests.post(url + path, json=body, headers=headers, timeout=30, **kwargs)


def chat(url: str, key: str = API_KEY, stream: bool = False) -> requests.Response:
    body = {"messages": [{"role": "user", "content": "a fox"}], "stream": stream}
    response = post(url, "/v1/chat/completions", body, key, stream=stream)
    if stream:
        response.content  # read the whole stream: the generation is held till then
    return response


def generate(url: str, key: str = API_KEY) -> requests.Response:
    return post(url, "/v1/images/generations", {"prompt": "a fox"}, key)


def wait_for_calls(fake_ai, count: int) -> None:
    """Until the fake has received `count` calls: the generations are held."""
    deadline = time.monotonic() + 20
    while len(fake_ai.calls) < count:
        assert time.monotonic() < deadline, f"{len(fake_ai.calls)} calls, not {count}"
        time.sleep(0.05)


def hold(pool: ThreadPoolExecutor, fake_ai, *requests_: tuple) -> list[Future]:
    """Start each (function, args...) in the background; return once all reached Workers AI."""
    before = len(fake_ai.calls)
    held = [pool.submit(*call) for call in requests_]
    wait_for_calls(fake_ai, before + len(requests_))
    return held


def assert_shed(response: requests.Response, words: str) -> None:
    assert response.status_code == 503
    assert response.headers["x-should-retry"] == "true"
    assert 1 <= int(response.headers["Retry-After"]) <= 5
    assert response.headers["X-Request-ID"]
    error = response.json()["error"]
    assert error["code"] == "overloaded" and error["type"] == "api_error"
    assert words in error["message"] and "Nothing was started or billed" in error["message"]


@pytest.fixture
def pool():
    with ThreadPoolExecutor(max_workers=8) as executor:
        yield executor


def test_beyond_capacity_a_generation_is_shed_at_once_and_cheap_requests_still_answer(
    gunicorn, service_env, fake_ai, pool
):
    server = gunicorn({**service_env, **SMALL}, workers=1)
    url = server.url
    stored = generate(url).json()["data"][0]["url"]
    fake_ai.latency = LATENCY
    held = hold(
        pool,
        fake_ai,
        (chat, url, API_KEY, True),
        (chat, url, API_KEY, True),
        (chat, url),
        (generate, url),
    )
    calls = len(fake_ai.calls)

    assert_shed(chat(url, stream=True), "at capacity")
    assert_shed(generate(url), "at capacity")
    assert len(fake_ai.calls) == calls  # nothing reached Workers AI
    # The reserve answers everything else while every generation thread is held.
    assert requests.get(url + "/healthz", timeout=10).status_code == 200
    assert requests.get(stored, timeout=10).status_code == 200
    models = requests.get(url + "/v1/models", headers={"Authorization": f"Bearer {API_KEY}"})
    assert models.status_code == 200
    assert not any(future.done() for future in held)  # all still held meanwhile

    assert [future.result().status_code for future in held] == [200] * 4
    fake_ai.latency = 0.0
    assert chat(url).status_code == 200  # the slots came back

    assert "shed reason=capacity key=key-" in server.log
    assert "status=503" in server.log
    metrics = requests.get(url + "/metrics", headers={"Authorization": f"Bearer {API_KEY}"})
    scrape = Scrape(metrics.text)
    assert scrape.sum("shed_total", reason="capacity") == 2
    assert scrape.sum("generations_in_flight") == 0
    assert scrape.sum("generation_capacity") == 4


def test_a_key_beyond_its_share_is_shed_while_another_key_is_admitted(
    gunicorn, service_env, fake_ai, pool
):
    server = gunicorn({**service_env, **SMALL, **TWO_KEYS}, workers=1)
    url = server.url
    fake_ai.latency = LATENCY
    held = hold(pool, fake_ai, (chat, url, ALICE, True), (generate, url, ALICE))
    calls = len(fake_ai.calls)

    assert_shed(chat(url, ALICE), "its share (KEY_SHARE)")
    assert len(fake_ai.calls) == calls
    fake_ai.latency = 0.0
    assert chat(url, BOB).status_code == 200  # bob's share is untouched
    assert [future.result().status_code for future in held] == [200, 200]
    assert chat(url, ALICE).status_code == 200  # alice's slots came back
    assert "shed reason=key_share key=alice" in server.log


@pytest.mark.parametrize("admission_wait, shed", [("1", True), ("0", False)])
def test_a_generation_that_waited_for_a_thread_longer_than_admission_wait_is_shed(
    gunicorn, service_env, fake_ai, pool, admission_wait, shed
):
    """Two threads, both running streams for 3 s: a third generation waits for one in the
    worker's queue, a slot is free by the time it gets one, and it has waited ~3 s."""
    env = {"GUNICORN_THREADS": "2", "GENERATION_RESERVE": "0", "ADMISSION_WAIT": admission_wait}
    server = gunicorn({**service_env, **env}, workers=1)
    fake_ai.latency = LATENCY
    held = hold(pool, fake_ai, (chat, server.url, API_KEY, True), (chat, server.url, API_KEY, True))
    fake_ai.latency = 0.0
    started = time.monotonic()
    late = generate(server.url)
    assert time.monotonic() - started > 2  # it did wait for a thread
    assert [future.result().status_code for future in held] == [200, 200]
    if shed:
        assert_shed(late, "waited more than 1 s for a thread (ADMISSION_WAIT)")
        assert len(fake_ai.calls) == 2  # never reached Workers AI
        assert "shed reason=waited key=key-" in server.log
    else:
        assert late.status_code == 200 and len(fake_ai.calls) == 3
    assert generate(server.url).status_code == 200  # an idle worker admits at once


GENERATION = json.dumps({"prompt": "a fox"}).encode()
GENERATION_HEAD = (
    "POST /v1/images/generations HTTP/1.1\r\nHost: x\r\n"
    f"Authorization: Bearer {API_KEY}\r\nContent-Type: application/json\r\n"
    f"Content-Length: {len(GENERATION)}\r\n\r\n"
).encode()


def statuses(sock: socket.socket, count: int) -> list[str]:
    """The status lines of the next `count` answers on `sock` (each with a Content-Length)."""
    sock.settimeout(20)
    seen, buffer = [], b""
    while len(seen) < count:
        while b"\r\n\r\n" not in buffer:
            data = sock.recv(65536)
            assert data, f"closed after {seen}"
            buffer += data
        head, buffer = buffer.split(b"\r\n\r\n", 1)
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
        while len(buffer) < length:
            buffer += sock.recv(65536)
        seen.append(head.split(b"\r\n")[0].decode())
        buffer = buffer[length:]
    return seen


@pytest.mark.parametrize(
    "before",
    [b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"],
    ids=["alone", "pipelined after a health check"],
)
def test_a_client_slow_to_send_its_headers_is_not_shed_for_its_own_wait(
    gunicorn, service_env, fake_ai, before
):
    """ADMISSION_WAIT counts the server's wait for a thread, not the client's sending: headers
    sent in two parts a second apart, on an idle worker (pipelined, the second part is read
    by a thread that has already taken the connection)."""
    server = gunicorn({**service_env, "ADMISSION_WAIT": "0.5"}, workers=1)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(before + GENERATION_HEAD[:30])
        time.sleep(1.0)
        sock.sendall(GENERATION_HEAD[30:] + GENERATION)
        answers = statuses(sock, 2 if before else 1)
    assert answers[-1] == "HTTP/1.1 200 OK", answers
    assert len(fake_ai.calls) == 1 and "shed reason=" not in server.log


def test_one_key_alone_may_use_the_whole_capacity(gunicorn, service_env, fake_ai, pool):
    server = gunicorn({**service_env, **SMALL, "KEY_SHARE": "0.25"}, workers=1)
    url = server.url
    fake_ai.latency = LATENCY
    held = hold(pool, fake_ai, *[(generate, url)] * 3)
    fake_ai.latency = 0.0
    assert generate(url).status_code == 200  # the fourth: the whole capacity, not a quarter
    assert [future.result().status_code for future in held] == [200] * 3
    assert "shed reason=" not in server.log


def test_a_stream_whose_client_left_holds_its_slot_until_its_workers_ai_call_returns(
    gunicorn, service_env, fake_ai
):
    """The call under way is not cut when its client hangs up (it is paid either way): until it
    returns it still counts, so clients that leave at once cannot run more calls than the
    worker holds."""
    one = {"GUNICORN_THREADS": "3", "GENERATION_RESERVE": "2"}  # one generation at once
    server = gunicorn({**service_env, **one}, workers=1)
    fake_ai.latency = LATENCY
    body = {"messages": [{"role": "user", "content": "a fox"}], "stream": True}
    left = post(server.url, "/v1/chat/completions", body, stream=True)
    lines = left.iter_lines()  # kept: a dropped iterator would close the connection
    next(lines)  # the stream has begun…
    wait_for_calls(fake_ai, 1)
    left.close()  # …and its client leaves while Workers AI works
    deadline = time.monotonic() + LATENCY
    while "status=499" not in server.log:  # noticed at its next keep-alive (0.3 s here)
        assert time.monotonic() < deadline, "the server did not notice the client leave"
        time.sleep(0.05)
    assert_shed(chat(server.url), "at capacity")
    assert len(fake_ai.calls) == 1
    deadline = time.monotonic() + LATENCY + 10
    while (answer := chat(server.url)).status_code == 503:  # until the call has returned
        assert time.monotonic() < deadline, "the slot never came back"
        time.sleep(0.2)
    assert answer.status_code == 200


def test_a_reserve_as_large_as_the_threads_stops_the_start_with_one_line(service_env, tmp_path):
    env = {**service_env, "GUNICORN_THREADS": "4", "GENERATION_RESERVE": "4"}
    process = Gunicorn(env, tmp_path, 1).run_until_exit()
    assert process.returncode != 0
    output = process.stdout + process.stderr
    assert "GENERATION_RESERVE (4) must be less than GUNICORN_THREADS (4)" in output
    assert "Traceback" not in output


def test_the_shipped_nginx_site_sheds_beyond_its_limit_conn_with_the_same_answer(
    gunicorn, service_env, fake_ai, pool, tmp_path
):
    server = gunicorn(service_env, workers=1)
    nginx = Nginx(server.port, tmp_path / "nginx")
    # The site's limit, set as its comment says (1 here: one generation held fills it).
    subprocess.run(
        ["sed", "-i", "s/limit_conn flux_generations 480;/limit_conn flux_generations 1;/"]
        + [str(nginx.site)],
        check=True,
    )
    nginx.start()
    try:
        fake_ai.latency = LATENCY
        through = functools.partial(post, verify=nginx.cert)
        held = pool.submit(through, nginx.url, "/v1/images/generations", {"prompt": "a fox"})
        wait_for_calls(fake_ai, 1)
        body = {"messages": [{"role": "user", "content": "a fox"}]}
        for path, request in (("/v1/chat/completions", body), ("/v1/images/generations", {})):
            shed = through(nginx.url, path, request)
            assert_shed(shed, "at capacity")
        assert len(fake_ai.calls) == 1  # nginx passed neither on
        health = requests.get(nginx.url + "/healthz", verify=nginx.cert, timeout=10)
        assert health.status_code == 200  # not a generation: not limited
        assert held.result().status_code == 200
        fake_ai.latency = 0.0
        assert through(nginx.url, "/v1/images/generations", {"prompt": "a fox"}).status_code == 200
    finally:
        nginx.stop()
