"""Idle, half-sent, dribbling and never-reading sockets do not freeze the service, bare (the real
gunicorn with the shipped gunicorn.conf.py) or behind the shipped nginx site."""

from __future__ import annotations

import contextlib
import re
import resource
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from flux_api.server import worker as server
from tests.support.nginx import Nginx
from tests.support.programs import Gunicorn
from tests.support.service import API_KEY, content_of, read_sse

AUTH = {"Authorization": f"Bearer {API_KEY}"}
SMALL = {"GUNICORN_THREADS": "4"}  # one worker of 4 threads: cheap to flood


class QuickWorker(server.GuardedThreadWorker):
    """The shipped worker with short timeouts, so tests that must outlast them stay short."""

    header_timeout = 2.0
    body_timeout = 2.0
    io_timeout = 3.0


# gunicorn reads GUNICORN_CMD_ARGS after the config file: this replaces its worker_class only.
QUICK = {"GUNICORN_CMD_ARGS": f"--worker-class {__name__}.QuickWorker"}
NGINX_HEADER_TIMEOUT = 10  # client_header_timeout in deploy/nginx/flux-api.conf


@pytest.fixture(autouse=True)
def enough_descriptors():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


@contextlib.contextmanager
def flood(port: int, idle: int, half_sent: int, half: bytes = b"GET /healthz HTTP/1.1\r\nHo"):
    """`idle` sockets that send nothing and `half_sent` that send the start of a request."""
    socks = []
    try:
        for i in range(idle + half_sent):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            socks.append(sock)
            if i >= idle:
                sock.sendall(half)
        yield socks
    finally:
        for sock in socks:
            sock.close()


def healthz_seconds(url: str, timeout: float, **kwargs) -> float | None:
    """How long /healthz took on a new connection; None if it did not answer 200 in time."""
    started = time.monotonic()
    try:
        response = requests.get(url + "/healthz", timeout=timeout, **kwargs)
    except requests.RequestException:
        return None
    return time.monotonic() - started if response.status_code == 200 else None


def seconds_until_healthy(url: str, limit: float, started: float) -> float:
    while time.monotonic() - started < limit:
        if healthz_seconds(url, timeout=2) is not None:
            return time.monotonic() - started
    pytest.fail(f"/healthz did not answer within {limit} s")


def closed_by_peer(sock: socket.socket, deadline: float) -> bool:
    """Whether the server closes `sock` (without answering) before `deadline` (monotonic)."""
    while (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(remaining)
        try:
            if sock.recv(65536) == b"":
                return True
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
    return False


def test_idle_and_half_sent_sockets_do_not_stop_the_service(gunicorn, service_env):
    # 120 sockets: stock gthread (worker_connections = threads + 32 = 36) stops accepting.
    bare = gunicorn({**service_env, **SMALL}, workers=1)
    with flood(bare.port, idle=60, half_sent=60) as socks:
        started = time.monotonic()
        time.sleep(0.5)  # accepted by now
        times = [healthz_seconds(bare.url, timeout=2) for _ in range(5)]
        print(f"/healthz during a flood of 120 sockets: {times}")
        assert None not in times and max(times) < 1.0
        # Every flood socket is closed by the header deadline, none answered.
        deadline = started + server.HEADER_TIMEOUT + 3
        assert all(closed_by_peer(sock, deadline) for sock in socks)


def test_a_flood_beyond_worker_connections_drains_by_itself(gunicorn, service_env):
    bare = gunicorn({**service_env, **SMALL}, workers=1)
    count = 1100  # above the shipped worker_connections (1000): this worker stops accepting
    with flood(bare.port, idle=count // 2, half_sent=count // 2):
        started = time.monotonic()
        time.sleep(0.5)
        assert healthz_seconds(bare.url, timeout=1) is None, "the flood did not fill the worker"
        recovered = seconds_until_healthy(bare.url, 30, started)
        print(f"/healthz answered again {recovered:.1f} s after a flood of {count} sockets")
        assert recovered < server.HEADER_TIMEOUT + 5


def test_a_slowloris_is_closed_by_the_header_deadline(gunicorn, service_env):
    bare = gunicorn({**service_env, **SMALL}, workers=1)
    with socket.create_connection(("127.0.0.1", bare.port)) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
        closed_at = None
        while time.monotonic() - started < server.HEADER_TIMEOUT + 6:
            try:
                sock.sendall(b"a")  # one byte every 2 s: no read ever waits long
            except OSError:
                closed_at = time.monotonic() - started
                break
            if closed_by_peer(sock, time.monotonic() + 2):
                closed_at = time.monotonic() - started
                break
        print(f"a slowloris was closed after {closed_at} s")
        assert closed_at is not None, "the slowloris was never closed"
        assert server.HEADER_TIMEOUT - 1 <= closed_at <= server.HEADER_TIMEOUT + 3


def store_large_image(url: str, **kwargs) -> str:
    """Generate a 2048x2048 image (from the fake) and keep it: its /image/ path."""
    response = requests.post(
        url + "/v1/images/generations",
        json={"prompt": "a lighthouse", "size": "2048x2048"},
        headers=AUTH,
        timeout=30,
        **kwargs,
    )
    assert response.status_code == 200, response.text
    return re.search(r"/image/\S+$", response.json()["data"][0]["url"]).group(0)


def never_reading_fetches(port: int, path: str, count: int, tls: bool = False) -> list:
    """`count` connections that each pipeline many GETs of `path` and never read an answer."""
    requests_ = f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode() * 200
    context = ssl._create_unverified_context() if tls else None
    socks = []
    try:
        for _ in range(count):
            raw = socket.socket()
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a tiny window
            raw.connect(("127.0.0.1", port))
            sock = context.wrap_socket(raw, server_hostname="localhost") if tls else raw
            socks.append(sock)
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError, ssl.SSLWantWriteError):
                sock.send(requests_)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


def test_never_reading_image_fetches_release_their_threads(gunicorn, service_env, fake_ai):
    bare = gunicorn({**service_env, **SMALL, **QUICK}, workers=1)
    path = store_large_image(bare.url)
    size = len(requests.get(bare.url + path, timeout=10).content)
    socks = never_reading_fetches(bare.port, path, count=4)  # one per thread
    try:
        started = time.monotonic()
        time.sleep(0.5)
        # Every thread is stuck in sendfile to a client that does not read...
        assert healthz_seconds(bare.url, timeout=1) is None, "the fetches did not block"
        # ...until the write timeout ends them.
        recovered = seconds_until_healthy(bare.url, 30, started)
        print(f"{size}-byte image: /healthz answered again after {recovered:.1f} s")
        assert recovered < QuickWorker.io_timeout + 3
    finally:
        for sock in socks:
            sock.close()
    assert "read nothing for 3.0 s" in bare.log
    assert "Traceback" not in bare.log


def chat(url: str, stream: bool) -> requests.Response:
    return requests.post(
        url + "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "a fox"}], "stream": stream},
        headers=AUTH,
        stream=stream,
        timeout=30,
    )


def test_generations_longer_than_the_timeouts_complete(gunicorn, service_env, fake_ai):
    # Heartbeats further apart than the write timeout: it bounds a blocked write, not a gap.
    env = {**service_env, **SMALL, **QUICK, "STREAM_HEARTBEAT": "4"}
    bare = gunicorn(env, workers=1)
    fake_ai.latency = 5.0  # longer than QuickWorker's header (2 s) and I/O (3 s) timeouts
    with ThreadPoolExecutor(1) as pool:
        plain = pool.submit(chat, bare.url, False)  # 5 s with nothing written
        started = time.monotonic()
        events = read_sse(chat(bare.url, True), started)
        assert events[-1].data == "[DONE]" and events[-1].at >= 5.0
        assert "/image/" in content_of(events)
        assert any(e.comment == "keep-alive" for e in events)
        response = plain.result()
        assert response.status_code == 200 and "/image/" in response.text


def test_behind_nginx_a_flood_leaves_healthz_answering(tmp_path, service_env, fake_ai):
    bare = Gunicorn({**service_env, **SMALL}, tmp_path, workers=1).start()
    nginx = None
    try:
        nginx = Nginx(bare.port, tmp_path / "nginx").start()
        path = store_large_image(nginx.url, verify=nginx.cert)
        tls_hello = b"\x16\x03\x01\x02\x00\x01"  # the start of a TLS handshake, never finished
        started = time.monotonic()
        with (
            flood(nginx.https_port, idle=400, half_sent=400, half=tls_hello) as https,
            flood(nginx.http_port, idle=200, half_sent=200) as http,
        ):
            fetches = never_reading_fetches(nginx.https_port, path, count=64, tls=True)
            try:
                time.sleep(1)
                times = [healthz_seconds(nginx.url, 5, verify=nginx.cert) for _ in range(10)]
                print(f"/healthz through nginx, 1,200 idle sockets + 64 stuck fetches: {times}")
                assert None not in times and max(times) < 1.0
                # The site's client_header_timeout closes the idle and half-sent sockets.
                deadline = started + NGINX_HEADER_TIMEOUT + 3
                assert all(closed_by_peer(sock, deadline) for sock in https[::40] + http[::40])
            finally:
                for sock in fetches:
                    sock.close()
    finally:
        if nginx:
            nginx.stop()
        bare.stop()


def test_pipelined_requests_are_all_answered(gunicorn, service_env):
    # More than one parser read (8 KiB) of requests at once: the worker's read-ahead of a
    # header block must not leave any of them unanswered.
    bare = gunicorn({**service_env, **SMALL}, workers=1)
    request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Pad: %s\r\n\r\n"
    request %= b"p" * (64 - len(request % b""))  # 64 bytes: 8 KiB ends between two requests
    count = 200  # 12.5 KiB, all read ahead with the first header block
    with socket.create_connection(("127.0.0.1", bare.port), timeout=10) as sock:
        sock.sendall(request * count)
        received = b""
        with contextlib.suppress(socket.timeout):
            while received.count(b"HTTP/1.1 200 ") < count:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
    assert received.count(b"HTTP/1.1 200 ") == count


def test_a_dribbled_body_is_cut_at_the_body_deadline(gunicorn, service_env, fake_ai):
    """A body sent a byte at a time, each within the I/O timeout, cannot hold a thread for ever."""
    server_ = gunicorn({**service_env, **SMALL, **QUICK}, workers=1)
    sock = socket.create_connection(("127.0.0.1", server_.port), timeout=10)
    try:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + API_KEY.encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n"
        )
        started = time.monotonic()
        with contextlib.suppress(OSError):
            while time.monotonic() - started < 10:  # one byte a second: fine for the I/O timeout
                sock.sendall(b" ")
                time.sleep(1)
                if closed_by_peer(sock, time.monotonic() + 0.01):
                    break
        allowed = QuickWorker.body_timeout + 60000 / server.MIN_UPLOAD_RATE
        assert time.monotonic() - started < allowed + 3  # noticed at the next byte or two
    finally:
        sock.close()
    assert fake_ai.calls == []


def test_a_body_gunicorn_cannot_drain_closes_its_connection_by_announcement(gunicorn, service_env):
    """The app's 413 for a body over MAX_BODY_KB says `Connection: close`: gunicorn would close
    after draining 64 KiB anyway, and a proxy reusing the connection would lose a request."""
    server_ = gunicorn({**service_env, **SMALL}, workers=1)
    body = b'{"prompt": "' + b"a" * 70_000 + b'"}'
    with socket.create_connection(("127.0.0.1", server_.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/images/generations HTTP/1.1\r\nHost: x\r\nContent-Type: "
            b"application/json\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n"
            % (API_KEY.encode(), len(body))
            + body
        )
        head = sock.recv(65536).split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"http/1.1 413") and b"connection: close" in head


def test_the_deadline_counts_the_wait_for_a_free_thread(gunicorn, service_env, fake_ai):
    """UPSTREAM_TIMEOUT runs from when a request arrives, not from when a thread takes it (with
    ADMISSION_WAIT off: on, the requests that waited would be shed instead, test_admission)."""
    env = {"GUNICORN_THREADS": "1", "UPSTREAM_TIMEOUT": "2", "ADMISSION_WAIT": "0"}
    server_ = gunicorn({**service_env, **env}, workers=1)
    fake_ai.latency = 1.5

    def chat(_):
        started = time.monotonic()
        response = requests.post(
            server_.url + "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "a fox"}]},
            headers=AUTH,
            timeout=30,
        )
        return response.status_code, time.monotonic() - started

    with ThreadPoolExecutor(3) as pool:
        outcomes = list(pool.map(chat, range(3)))
    assert max(seconds for _, seconds in outcomes) < 2 + 1.5  # was 1.5 s per request, queued
    assert sorted(status for status, _ in outcomes)[0] == 200
    assert any(status == 504 for status, _ in outcomes)
