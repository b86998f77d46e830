"""Fixtures: the fake upstreams as real HTTP servers, and the service itself on a real port."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from flux_api import create_app
from tests.fakes.optimizer import OPTIMIZER_KEY, OPTIMIZER_MODEL, FakeOptimizer
from tests.fakes.server import BackgroundServer
from tests.fakes.workers_ai import ACCOUNT_ID, TOKEN, FakeWorkersAI
from tests.nginx import require_program

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "sk-test-SECRET-key-one"
SECRETS = (API_KEY, TOKEN, OPTIMIZER_KEY)


@dataclass
class Service:
    url: str
    app: object = None

    def get(self, path: str, key: str | None = API_KEY, **kwargs) -> requests.Response:
        return requests.get(
            self.url + path, headers=_auth(key, kwargs.pop("headers", {})), timeout=30, **kwargs
        )

    def post(self, path: str, body=None, key: str | None = API_KEY, **kwargs) -> requests.Response:
        headers = _auth(key, kwargs.pop("headers", {}))
        return requests.post(self.url + path, json=body, headers=headers, timeout=30, **kwargs)

    def chat(
        self, content, key: str | None = API_KEY, headers: dict | None = None, **body
    ) -> requests.Response:
        messages = [{"role": "user", "content": content}]
        return self.post(
            "/v1/chat/completions",
            {"messages": messages, **body},
            key=key,
            headers=headers or {},
            stream=body.get("stream", False),
        )


def _auth(key: str | None, headers: dict) -> dict:
    return {**headers, "Authorization": f"Bearer {key}"} if key else headers


@dataclass
class SSEEvent:
    at: float  # seconds since the request was sent
    comment: str | None = None
    data: str | None = None

    @property
    def json(self) -> dict:
        return json.loads(self.data)


def read_sse(response: requests.Response, started: float) -> list[SSEEvent]:
    """Every frame of a stream with the time it arrived, comments (keep-alives) included."""
    events = []
    for line in response.iter_lines(decode_unicode=True):
        if not line:
            continue
        now = time.monotonic() - started
        if line.startswith(":"):
            events.append(SSEEvent(now, comment=line[1:].strip()))
        elif line.startswith("data: "):
            events.append(SSEEvent(now, data=line[len("data: ") :]))
    return events


def content_of(events: list[SSEEvent]) -> str:
    return "".join(
        e.json["choices"][0]["delta"].get("content", "")
        for e in events
        if e.data and e.data != "[DONE]" and e.json.get("choices")
    )


def _serve(fake):
    with BackgroundServer(fake.app()) as server:
        fake.url = server.url
        yield fake


@pytest.fixture(scope="session")
def _fake_ai_server():
    yield from _serve(FakeWorkersAI())


@pytest.fixture(scope="session")
def _fake_optimizer_server():
    yield from _serve(FakeOptimizer())


@pytest.fixture
def fake_ai(_fake_ai_server) -> FakeWorkersAI:
    """The fake Workers AI, reset before and after each test (latency, scripted failures, calls)."""
    _fake_ai_server.reset()
    yield _fake_ai_server
    _fake_ai_server.reset()


@pytest.fixture
def fake_optimizer(_fake_optimizer_server) -> FakeOptimizer:
    _fake_optimizer_server.reset()
    yield _fake_optimizer_server
    _fake_optimizer_server.reset()


def cf_api_base(fake: FakeWorkersAI) -> str:
    return f"{fake.url}/client/v4/accounts/{{account_id}}/ai/run"


@pytest.fixture
def service_env(tmp_path, fake_ai) -> dict:
    return {
        "API_KEY": API_KEY,
        "CF_ACCOUNT_ID": ACCOUNT_ID,
        "CF_API_TOKEN": TOKEN,
        "CF_API_BASE": cf_api_base(fake_ai),
        "DATA_DIR": str(tmp_path / "data"),
        "UPSTREAM_RETRY_BACKOFF": "0.05",
        "STREAM_HEARTBEAT": "0.3",
    }


@pytest.fixture
def optimizer_env(fake_optimizer) -> dict:
    return {
        "PROMPT_OPTIMIZATION": "true",
        "EXTERNAL_API_BASE": fake_optimizer.url,
        "EXTERNAL_MODEL": OPTIMIZER_MODEL,
        "EXTERNAL_API_KEY": OPTIMIZER_KEY,
        "OPTIMIZER_TIMEOUT": "1",
    }


@pytest.fixture
def start_service(service_env):
    """Start the app from the factory on a real loopback port; `None` removes a setting.
    `clock`: the wall clock the account pool reads (tests of what midnight UTC does)."""
    servers = []

    def start(clock=time.time, **overrides) -> Service:
        env = {k: v for k, v in {**service_env, **overrides}.items() if v is not None}
        app = create_app(env, clock)
        server = BackgroundServer(app).__enter__()
        servers.append(server)
        return Service(server.url, app)

    yield start
    for server in servers:
        server.__exit__()


@pytest.fixture
def service(start_service) -> Service:
    return start_service()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    """The real gunicorn with the shipped gunicorn.conf.py, run from a clean working directory."""

    def __init__(self, env: dict, workdir: Path, workers: int = 2):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"gunicorn-{self.port}.log"
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT),
            **env,
            "BIND": f"127.0.0.1:{self.port}",
            "WEB_CONCURRENCY": str(workers),
        }
        self.workdir = workdir
        self.process = None

    def start(self, app: str = "app:app") -> Gunicorn:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), app],
            cwd=self.workdir,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_until_serving(deadline=time.monotonic() + 20)
        except BaseException:  # never leave a master and its workers running after a failure
            self.stop()
            raise
        return self

    def _wait_until_serving(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                requests.get(self.url + "/", timeout=1)  # any answer: it is serving
                return
            except requests.RequestException:  # refused, or slow to answer on a busy machine
                time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not start:\n{self.log_path.read_text()}")

    def run_until_exit(self, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run gunicorn in the foreground, for starts that must fail: its exit and output."""
        return subprocess.run(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "app:app"],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def gunicorn(tmp_path):
    started = []

    def start(env: dict, workers: int = 2) -> Gunicorn:
        server = Gunicorn(env, tmp_path, workers).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


# Debian's chromium, headless, for the tests that drive the page (playground, page security).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium through Playwright (never a downloaded browser); skipped where missing,
    except in CI."""
    chromium = require_program("chromium", "chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()
