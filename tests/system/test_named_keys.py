"""Named API keys: each has its own limit when it says so (exact across gunicorn's workers),
and its name, never the key, is what access lines show."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from flux_api.config.api_keys import bare_key

ALICE = "sk-alice-0123456789abcdef"
KIDS = "sk-kids-0123456789abcdef"
BOB = "sk-bob-0123456789abcdef"
OLD = "sk-old-bare-key"
KEYS = f"alice:{ALICE}, kids:{KIDS}:2/hour, bob:{BOB}:off, {OLD}"


def away_from_the_hour() -> None:
    """Keep a test's requests inside one hour's window."""
    if time.time() % 3600 > 3590:
        time.sleep(3600 - time.time() % 3600 + 0.1)


def test_a_keys_own_limit_replaces_rate_limit_for_it(start_service, fake_ai):
    away_from_the_hour()
    service = start_service(API_KEY=KEYS, RATE_LIMIT="3/hour")
    images = {"prompt": "a fox", "n": 1}
    assert [
        service.post("/v1/images/generations", images, key=KIDS).status_code for _ in range(3)
    ] == [200, 200, 429]
    assert [service.chat("a fox", key=ALICE).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert [service.chat("a fox", key=BOB).status_code for _ in range(5)] == [200] * 5  # off
    assert [service.chat("a fox", key=OLD).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert len(fake_ai.calls) == 2 + 3 + 5 + 3


def test_n_counts_against_a_keys_own_limit(start_service, fake_ai):
    away_from_the_hour()
    service = start_service(API_KEY=KEYS)
    assert service.post("/v1/images/generations", {"prompt": "a fox"}, key=KIDS).status_code == 200
    refused = service.post("/v1/images/generations", {"prompt": "a fox", "n": 2}, key=KIDS)
    assert refused.status_code == 429 and "2/hour" in refused.json()["error"]["message"]
    assert int(refused.headers["Retry-After"]) >= 1
    assert len(fake_ai.calls) == 1


def test_access_lines_name_the_key_never_show_it(start_service, caplog):
    service = start_service(API_KEY=KEYS)
    with caplog.at_level(logging.INFO, logger="flux_api.access"):
        for key in (ALICE, KIDS, OLD):
            assert service.get("/v1/models", key=key).status_code == 200
        assert service.get("/v1/models", key="sk-wrong-key").status_code == 401
        time.sleep(0.2)  # lines are written once the body is sent
    lines = [r.getMessage() for r in caplog.records if r.name == "flux_api.access"]
    named = [line.rsplit(" key=", 1)[1] for line in lines if "path=/v1/models" in line]
    assert named == ["alice", "kids", bare_key(OLD).name, "-"]
    everything = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (ALICE, KIDS, BOB, OLD, "sk-wrong-key"):
        assert secret not in everything


def test_a_keys_own_limit_is_exact_across_workers(gunicorn, service_env, fake_ai):
    away_from_the_hour()
    server = gunicorn({**service_env, "API_KEY": f"team:{ALICE}:5/hour"}, workers=4)

    def chat(_) -> int:
        response = requests.post(
            server.url + "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "a fox"}]},
            headers={"Authorization": f"Bearer {ALICE}"},
            timeout=30,
        )
        return response.status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(chat, range(12)))
    assert sorted(statuses) == [200] * 5 + [429] * 7
    assert len(fake_ai.calls) == 5
    server_log = server.log
    assert server_log.count("status=200") >= 5 and "key=team" in server_log
    assert ALICE not in server_log
