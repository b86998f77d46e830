"""Redis at its `maxmemory` (policy noeviction), against a real redis-server: full of other
programs' data, nothing is billed and the store says "full"; full of this service's images, the
oldest make room and the size counter stays exact."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from tests.support.redis_server import assert_counter_exact, client_of, small_redis_server

_OTHER_VALUE = b"x" * 100_000


@pytest.fixture
def small_redis(tmp_path):
    with small_redis_server(tmp_path / "redis", maxmemory="16mb") as server:
        yield server


def memory(client: redis.Redis) -> tuple[int, int]:
    info = client.info("memory")
    return info["used_memory"], info["maxmemory"]


def fill_with_other_data(client: redis.Redis) -> int:
    """Another program's keys until Redis refuses them, then maxmemory just below what Redis
    holds (a refused command's buffers, once freed, would let the next write in); how many."""
    count = 0
    while True:
        try:
            client.set(f"other-program:{count}", _OTHER_VALUE)
        except redis.exceptions.OutOfMemoryError:
            break
        count += 1
    squeeze(client, 256 * 1024)
    return count


def squeeze(client: redis.Redis, over: int) -> None:
    """Lower maxmemory to `over` bytes below what Redis holds now."""
    used, _ = memory(client)
    client.config_set("maxmemory", used - over)


def image_path(response) -> str:
    content = response.json()["choices"][0]["message"]["content"]
    return re.search(r"/image/[A-Za-z0-9_-]+", content).group(0)


def test_redis_full_of_other_data_bills_nothing_and_says_full(
    start_service, fake_ai, small_redis, caplog
):
    service = start_service(REDIS_URL=small_redis.url)
    assert service.get("/healthz").json()["store"] == "writable"
    assert fill_with_other_data(client_of(small_redis)) > 10

    answers = {
        "chat": service.chat("a fox"),
        "images n=4": service.post("/v1/images/generations", {"prompt": "a fox", "n": 4}),
    }
    for name, answer in answers.items():
        assert answer.status_code == 503, name
        error = answer.json()["error"]
        assert error["code"] == "store_unavailable", name
        assert "Redis is full" in error["message"] and "maxmemory" in error["message"], name
        assert "nothing was billed" in error["message"], name
    streamed = service.chat("a fox", stream=True)  # refused before its first byte
    assert streamed.status_code == 503
    assert "Redis is full" in streamed.json()["error"]["message"]

    assert fake_ai.calls == []  # calls billed with Redis full: 0 (was 1 per image)
    warnings = [r for r in caplog.records if "Redis is full" in r.getMessage()]
    assert len(warnings) == 1  # one line per outage, not one per refused request
    health = service.get("/healthz", key=None)
    assert health.status_code == 503
    assert health.json()["store"] == "full" and health.json()["status"] == "unavailable"
    page = service.get("/", key=None).text
    assert "The image store is full" in page and "The service is up" not in page
    time.sleep(1.1)  # past the answer cached from the refusals: the probe itself says so
    assert service.get("/healthz", key=None).json()["store"] == "full"


def test_redis_full_of_our_images_evicts_the_oldest_and_keeps_the_count_exact(
    start_service, fake_ai, small_redis
):
    """Redis's maxmemory lowered below what the images take: the next generations evict the
    oldest (eviction and the counter in one script Redis runs at maxmemory)."""
    fake_ai.realistic = True  # photo-like JPEGs of about 190 KiB
    service = start_service(REDIS_URL=small_redis.url, STORE_SIZE_LIMIT_MB="64")
    client = client_of(small_redis)
    first = [image_path(service.chat(f"picture {i}")) for i in range(30)]
    assert_counter_exact(client)
    squeeze(client, 1024 * 1024)

    answers = [service.chat(f"later {i}") for i in range(10)]
    assert [a.status_code for a in answers] == [200] * 10
    assert len(fake_ai.calls) == 40  # each billed once, each delivered
    later = [image_path(a) for a in answers]
    assert all(service.get(p, key=None).status_code == 200 for p in later)
    assert service.get(first[0], key=None).status_code == 404  # the oldest went first
    assert assert_counter_exact(client) > 0
    used, limit = memory(client)
    assert used <= limit  # the images never pushed Redis past maxmemory
    assert service.get("/healthz", key=None).json()["store"] == "writable"


def test_room_for_one_image_admits_one_generation_in_flight(start_service, fake_ai, small_redis):
    """Each generation reserves its worst case (3 MiB for 1024x1024) before its paid call:
    with room for one, the second of two at once is refused unbilled."""
    service = start_service(REDIS_URL=small_redis.url)
    client = client_of(small_redis)
    assert service.chat("warm up").status_code == 200  # the service's own small keys exist
    used, _ = memory(client)
    client.config_set("maxmemory", used + 4 * 1024 * 1024)
    fake_ai.calls.clear()
    fake_ai.latency = 1.0
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda i: service.chat(f"a fox {i}"), range(2)))
    assert sorted(a.status_code for a in answers) == [200, 503]
    assert len(fake_ai.calls) == 1
    assert service.chat("after").status_code == 200  # the reservation was given back


def test_eviction_runs_in_one_script_allowed_at_maxmemory(small_redis):
    """What the fix relies on (Redis >= 7): a script flagged allow-oom may DEL and DECRBY at
    maxmemory, through redis-py's register_script (EVALSHA, reloaded after SCRIPT FLUSH)."""
    client = client_of(small_redis)
    client.set("counter", 10)
    fill_with_other_data(client)
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        client.decrby("counter", 1)
    script = client.register_script(
        "#!lua flags=allow-oom\nredis.call('DEL', KEYS[1])\nreturn redis.call('DECRBY', KEYS[2], 3)"
    )
    assert script(keys=["other-program:0", "counter"]) == 7
    client.script_flush()
    assert script(keys=["other-program:1", "counter"]) == 4
