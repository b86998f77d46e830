"""Damaged shared state (the account pool's record, rate-limit counters), on disk under DATA_DIR
or in Redis, as a crash or another program leaves it: never a 500 or a 503, one warning, and the
record is dropped and rebuilt while generation goes on."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import diskcache
import pytest
import redis

from tests.support.accounts import B_ID, B_TOKEN
from tests.support.fakes.workers_ai import ACCOUNT_ID
from tests.support.programs import free_port
from tests.support.redis_server import RedisServer

NOT_A_PICKLE = b"\x80\x04\x95garbage left by a crash"


def damage_rows(cache_dir: Path, damage: str) -> int:
    """Make every value of a diskcache unreadable, in its SQLite rows or in its value files."""
    database = sqlite3.connect(cache_dir / "cache.db")
    rows = database.execute("SELECT rowid FROM Cache").fetchall()
    for (rowid,) in rows:
        if damage == "row":
            database.execute(
                "UPDATE Cache SET mode = 4, filename = NULL, value = ? WHERE rowid = ?",
                (NOT_A_PICKLE, rowid),
            )
        else:  # the value lives in a file of its own, truncated by a crash
            name = f"damaged-{rowid}.val"
            (cache_dir / name).write_bytes(NOT_A_PICKLE)
            database.execute(
                "UPDATE Cache SET mode = 4, filename = ?, value = NULL WHERE rowid = ?",
                (name, rowid),
            )
    database.commit()
    database.close()
    return len(rows)


def damage_warnings(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelname == "WARNING" and "damaged" in r.getMessage()
    ]


@pytest.mark.parametrize("damage", ["row", "file"])
@pytest.mark.parametrize("pool", ["one account", "two accounts"])
def test_an_account_record_that_cannot_be_read_is_dropped_once_and_rebuilt(
    start_service, service_env, fake_ai, caplog, damage, pool
):
    accounts = Path(service_env["DATA_DIR"]) / "accounts"
    with diskcache.Cache(str(accounts)) as cache:
        cache.set("accounts", {ACCOUNT_ID: {"last_used": 1.0}})
    assert damage_rows(accounts, damage) == 1
    extra = {}
    if pool == "two accounts":
        fake_ai.add_account(B_ID, B_TOKEN)
        extra = {"CF_ACCOUNTS": f"{B_ID}:{B_TOKEN}"}
    service = start_service(**extra)  # a restart: the damage is already on disk

    assert [service.chat("a fox").status_code for _ in range(3)] == [200] * 3
    health = service.get("/healthz")
    assert health.status_code == 200
    assert {entry["state"] for entry in health.json()["accounts"]} == {"ok"}
    assert len(damage_warnings(caplog)) == 1, caplog.text
    with diskcache.Cache(str(accounts)) as cache:
        assert cache.get("accounts") is None or isinstance(cache.get("accounts"), dict)


def test_the_account_record_damaged_while_serving_is_dropped_once(
    start_service, service_env, fake_ai, caplog
):
    fake_ai.add_account(B_ID, B_TOKEN)
    service = start_service(CF_ACCOUNTS=f"{B_ID}:{B_TOKEN}")
    assert service.chat("a fox").status_code == 200
    damage_rows(Path(service_env["DATA_DIR"]) / "accounts", "row")
    assert [service.chat("a fox").status_code for _ in range(4)] == [200] * 4
    assert service.get("/healthz").status_code == 200
    assert len(damage_warnings(caplog)) == 1, caplog.text
    assert {call["account"] for call in fake_ai.calls[-2:]} == {ACCOUNT_ID, B_ID}  # spread again


def wait_for_a_fresh_window(period: int = 60) -> None:
    """Keep clear of a window's end, so the damaged counter is the one the next requests use."""
    if time.time() % period > period - 5:
        time.sleep(period - time.time() % period + 0.1)


@pytest.mark.parametrize("damage", ["row", "file"])
def test_a_rate_limit_counter_that_cannot_be_read_is_dropped_once(
    start_service, service_env, fake_ai, caplog, damage
):
    wait_for_a_fresh_window()
    service = start_service(RATE_LIMIT="3/minute")
    assert service.chat("a fox").status_code == 200
    assert damage_rows(Path(service_env["DATA_DIR"]) / "ratelimit", damage) >= 1
    statuses = [service.chat("a fox").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]  # counted again from nothing, and still limited
    assert len(damage_warnings(caplog)) == 1, caplog.text


# The same in Redis: a value not written by the service at one of its keys.


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis", free_port()).start()
    yield server
    server.stop()


@pytest.mark.parametrize("kind", ["not json", "a hash", "too deep", "impossible times"])
def test_an_account_record_in_redis_not_written_by_us_is_dropped_once(
    start_service, redis_server, fake_ai, caplog, kind
):
    client = redis.Redis.from_url(redis_server.url)
    key = "flux-api:accounts"
    if kind == "not json":
        client.set(key, b"\xff not json")
    elif kind == "a hash":
        client.hset(key, "field", "value")
    elif kind == "too deep":
        client.set(key, "[" * 100_000)
    else:
        client.set(key, '{"%s": {"parked_until": 1e300, "busy": 1e300}}' % ACCOUNT_ID)
    service = start_service(REDIS_URL=redis_server.url)
    assert [service.chat("a fox").status_code for _ in range(3)] == [200] * 3
    health = service.get("/healthz")
    assert health.status_code == 200 and health.json()["accounts"][0]["state"] == "ok"
    if kind != "impossible times":  # those are only dropped: the record itself is readable
        assert len(damage_warnings(caplog)) == 1, caplog.text
    assert client.type(key) in (b"none", b"string")


@pytest.mark.parametrize("value", ["lots", "99999999999999999999", "-1000000", "a hash"])
def test_a_rate_limit_counter_in_redis_not_written_by_us_is_dropped_once(
    start_service, redis_server, fake_ai, caplog, value
):
    wait_for_a_fresh_window()
    client = redis.Redis.from_url(redis_server.url)
    service = start_service(REDIS_URL=redis_server.url, RATE_LIMIT="3/minute")
    assert service.chat("a fox").status_code == 200
    counters = client.keys("flux-api:ratelimit:*")
    assert len(counters) == 1
    if value == "a hash":
        client.delete(counters[0])
        client.hset(counters[0], "field", "value")
    else:
        client.set(counters[0], value)
    statuses = [service.chat("a fox").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert len(damage_warnings(caplog)) == 1, caplog.text


def test_a_rate_limit_database_that_cannot_be_used_is_a_503_naming_data_dir(
    start_service, service_env, fake_ai
):
    service = start_service(RATE_LIMIT="3/minute")
    assert service.chat("a fox").status_code == 200
    database = sqlite3.connect(Path(service_env["DATA_DIR"]) / "ratelimit" / "cache.db")
    database.execute("DROP TABLE Cache")  # damaged beyond one record
    database.commit()
    database.close()
    refused = service.chat("a fox")
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "store_unavailable"
    assert "DATA_DIR" in refused.json()["error"]["message"]
    assert len(fake_ai.calls) == 1  # refused before any paid call
