"""Security: odd image paths, secrets in logs and answers, tracebacks, debug mode.

Paths go over a raw socket, byte for byte, since HTTP client libraries tidy `..` and `//` away.
"""

from __future__ import annotations

import logging
import socket
from urllib.parse import urlsplit

import pytest
import requests

from tests.support.deliveries import DELIVERIES, deliver
from tests.support.fakes.workers_ai import Scripted
from tests.support.programs import Gunicorn
from tests.support.service import API_KEY, SECRETS

ODD_IMAGE_PATHS = [
    b"/image/../../api_key",
    b"/image/..%2F..%2Fapi_key",
    b"/image/%2e%2e/%2e%2e/api_key",
    b"/image/%2E%2E%2F%2E%2E%2Fimages%2Fcache.db",
    b"/image/images/cache.db",
    b"/image//etc/passwd",
    b"/image/" + b"A" * 20_000,
    b"/image/a\x00b",
    b"/image/%00" * 3,
    b"/image/\xe2\x98\x83" * 10,
    b"/image/%E2%98%83" * 10,
    b"/image/\xff\xfe",
    b"/image/cache.db",
    b"/image/write.lock",
]


def raw_get(url: str, path: bytes) -> tuple[int, bytes]:
    """Send `GET <path>` exactly as given; the status and the body."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as connection:
        connection.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.parametrize("path", ODD_IMAGE_PATHS, ids=lambda p: p[:40].decode("latin-1"))
def test_odd_image_paths_are_a_json_404_never_a_file(service, service_env, fake_ai, path):
    service.chat("a fox")  # something is stored, so the store's files exist
    status, body = raw_get(service.url, path)
    assert status == 404
    assert body.startswith(b'{"error"')
    assert b"SQLite" not in body and API_KEY.encode() not in body and b"root:" not in body


def test_odd_image_paths_through_gunicorn(gunicorn, service_env, fake_ai):
    server = gunicorn(service_env)
    for path in ODD_IMAGE_PATHS:
        status, body = raw_get(server.url, path)
        # gunicorn itself refuses some request lines with a plain-text error of its own: 400
        # (NUL, raw non-UTF-8) or 414 (longer than its limit_request_line, 4094 bytes).
        assert status in (400, 404, 414), path
        assert b"SQLite" not in body and API_KEY.encode() not in body


def test_no_secret_in_any_log_line_or_answer(
    start_service, optimizer_env, fake_ai, fake_optimizer, caplog
):
    caplog.set_level(logging.DEBUG)
    keys = f"{API_KEY}, sk-second-SECRET-key"
    service = start_service(**optimizer_env, API_KEY=keys)
    answers = []
    for delivery in DELIVERIES:
        answers.append(deliver(service, delivery).text)
        for scripted in (
            Scripted(401, 10000, f"Authentication error for token {SECRETS[1]}"),
            Scripted(mode="reset"),
            Scripted(mode="html"),
            Scripted(429, 4006, "AiError: daily free allocation used"),
        ):
            fake_ai.script(scripted)
            answers.append(deliver(service, delivery).text)
        for mode in ("error", "garbage", "hang"):
            fake_optimizer.mode = mode
            answers.append(deliver(service, delivery).text)
        fake_optimizer.mode = "ok"
    for path in ("/healthz", "/openapi.json", "/v1/models", "/", "/nope"):
        response = service.get(path, key="sk-second-SECRET-key")
        answers.append(response.text + str(response.headers))
    wrong = service.chat("a fox", key="sk-wrong-SECRET-guess")
    answers.append(wrong.text + str(wrong.headers))

    seen = caplog.text + "".join(answers)
    assert "workers_ai" in caplog.text and "optimizer" in caplog.text  # the logs were captured
    for secret in (*SECRETS, "sk-second-SECRET-key", "sk-wrong-SECRET-guess"):
        assert secret not in seen


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 30_000 + b"]" * 30_000,
        b'{"messages": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
        b"\xff\xfe\x00garbage",
        b'{"messages": [{"role": "user", "content": "a fox"}], "n": 1e400}',
        b'{"prompt": "a fox", "n": 1e308, "seed": -0.0}',
        b"",
    ],
    ids=["deep array", "deep messages", "not utf-8", "huge float", "float n", "empty"],
)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/images/generations"])
def test_malformed_bodies_are_a_400_without_a_traceback(service, fake_ai, path, body):
    response = requests.post(
        service.url + path,
        data=body,
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code in (200, 400), response.text  # "huge float" chat: n is ignored
    assert "Traceback" not in response.text and 'File "' not in response.text
    assert response.json().get("error", {}).get("type", "invalid_request_error") == (
        "invalid_request_error"
    )


def test_nothing_a_request_sends_turns_on_debug_mode(tmp_path, service_env, fake_ai):
    # Even FLASK_DEBUG=1 in the service's own environment does not turn it on.
    server = Gunicorn({**service_env, "FLASK_DEBUG": "1"}, tmp_path).start()
    try:
        probes = [
            requests.get(f"{server.url}/?__debugger__=yes&cmd=resource&f=debugger.js"),
            requests.get(f"{server.url}/console"),
            requests.get(f"{server.url}/v1/models?debug=1", headers={"X-Debug": "1"}),
            requests.post(
                f"{server.url}/v1/chat/completions",
                data=b"[" * 30_000,
                headers={"Authorization": f"Bearer {API_KEY}", "X-Flask-Debug": "1"},
            ),
        ]
        for response in probes:
            assert "Werkzeug Debugger" not in response.text
            assert "Traceback" not in response.text
            assert "debugger.js" not in response.text or response.status_code == 200
        assert probes[1].status_code == 404 and probes[3].status_code == 400
    finally:
        server.stop()


def test_flask_debug_in_the_environment_is_ignored(service_env, monkeypatch):
    from flux_api import create_app

    monkeypatch.setenv("FLASK_DEBUG", "1")
    app = create_app(service_env)
    assert app.debug is False
    assert app.config["PROPAGATE_EXCEPTIONS"] is not True
