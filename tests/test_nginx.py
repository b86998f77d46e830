"""The shipped nginx site in front of the real gunicorn, over TLS on loopback."""

import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.conftest import API_KEY, ROOT, Gunicorn, read_sse
from tests.nginx import Nginx, require_program

AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def stack(tmp_path, service_env):
    """Start gunicorn (2 workers) and nginx in front of it; returns (nginx, gunicorn)."""
    started = []

    def start(workers: int = 2, **env):
        gunicorn = Gunicorn({**service_env, **env}, tmp_path, workers).start()
        started.append(gunicorn)
        nginx = Nginx(gunicorn.port, tmp_path / f"nginx-{gunicorn.port}").start()
        started.append(nginx)
        return nginx, gunicorn

    yield start
    for process in reversed(started):
        process.stop()


def chat(nginx, content="a fox", **body):
    return requests.post(
        f"{nginx.url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": content}], **body},
        headers=AUTH,
        verify=nginx.cert,
        timeout=30,
        stream=body.get("stream", False),
    )


def test_stream_first_chunk_arrives_through_nginx_before_the_generation_ends(stack, fake_ai):
    nginx, _ = stack()
    fake_ai.latency = 2.0
    started = time.monotonic()
    response = chat(nginx, stream=True)
    events = read_sse(response, started)
    first_data = next(e for e in events if e.data)
    assert first_data.at < 1.0
    assert events[-1].data == "[DONE]" and events[-1].at >= 2.0
    assert any(e.comment == "keep-alive" and e.at < 2.0 for e in events)


def test_image_urls_carry_the_forwarded_scheme_and_host(stack, fake_ai):
    nginx, _ = stack()
    content = chat(nginx).json()["choices"][0]["message"]["content"]
    url = re.search(r"\((https?://[^)]+)\)$", content).group(1)
    assert url.startswith(f"https://localhost:{nginx.https_port}/image/")
    image = requests.get(url, verify=nginx.cert, timeout=10)
    assert image.status_code == 200 and image.headers["Content-Type"] == "image/jpeg"


def test_repeated_image_fetch_is_served_from_nginx_cache(stack, fake_ai):
    nginx, gunicorn = stack()
    content = chat(nginx).json()["choices"][0]["message"]["content"]
    path = re.search(r"(/image/[^)]+)\)$", content).group(1)
    first = requests.get(nginx.url + path, verify=nginx.cert, timeout=10)
    second = requests.get(nginx.url + path, verify=nginx.cert, timeout=10)
    assert first.headers["X-Cache-Status"] == "MISS"
    assert second.headers["X-Cache-Status"] == "HIT"
    assert second.content == first.content
    assert "max-age=" in second.headers["Cache-Control"]
    time.sleep(0.3)
    assert gunicorn.log.count(f"path={path} ") == 1  # the app saw the first fetch only


def test_oversized_bodies_get_json_413_from_the_app_and_from_nginx(stack, fake_ai):
    nginx, _ = stack()
    from_app = chat(nginx, "x" * 70_000)  # above MAX_BODY_KB (64), below nginx's 80k
    assert from_app.status_code == 413
    assert from_app.json()["error"]["code"] == "request_too_large"
    assert "X-Request-ID" in from_app.headers  # the app answered
    from_nginx = chat(nginx, "x" * 200_000)
    assert from_nginx.status_code == 413
    assert from_nginx.headers["Content-Type"] == "application/json"
    assert from_nginx.json()["error"]["code"] == "request_too_large"
    assert "X-Request-ID" not in from_nginx.headers  # nginx answered on its own
    assert fake_ai.calls == []


def test_rate_limit_holds_across_workers_and_processes(stack, fake_ai, tmp_path, service_env):
    nginx, gunicorn = stack(RATE_LIMIT="4/minute")
    fake_ai.latency = 0.3
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(lambda i: chat(nginx, f"fox {i}").status_code, range(8)))
    assert statuses == [200] * 4 + [429] * 4
    pids = set(re.findall(r"pid=(\d+) \S+ request method=POST", gunicorn.log))
    print(f"requests were served by {len(pids)} worker process(es)")
    # A second gunicorn on the same DATA_DIR sees the same count.
    other = Gunicorn({**service_env, "RATE_LIMIT": "4/minute"}, tmp_path, 1).start()
    try:
        response = requests.post(
            f"{other.url}/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "a fox"}]},
            headers=AUTH,
            timeout=10,
        )
        assert response.status_code == 429
        assert int(response.headers["Retry-After"]) >= 1
    finally:
        other.stop()


def test_healthz_through_nginx(stack):
    nginx, _ = stack()
    response = requests.get(f"{nginx.url}/healthz", verify=nginx.cert, timeout=10)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_plain_http_redirects_to_https(stack):
    nginx, _ = stack()
    response = requests.get(f"http://localhost:{nginx.http_port}/v1/models", allow_redirects=False)
    assert response.status_code == 301
    assert response.headers["Location"].startswith("https://localhost")


def test_systemd_unit_verifies(tmp_path):
    analyze = require_program("systemd-analyze", "systemd")
    unit = (ROOT / "deploy" / "systemd" / "flux-api.service").read_text()
    gunicorn = str(Path(sys.executable).parent / "gunicorn")  # an executable that exists here
    path = tmp_path / "flux-api.service"
    path.write_text(unit.replace("/opt/flux-api/.venv/bin/gunicorn", gunicorn))
    result = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "flux-api.service" not in result.stderr, result.stderr
    for hardening in (
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "StateDirectory=flux-api",
        "EnvironmentFile=",
        "Restart=on-failure",
        "User=flux-api",
    ):
        assert hardening in unit
