"""GET /v1/usage: a scripted run with faults gives exact counts per account and per key name;
who sees what; shared by gunicorn's workers and by nodes on Redis; never a key in it."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from flux_api.config.models import find_model
from flux_api.config.pricing import estimated_neurons
from flux_api.store.usage import UsageUnavailable
from tests.support.fakes.workers_ai import Scripted
from tests.support.pictures import picture
from tests.support.programs import free_port
from tests.support.redis_server import RedisServer

ALICE = "sk-alice-0123456789abcdef"
KIDS = "sk-kids-0123456789abcdef"
METRICS = "sk-metrics-reader-0123456789"
KEYS = f"alice:{ALICE}, kids:{KIDS}:3/hour"
SCHNELL = find_model("flux-1-schnell")


def away_from_the_hour_and_midnight() -> None:
    """Keep a test inside one hour's rate-limit window and one UTC day's ledger."""
    if time.time() % 3600 > 3585:
        time.sleep(3600 - time.time() % 3600 + 0.1)


def usage(service, key: str) -> dict:
    response = service.get("/v1/usage", key=key)
    assert response.status_code == 200, response.text
    return response.json()


def key_entry(day: dict, name: str) -> dict:
    return next(entry for entry in day["keys"] if entry["name"] == name)


def test_a_scripted_run_with_faults_gives_exact_counts(start_service, fake_ai):
    away_from_the_hour_and_midnight()
    service = start_service(API_KEY=KEYS, UPSTREAM_RETRY_BACKOFF="0.01")
    fake_ai.neurons = 20.5  # reported by Cloudflare
    assert service.chat("a fox", key=ALICE).status_code == 200
    fake_ai.neurons = None  # not reported: estimated
    images = {"prompt": "a fox", "n": 2, "size": "1024x1024"}
    assert service.post("/v1/images/generations", images, key=ALICE).status_code == 200
    fake_ai.script(Scripted(429, 3040, "AiError: Capacity temporarily exceeded"))
    assert service.chat("a cat 16:9", key=KIDS).status_code == 200  # busy, then a retry
    fake_ai.script(Scripted(500, 9999, "something new"))
    assert service.chat("a dog", key=KIDS).status_code == 502  # a failed generation
    assert service.chat("an owl", key=KIDS).status_code == 200  # its third image of 3/hour
    assert service.chat("a bat", key=KIDS).status_code == 429  # over its own limit
    assert service.post("/v1/images/generations", {"prompt": ""}, key=ALICE).status_code == 400
    time.sleep(0.2)  # a refusal is counted once its answer has been sent

    today = usage(service, ALICE)["today"]  # no METRICS_KEY: any key sees everything
    [account] = today["accounts"]
    assert account["calls"] == {"ok": 5, "capacity": 1, "error": 1}
    estimate = estimated_neurons(SCHNELL.id, 1024, 1024, 4)  # schnell makes 1024x1024 only
    assert estimate == 57.6  # docs/pricing.md's worked example
    assert account["neurons"] == pytest.approx(20.5 + 4 * estimate, abs=0.02)
    assert account["neurons_estimated"] == pytest.approx(4 * estimate, abs=0.02)
    assert account["share"] == pytest.approx(account["neurons"] / 10_000, abs=1e-4)
    alice, kids = key_entry(today, "alice"), key_entry(today, "kids")
    assert alice["images"] == 3
    assert alice["by_endpoint"] == {"/v1/chat/completions": 1, "/v1/images/generations": 2}
    assert alice["by_model"] == {"flux-1-schnell": 3}
    assert alice["refused"] == {"invalid_request_error": 1}  # the empty prompt: a 400
    assert kids["images"] == 2 and sum(kids["failed"].values()) == 1
    assert kids["refused"] == {"rate_limit_exceeded": 1}
    assert today["images"] == 5 and today["pool"]["neurons"] == account["neurons"]
    assert service.get("/healthz").json()["pool_share_today"] == account["share"]


def test_with_metrics_key_each_key_sees_only_its_own(start_service, fake_ai):
    service = start_service(API_KEY=KEYS, METRICS_KEY=METRICS)
    assert service.chat("a fox", key=ALICE).status_code == 200
    assert service.chat("a cat", key=KIDS).status_code == 200
    own = usage(service, ALICE)
    assert [entry["name"] for entry in own["today"]["keys"]] == ["alice"]
    assert "accounts" not in own["today"] and "pool" not in own["today"]
    everyone = usage(service, METRICS)
    assert [entry["name"] for entry in everyone["today"]["keys"]] == ["alice", "kids"]
    assert everyone["today"]["accounts"][0]["calls"] == {"ok": 2}
    assert len(everyone["days"]) == 31 and everyone["days"][0] == everyone["today"]
    # METRICS_KEY opens nothing else
    assert service.chat("a fox", key=METRICS).status_code == 401
    assert service.get("/v1/usage", key=None).status_code == 401
    text = service.get("/v1/usage", key=METRICS).text
    for secret in (ALICE, KIDS, METRICS):
        assert secret not in text


def test_the_ledger_is_exact_across_gunicorns_workers_with_faults(gunicorn, service_env, fake_ai):
    env = {**service_env, "API_KEY": KEYS, "UPSTREAM_RETRY_BACKOFF": "0.01"}
    server = gunicorn(env, workers=4)
    capacity = Scripted(429, 3040, "AiError: Capacity temporarily exceeded")
    fake_ai.script(capacity, capacity, Scripted(500, 9999, "something new"))

    def chat(i: int) -> int:
        return requests.post(
            server.url + "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": f"a fox {i}"}]},
            headers={"Authorization": f"Bearer {ALICE}"},
            timeout=30,
        ).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert sorted(pool.map(chat, range(16))) == [200] * 15 + [502]
    time.sleep(0.2)
    answer = requests.get(
        server.url + "/v1/usage", headers={"Authorization": f"Bearer {ALICE}"}, timeout=10
    ).json()
    alice = key_entry(answer["today"], "alice")
    assert alice["images"] == 15 and sum(alice["failed"].values()) == 1
    assert answer["today"]["accounts"][0]["calls"] == {"ok": 15, "capacity": 2, "error": 1}
    assert len(fake_ai.calls) == 18


@pytest.fixture
def redis_url(tmp_path):
    server = RedisServer(tmp_path / "redis", free_port(), "usage-test-password").start()
    yield server.url
    server.stop()


def test_nodes_on_redis_count_into_one_ledger(start_service, fake_ai, redis_url, tmp_path):
    nodes = [
        start_service(API_KEY=KEYS, REDIS_URL=redis_url, DATA_DIR=str(tmp_path / f"n{i}"))
        for i in range(2)
    ]
    fake_ai.neurons = 10.0
    for i in range(6):
        assert nodes[i % 2].chat(f"a fox {i}", key=ALICE).status_code == 200
    for node in nodes:
        today = usage(node, ALICE)["today"]
        assert key_entry(today, "alice")["images"] == 6
        assert today["accounts"][0]["neurons"] == 60.0


class BrokenBook:
    """A ledger store that refuses every write, as a full disk or an OOM Redis does."""

    def add(self, day, counts):
        raise UsageUnavailable("OperationalError")

    def days(self, days):
        raise UsageUnavailable("OperationalError")

    def close(self):
        pass


def test_a_ledger_that_cannot_be_written_never_fails_a_generation(start_service, caplog):
    service = start_service(API_KEY=KEYS)
    ledger = service.app.extensions["flux_api"].ledger
    working, ledger.book = ledger.book, BrokenBook()
    with caplog.at_level(logging.WARNING, logger="flux_api.observe.ledger"):
        assert service.chat("a fox", key=ALICE).status_code == 200
        assert service.chat("a cat", key=ALICE).status_code == 200
        assert service.get("/v1/usage", key=ALICE).status_code == 503
        ledger.book = working
        assert service.chat("an owl", key=ALICE).status_code == 200
    warnings = [r.getMessage() for r in caplog.records if r.name == "flux_api.observe.ledger"]
    assert warnings == [
        "the usage ledger cannot be written (OperationalError); its counts are lost",
        "the usage ledger is written again",
    ]
    assert key_entry(usage(service, ALICE)["today"], "alice")["images"] == 1


def test_an_edit_is_estimated_with_its_input_image(start_service, fake_ai):
    service = start_service(API_KEY=KEYS)
    files = {"image": ("fox.png", picture(1024, 1024), "image/png")}
    fields = {"prompt": "make it night", "size": "1024x1024"}
    headers = {"Authorization": f"Bearer {ALICE}"}
    answer = requests.post(
        service.url + "/v1/images/edits", files=files, data=fields, headers=headers, timeout=30
    )
    assert answer.status_code == 200, answer.text
    [call] = fake_ai.calls
    model = find_model(call["model"])
    with_input = estimated_neurons(model.id, 1024, 1024, None, 1)
    assert with_input > estimated_neurons(model.id, 1024, 1024, None, 0)
    [account] = usage(service, ALICE)["today"]["accounts"]
    assert account["neurons_estimated"] == pytest.approx(with_input, abs=0.01)


def test_a_generation_that_failed_before_any_try_is_counted_once(start_service, fake_ai):
    service = start_service(API_KEY=KEYS, UPSTREAM_CONCURRENCY="1", UPSTREAM_TIMEOUT="1")
    fake_ai.latency = 2  # the first holds the only slot past both deadlines
    with ThreadPoolExecutor(max_workers=2) as pool:
        statuses = list(
            pool.map(lambda i: service.chat(f"a fox {i}", key=ALICE).status_code, range(2))
        )
    assert statuses == [504, 504]
    time.sleep(0.3)
    alice = key_entry(usage(service, ALICE)["today"], "alice")
    assert sum(alice["failed"].values()) == 2 and alice["refused"] == {}
