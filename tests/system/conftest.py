"""Fixtures of the system tests: the fake upstreams as real HTTP servers, the service itself on a
real port or under the real gunicorn, and Debian's Chromium."""

from __future__ import annotations

import time

import pytest

from flux_api import create_app
from tests.support.fakes.optimizer import OPTIMIZER_KEY, OPTIMIZER_MODEL, FakeOptimizer
from tests.support.fakes.server import BackgroundServer
from tests.support.fakes.workers_ai import ACCOUNT_ID, TOKEN, FakeWorkersAI
from tests.support.programs import Gunicorn, require_program
from tests.support.service import API_KEY, Service, cf_api_base


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
