"""The event seam: what the pipeline, the account pool, the Workers AI client, the optimizer,
the store, the rate limiter, the chat stream and the request log announce, seen by a subscriber
of a running service (over HTTP, against the fakes); and that a broken subscriber never fails
the work."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from flux_api.budget import Budget, ClientLeft
from flux_api.events import (
    AccountChanged,
    Events,
    GenerationDone,
    ImagesEvicted,
    OptimizerCall,
    RateLimited,
    RequestDone,
    StreamClosed,
    StreamOpened,
    UpstreamCall,
)
from flux_api.upstream.optimizer import OptimizerClient, OptimizerError
from tests.support.fakes.optimizer import OPTIMIZER_KEY, OPTIMIZER_MODEL
from tests.support.fakes.workers_ai import ACCOUNT_ID
from tests.support.programs import free_port
from tests.support.redis_server import RedisServer
from tests.support.service import API_KEY


class Recorder:
    def __init__(self, service):
        self.events: list = []
        self._lock = threading.Lock()
        service.app.extensions["flux_api"].events.subscribe(self)

    def __call__(self, event) -> None:
        with self._lock:
            self.events.append(event)

    def of(self, kind) -> list:
        with self._lock:
            return [event for event in self.events if isinstance(event, kind)]

    def request(self, path: str) -> RequestDone:
        """The request's event, announced once its body has been sent."""
        for _ in range(100):
            done = [event for event in self.of(RequestDone) if event.path == path]
            if done:
                return done[-1]
            time.sleep(0.02)
        raise AssertionError(f"no RequestDone for {path}")


def test_a_chat_announces_its_call_its_generation_and_its_request(service, fake_ai):
    fake_ai.neurons = 12.5
    recorder = Recorder(service)
    response = service.chat("a fox 16:9")
    assert response.status_code == 200
    [call] = recorder.of(UpstreamCall)
    assert (call.model, call.outcome, call.neurons) == ("flux-1-schnell", "ok", 12.5)
    assert call.account == service.app.extensions["flux_api"].accounts.accounts[0].label
    assert call.account != ACCOUNT_ID  # a label, first6…last4
    [generation] = recorder.of(GenerationDone)
    assert (generation.model, generation.size, generation.count) == (
        "flux-1-schnell",
        (1024, 576),
        1,
    )
    assert (generation.outcome, generation.error) == ("ok", None)
    assert generation.total_seconds >= generation.upstream_seconds > 0
    done = recorder.request("/v1/chat/completions")
    assert (done.method, done.status, done.model, done.client_left) == (
        "POST",
        200,
        "flux-1-schnell",
        False,
    )
    assert done.request_id == response.headers["X-Request-ID"]
    assert done.route == "/v1/chat/completions"


def test_an_image_fetch_is_announced_by_the_fast_path(service):
    recorder = Recorder(service)
    created = service.post("/v1/images/generations", {"prompt": "a fox"}).json()
    path = "/image/" + created["data"][0]["url"].rsplit("/image/", 1)[1]
    assert service.get(path, key=None).status_code == 200
    done = recorder.request(path)
    assert (done.method, done.status, done.model, done.route) == ("GET", 200, "-", "/image/{key}")
    assert service.get("/nope", key=None).status_code == 404
    assert recorder.request("/nope").route == ""  # no route answered it


def test_a_used_up_account_is_a_quota_call_a_parked_account_and_a_failed_generation(
    service, fake_ai
):
    recorder = Recorder(service)
    fake_ai.exhausted.add(ACCOUNT_ID)
    assert service.chat("a fox").status_code == 429
    assert [c.outcome for c in recorder.of(UpstreamCall)] == ["quota"]
    [parked] = recorder.of(AccountChanged)
    assert parked.state == "parked" and parked.until > time.time()
    [generation] = recorder.of(GenerationDone)
    assert (generation.outcome, generation.error) == ("failed", "QuotaExceeded")
    assert recorder.request("/v1/chat/completions").status == 429


def test_a_rate_limited_request_is_announced_without_its_key(start_service):
    service = start_service(RATE_LIMIT="1/minute")
    recorder = Recorder(service)
    assert service.chat("a fox").status_code == 200
    assert service.post("/v1/images/generations", {"prompt": "a fox", "n": 2}).status_code == 429
    [refused] = recorder.of(RateLimited)
    assert refused.asked == 2 and 1 <= refused.retry_after <= 61
    assert API_KEY not in repr(refused)


@pytest.fixture(params=["disk", "redis"])
def store_env(request, tmp_path) -> dict:
    if request.param == "disk":
        yield {}
        return
    server = RedisServer(tmp_path / "redis", free_port(), "events-test-password").start()
    yield {"REDIS_URL": server.url}
    server.stop()


def test_images_evicted_for_room_are_announced(start_service, fake_ai, store_env):
    service = start_service(STORE_SIZE_LIMIT_MB="1", **store_env)
    fake_ai.realistic = True  # ~190 KiB each: the sixth evicts
    recorder = Recorder(service)
    sizes = []
    for _ in range(8):
        response = service.post("/v1/images/generations", {"prompt": "a fox"})
        assert response.status_code == 200
        url = response.json()["data"][0]["url"]
        sizes.append(len(service.get("/image/" + url.rsplit("/image/", 1)[1], key=None).content))
    evicted = recorder.of(ImagesEvicted)
    count = sum(e.images for e in evicted)
    assert count >= 2 and all(e.bytes > 0 for e in evicted)
    if store_env:  # Redis counts the bytes it holds exactly; diskcache its volume
        assert sum(e.bytes for e in evicted) == sum(sizes[:count])


def test_a_generation_whose_client_left_is_announced_and_calls_nothing(service, fake_ai):
    recorder = Recorder(service)
    pipeline = service.app.extensions["flux_api"].pipeline
    plan = pipeline.plan("a fox", None, service.url)
    gone = Budget(float("inf"), client_closed=lambda: True)
    with pytest.raises(ClientLeft):
        list(pipeline.run(plan, budget=gone))
    [generation] = recorder.of(GenerationDone)
    assert (generation.outcome, generation.error) == ("client_left", "ClientLeft")
    assert fake_ai.calls == [] and recorder.of(UpstreamCall) == []


def test_a_stream_is_announced_while_it_is_held(service, fake_ai):
    recorder = Recorder(service)
    response = service.chat("a fox", stream=True)
    assert response.text.endswith("data: [DONE]\n\n")
    opened, closed = [e for e in recorder.events if isinstance(e, (StreamOpened, StreamClosed))]
    assert isinstance(opened, StreamOpened) and isinstance(closed, StreamClosed)
    assert closed.finished and opened.caller.key == closed.caller.key != "-"


def test_every_optimizer_call_is_announced_with_its_purpose(fake_optimizer):
    events, heard = Events(), []
    events.subscribe(heard.append)
    client = OptimizerClient(
        fake_optimizer.url, OPTIMIZER_MODEL, OPTIMIZER_KEY, timeout=1, events=events
    )
    client.optimize("a fox", "1:1", 500)
    client.describe("title", ["a fox"])
    fake_optimizer.answer = '{"edit": true, "prompt": "make it blue"}'
    client.follow_up("a fox", "make it blue", 500)
    fake_optimizer.mode = "error"  # every caller then does without it
    with pytest.raises(OptimizerError):
        client.describe("summary", ["a fox"])
    assert all(isinstance(event, OptimizerCall) for event in heard)
    assert [(event.purpose, event.outcome) for event in heard] == [
        ("prompt", "ok"),
        ("title", "ok"),
        ("follow_up", "ok"),
        ("summary", "fallback"),
    ]


def test_a_broken_subscriber_never_fails_a_request(service, caplog):
    def broken(event):
        raise RuntimeError("a bug in a subscriber")

    service.app.extensions["flux_api"].events.subscribe(broken)
    recorder = Recorder(service)
    with caplog.at_level(logging.ERROR, logger="flux_api.events"):
        assert service.chat("a fox").status_code == 200
        assert service.chat("a cat").status_code == 200
    assert len(recorder.of(GenerationDone)) == 2
    assert sum("event subscriber" in r.getMessage() for r in caplog.records) == 1
