"""Several nodes on one Redis (REDIS_URL): images, rate limits, the account pool's state and the
created key shared; expiry by Redis's TTL; the size cap; Redis lost and back; its password never
shown. Each "node" is the app on its own port with its own DATA_DIR, against a real
redis-server (tests/system/test_multinode.py runs gunicorn nodes behind nginx)."""

from __future__ import annotations

import os
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
import requests

from tests.support.fakes.workers_ai import ACCOUNT_ID, Scripted
from tests.support.old_redis import old_redis
from tests.support.programs import Gunicorn, free_port
from tests.support.redis_server import RedisServer
from tests.support.service import API_KEY

PASSWORD = "redis-SECRET-pass-42"


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis", free_port(), PASSWORD).start()
    yield server
    server.stop()


@pytest.fixture
def node(start_service, redis_server, tmp_path):
    """Start a node on the shared Redis, with a DATA_DIR of its own."""
    count = iter(range(100))

    def start(**overrides):
        data = tmp_path / f"node-{next(count)}"
        return start_service(REDIS_URL=redis_server.url, DATA_DIR=str(data), **overrides)

    return start


def image_path(response) -> str:
    content = response.json()["choices"][0]["message"]["content"]
    return re.search(r"/image/[A-Za-z0-9_-]+", content).group(0)


def test_an_image_made_on_one_node_is_served_by_another(node, fake_ai, tmp_path):
    first, second = node(), node()
    path = image_path(first.chat("a fox"))
    here, there = first.get(path, key=None), second.get(path, key=None)
    assert there.status_code == 200 and there.content == here.content
    for header in ("Content-Type", "Content-Length", "ETag", "Expires", "Cache-Control"):
        assert there.headers[header] == here.headers[header], header
    assert there.headers["Content-Type"] == "image/jpeg"
    assert (
        second.get(path, key=None, headers={"If-None-Match": here.headers["ETag"]}).status_code
        == 304
    )
    assert not (tmp_path / "node-0" / "images").exists()  # DATA_DIR holds nothing shared


def test_the_rate_limit_is_one_count_across_nodes(node, fake_ai):
    if time.time() % 60 > 55:  # keep all eight requests inside one minute's window
        time.sleep(60 - time.time() % 60 + 0.1)
    nodes = [node(RATE_LIMIT="4/minute"), node(RATE_LIMIT="4/minute")]
    answers = [nodes[i % 2].chat("a fox") for i in range(8)]
    assert sorted(a.status_code for a in answers) == [200] * 4 + [429] * 4
    refused = [a for a in answers if a.status_code == 429]
    assert all(int(a.headers["Retry-After"]) >= 1 for a in refused)
    assert len(fake_ai.calls) == 4


def test_an_account_parked_by_one_node_is_skipped_by_the_other(node, fake_ai):
    other_id, other_token = "bbbbbb0123456789abcdef0123456789", "cf-token-B-SECRET-77aa"
    fake_ai.add_account(other_id, other_token)
    pool = {"CF_ACCOUNTS": f"{other_id}:{other_token}"}
    first, second = node(**pool), node(**pool)
    fake_ai.exhausted.add(ACCOUNT_ID)
    assert first.chat("a fox").status_code == 200
    assert first.chat("a fox").status_code == 200  # one of the two went to A and parked it
    fake_ai.calls.clear()
    for _ in range(4):
        assert second.chat("a fox").status_code == 200
    assert fake_ai.calls_to(ACCOUNT_ID) == []
    states = [a["state"] for a in second.get("/healthz").json()["accounts"]]
    assert states == ["quota_exhausted", "ok"]


def test_images_expire_by_redis_ttl(node, fake_ai, redis_server):
    service = node(IMAGE_EXPIRATION="1")
    path = image_path(service.chat("a fox"))
    key = path.rsplit("/", 1)[1]
    client = redis.Redis.from_url(redis_server.url)
    stored = [k for k in client.keys("flux-api:image:*") if k.decode().endswith(key)]
    assert len(stored) == 1 and 0 < client.pttl(stored[0]) <= 1000
    assert service.get(path, key=None).status_code == 200
    time.sleep(1.2)
    assert service.get(path, key=None).status_code == 404
    assert client.exists(stored[0]) == 0  # Redis dropped it itself


def test_the_size_cap_evicts_the_oldest_images_first(node, fake_ai):
    fake_ai.realistic = True  # photo-like JPEGs of about 190 KiB
    service = node(STORE_SIZE_LIMIT_MB="1")
    paths = [image_path(service.chat(f"picture {i}")) for i in range(8)]
    found = [service.get(p, key=None).status_code for p in paths]
    assert found[-5:] == [200] * 5  # five fit in 1 MiB
    assert found[:2] == [404, 404]  # the oldest went first
    total = sum(
        len(service.get(p, key=None).content) for p in paths if found[paths.index(p)] == 200
    )
    assert total <= 1024 * 1024


def test_a_full_redis_drops_the_oldest_images_never_a_500(start_service, fake_ai, tmp_path):
    """Redis's own maxmemory below STORE_SIZE_LIMIT_MB: the oldest images make room. (8 MB:
    each generation first reserves its worst case, 3 MiB for 1024x1024.)"""
    small = RedisServer(tmp_path / "small", free_port(), maxmemory="8mb").start()
    try:
        fake_ai.realistic = True
        service = start_service(REDIS_URL=small.url, STORE_SIZE_LIMIT_MB="64")
        answers = [service.chat(f"picture {i}") for i in range(50)]
        assert [a.status_code for a in answers] == [200] * 50
        paths = [image_path(a) for a in answers]
        assert service.get(paths[-1], key=None).status_code == 200
        assert service.get(paths[0], key=None).status_code == 404
    finally:
        small.stop()


def test_redis_lost_means_503_before_any_upstream_call_and_back_without_restart(
    node, fake_ai, redis_server
):
    service = node()
    assert service.chat("a fox").status_code == 200
    redis_server.stop()
    fake_ai.calls.clear()
    for deliver in (
        lambda: service.chat("a fox"),
        lambda: service.post("/v1/images/generations", {"prompt": "a fox"}),
    ):
        response = deliver()
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "store_unavailable"
    assert fake_ai.calls == []  # no quota spent on an image that could not be kept
    health = service.get("/healthz")
    assert health.status_code == 503 and health.json()["store"] == "unreachable"

    redis_server.start()  # the same port, empty
    deadline = time.monotonic() + 10
    while service.get("/healthz").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert service.get("/healthz").status_code == 200
    assert service.chat("a fox").status_code == 200


def test_redis_needs_an_api_key(redis_server, service_env, tmp_path):
    """A key created in Redis would live only as long as Redis's data: refused at start."""
    env = {k: v for k, v in service_env.items() if k != "API_KEY"}
    result = Gunicorn({**env, "REDIS_URL": redis_server.url}, tmp_path).run_until_exit()
    assert result.returncode != 0
    assert "REDIS_URL is set, so API_KEY must be set too" in result.stdout + result.stderr


def test_a_wrong_password_is_one_line_at_start(redis_server, service_env, tmp_path):
    url = redis_server.url.replace(PASSWORD, "not-the-SECRET")
    result = Gunicorn({**service_env, "REDIS_URL": url}, tmp_path).run_until_exit()
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert (
        f"flux-api cannot start: REDIS_URL: Redis at redis://127.0.0.1:{redis_server.port}/0 "
        "cannot be used (wrong password)." in output
    )
    assert "SECRET" not in output and "Traceback" not in output


def test_redis_unreachable_at_start_is_one_line(service_env, tmp_path):
    url = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"
    result = Gunicorn({**service_env, "REDIS_URL": url}, tmp_path).run_until_exit()
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "REDIS_URL: Redis at redis://127.0.0.1:" in output and "(no connection)" in output
    assert PASSWORD not in output and "Traceback" not in output


def test_a_redis_older_than_7_stops_the_start_with_one_line(service_env, tmp_path):
    """Its scripts could not carry the `allow-oom` flag: every write would fail."""
    with old_redis("6.2.14") as url:
        result = Gunicorn({**service_env, "REDIS_URL": url}, tmp_path).run_until_exit()
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "is version 6.2; flux-api needs 7.0 or later" in output
    assert "Traceback" not in output


def test_the_password_never_reaches_a_log_or_an_answer(
    gunicorn, redis_server, service_env, fake_ai
):
    server = gunicorn({**service_env, "REDIS_URL": redis_server.url})
    answers = []
    for path in ("/healthz", "/", "/openapi.json"):
        answers.append(requests_get(server.url + path))
    fake_ai.script(Scripted(400, 3030, "AiError: Your output has been flagged (r-1)"))
    answers.append(chat_through(server))
    answers.append(chat_through(server))
    assert PASSWORD not in server.log + "".join(answers)


def requests_get(url: str) -> str:
    response = requests.get(url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)
    return response.text + str(response.headers)


def chat_through(server) -> str:
    response = requests.post(
        server.url + "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "a fox"}]},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=30,
    )
    return response.text + str(response.headers)


# From a review: what Redis going away must not do.


def test_a_worker_replaced_while_redis_is_away_does_not_stop_the_node(
    gunicorn, redis_server, service_env, fake_ai
):
    server = gunicorn({**service_env, "REDIS_URL": redis_server.url}, workers=2)
    master = server.process.pid
    workers = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    redis_server.stop()
    os.kill(int(workers[0]), signal.SIGKILL)  # gunicorn boots another worker, without Redis
    time.sleep(3)
    assert server.process.poll() is None, server.log
    assert requests.get(server.url + "/healthz", timeout=10).status_code == 503
    redis_server.start()
    deadline = time.monotonic() + 10
    while requests.get(server.url + "/healthz", timeout=10).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert '"choices"' in chat_through(server)


def test_an_answer_that_stores_nothing_needs_no_redis(node, fake_ai, redis_server):
    service = node()
    redis_server.stop()
    response = service.post(
        "/v1/images/generations", {"prompt": "a fox", "response_format": "b64_json"}
    )
    assert response.status_code == 200 and response.json()["data"][0]["b64_json"]
    assert len(fake_ai.calls) == 1


def test_a_hung_redis_does_not_queue_health_checks(node, fake_ai, redis_server):
    service = node()
    assert service.get("/healthz").status_code == 200
    redis_server.process.send_signal(signal.SIGSTOP)
    try:
        time.sleep(1.1)  # past the cached answer
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: service.get("/healthz"), range(8)))
        assert time.monotonic() - started < 4.5  # one PING waits (2 s), the others do not
        assert {a.status_code for a in answers} <= {200, 503}
    finally:
        redis_server.process.send_signal(signal.SIGCONT)


@pytest.mark.parametrize(
    "url, shown",
    [
        ("redis://127.0.0.1:{port}/0?password=qs-SECRET", "redis://127.0.0.1:{port}/0"),
        ("redis://:pw-SECRET@127.0.0.1:63a79/0", "redis://127.0.0.1:?/0"),
    ],
)
def test_redis_url_messages_never_show_a_password(service_env, tmp_path, url, shown):
    port = free_port()
    env = {**service_env, "REDIS_URL": url.format(port=port)}
    result = Gunicorn(env, tmp_path).run_until_exit()
    output = result.stdout + result.stderr
    assert f"REDIS_URL: Redis at {shown.format(port=port)} cannot be used" in output
    assert "SECRET" not in output and "Traceback" not in output


def test_nodes_with_different_lifetimes_keep_one_true_size_count(node, fake_ai, redis_server):
    long_lived, short_lived = node(IMAGE_EXPIRATION="3600"), node(IMAGE_EXPIRATION="1")
    for _ in range(3):
        long_lived.chat("a fox")
    short_lived.chat("a fox")
    time.sleep(1.2)
    short_lived.chat("a fox")  # its put forgets what has expired: its own first image only
    client = redis.Redis.from_url(redis_server.url)
    keys = client.keys("flux-api:image:*")
    assert len(keys) == 4
    sizes = sum(len(client.get(k).partition(b":")[2]) for k in keys)
    assert int(client.get("flux-api:images:bytes")) == sizes


def test_a_value_not_written_by_the_service_is_a_404(node, fake_ai, redis_server):
    service = node()
    key = "A" * 32
    redis.Redis.from_url(redis_server.url).set(f"flux-api:image:{key}", b"not-a-stamp")
    response = service.get(f"/image/{key}", key=None)
    assert response.status_code == 404 and response.json()["error"]["code"] == "image_not_found"


def test_a_redis_turned_read_only_is_a_503_before_any_upstream_call(
    node, fake_ai, redis_server, tmp_path
):
    service = node()
    primary = RedisServer(tmp_path / "primary", free_port()).start()
    try:
        redis.Redis.from_url(redis_server.url).replicaof("127.0.0.1", primary.port)
        response = service.chat("a fox")
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "store_unavailable"
        assert fake_ai.calls == []
    finally:
        redis.Redis.from_url(redis_server.url).replicaof("NO", "ONE")
        primary.stop()


def test_no_password_for_a_redis_that_wants_one_says_so(redis_server, service_env, tmp_path):
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    result = Gunicorn({**service_env, "REDIS_URL": url}, tmp_path).run_until_exit()
    assert f"Redis at {url} cannot be used (it needs a password)." in result.stderr + result.stdout
