"""Alerts to ALERT_WEBHOOK_URL, received by a local webhook receiver (a real HTTP server): each
kind in each format, at most one message per kind across gunicorn's workers and across nodes on
one Redis, a failing webhook as one warning that never fails or holds a generation, and no
secret in any log."""

from __future__ import annotations

import re
import shutil
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from flux_api.config.accounts import short_id
from tests.support.fakes.workers_ai import ACCOUNT_ID, TOKEN
from tests.support.programs import free_port
from tests.support.redis_server import RedisServer
from tests.support.service import SECRETS, Service
from tests.support.webhook_receiver import RunningReceiver, WebhookReceiver

PUBLIC = "https://img.example.com"
HOOK_SECRET = "T000-B000-SECRET-hook"
LABEL = short_id(ACCOUNT_ID)


@pytest.fixture
def receiver():
    with RunningReceiver(WebhookReceiver()) as running:
        yield running


def hook_url(receiver: WebhookReceiver, fmt: str) -> str:
    """A URL with a secret in its path, as Slack's and Discord's are; ntfy's last segment is
    its topic, and its query the topic's access token (ntfy's ?auth=)."""
    if fmt == "ntfy":
        return f"{receiver.url}/alerts?auth={HOOK_SECRET}"
    return f"{receiver.url}/hooks/{HOOK_SECRET}"


def alert_env(receiver: WebhookReceiver, fmt: str = "json", **more) -> dict:
    return {
        "ALERT_WEBHOOK_URL": hook_url(receiver, fmt),
        "ALERT_WEBHOOK_FORMAT": fmt,
        "PUBLIC_BASE_URL": PUBLIC,
        **more,
    }


def break_the_store(data_dir: str) -> None:
    images = Path(data_dir) / "images"
    shutil.rmtree(images)
    images.write_text("not a directory any more")


def check_body(fmt: str, received, kind: str, account: str | None, *words: str) -> None:
    """The body as `fmt` has it, and the words the message must say."""
    body = received.body
    assert received.headers["content-type"] == "application/json"
    if fmt == "json":
        assert received.path == f"/hooks/{HOOK_SECRET}"
        assert body["kind"] == kind and body["account"] == account
        assert body["service"] == PUBLIC and body["source"] == "flux-api"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["time"])
        text = body["title"] + " " + body["message"]
    elif fmt == "slack":
        assert set(body) == {"text"}
        text = body["text"]
    elif fmt == "discord":
        assert set(body) == {"content"}
        text = body["content"]
    else:  # ntfy's JSON publishing: to the server's root, the topic in the body
        assert received.path == "/" and received.query == f"auth={HOOK_SECRET}"
        assert body["topic"] == "alerts" and kind in body["tags"]
        assert body["priority"] in (3, 4, 5) and body["click"] == PUBLIC
        text = body["title"] + " " + body["message"]
    for word in words:
        assert word in text, (word, text)


def service_log(caplog) -> str:
    """What the service logged (the fakes' and the receiver's own request lines left out)."""
    return "\n".join(
        f"{r.getMessage()} {r.exc_text or ''}"
        for r in caplog.records
        if not r.name.startswith("werkzeug")
    )


FORMATS = ["json", "slack", "discord", "ntfy"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_pool_thresholds_a_refused_token_and_a_parked_account(
    start_service, fake_ai, receiver, fmt, caplog
):
    service = start_service(**alert_env(receiver, fmt, CF_DAILY_NEURONS="10"))
    fake_ai.neurons = 4.5
    assert service.chat("a fox").status_code == 200  # 45 %: nothing
    assert service.chat("a fox").status_code == 200  # 90 %
    [pool_80] = receiver.wait_for(1)
    check_body(fmt, pool_80, "pool_80", None, "90 %", "CF_DAILY_NEURONS 10", "CF_ACCOUNTS")
    assert service.chat("a fox").status_code == 200  # 135 %
    pool_100 = receiver.wait_for(2)[1]
    check_body(fmt, pool_100, "pool_100", None, "135 %", "Cloudflare will soon refuse calls")

    fake_ai.accounts[ACCOUNT_ID] = "cf-token-SECRET-changed"  # the service's token is now wrong
    assert service.chat("a fox").status_code == 502
    refused = receiver.wait_for(3)[2]
    check_body(fmt, refused, "token_refused", LABEL, LABEL, "fix CF_API_TOKEN")

    fake_ai.accounts[ACCOUNT_ID] = TOKEN
    fake_ai.exhausted.add(ACCOUNT_ID)
    assert service.chat("a fox").status_code == 429
    parked = receiver.wait_for(4)[3]
    check_body(fmt, parked, "account_parked", LABEL, LABEL, "parked until", "00:00:00Z")
    assert len(receiver.wait_for(5, seconds=0.5)) == 4  # nothing more, nothing twice
    assert HOOK_SECRET not in service_log(caplog)


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_unusable_store_is_an_alert_naming_data_dir(
    start_service, service_env, fake_ai, receiver, fmt
):
    service = start_service(**alert_env(receiver, fmt))
    break_the_store(service_env["DATA_DIR"])
    for _ in range(3):
        assert service.chat("a fox").json()["error"]["code"] == "store_unavailable"
    [store] = receiver.wait_for(1)
    check_body(fmt, store, "store_unusable", None, "image store", "503", "Check DATA_DIR")
    assert len(receiver.wait_for(2, seconds=0.5)) == 1
    assert fake_ai.calls == []


def break_the_counters(data_dir: str) -> None:
    """RATE_LIMIT's counters, under DATA_DIR too, as damaged as the images beside them."""
    database = sqlite3.connect(Path(data_dir) / "ratelimit" / "cache.db")
    database.execute("DROP TABLE Cache")
    database.commit()
    database.close()


def test_a_rate_limit_meeting_the_unusable_store_first_is_one_alert(
    start_service, service_env, fake_ai, receiver
):
    # The limiter counts in the same store, before the pipeline looks at it: it announces.
    service = start_service(**alert_env(receiver, RATE_LIMIT="100/minute"))
    break_the_store(service_env["DATA_DIR"])
    break_the_counters(service_env["DATA_DIR"])
    for _ in range(3):
        refused = service.chat("a fox").json()["error"]
        assert refused["code"] == "store_unavailable" and "DATA_DIR" in refused["message"]
    [store] = receiver.wait_for(1)
    check_body("json", store, "store_unusable", None, "rate-limit counters", "Check DATA_DIR")
    assert len(receiver.wait_for(2, seconds=0.5)) == 1
    assert fake_ai.calls == []


def wait_for_both_workers(server) -> None:
    deadline = time.monotonic() + 30
    while len(set(re.findall(r"pid=(\d+) .*path=/healthz", server.log))) < 2:
        assert time.monotonic() < deadline, server.log
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: Service(server.url).get("/healthz"), range(8)))


def test_the_same_alert_in_two_gunicorn_workers_is_one_message(
    gunicorn, service_env, fake_ai, receiver
):
    server = gunicorn({**service_env, **alert_env(receiver)}, workers=2)
    wait_for_both_workers(server)  # each has opened the store before it breaks
    break_the_store(service_env["DATA_DIR"])
    suppressed = "store_unusable|- not sent: another worker or node has claimed it"

    def chat(_):
        return Service(server.url).chat("a fox").status_code

    with ThreadPoolExecutor(8) as pool:
        for _ in range(15):  # until both workers met the broken store
            answers = set(pool.map(chat, range(16)))
            assert answers == {503}, server.log
            receiver.wait_for(1)
            if suppressed in server.log:
                break
    assert suppressed in server.log  # the second worker claimed and lost
    assert len(receiver.of_kind("store_unusable")) == 1
    assert HOOK_SECRET not in server.log
    lines = re.findall(r"pid=(\d+) .* alert store_unusable\|- not sent", server.log)
    assert len(lines) == 1  # once per worker and hour, not per request


def test_two_nodes_on_one_redis_send_one_message(
    start_service, fake_ai, receiver, tmp_path, caplog
):
    redis = RedisServer(tmp_path / "redis", free_port(), "alerts-test-password").start()
    try:
        env = alert_env(receiver, CF_DAILY_NEURONS="10", REDIS_URL=redis.url)
        nodes = [start_service(**env, DATA_DIR=str(tmp_path / f"n{i}")) for i in range(2)]
        fake_ai.neurons = 20.0
        assert nodes[0].chat("a fox").status_code == 200  # 200 %: node 0 sends
        receiver.wait_for(1)
        assert nodes[1].chat("a fox").status_code == 200  # 400 %: node 1 is told it was sent
        deadline = time.monotonic() + 15
        while "not sent: another worker or node" not in caplog.text:
            assert time.monotonic() < deadline, caplog.text
            time.sleep(0.05)
        assert [r.body["kind"] for r in receiver.received] == ["pool_100"]
        assert "alerts-test-password" not in service_log(caplog)
    finally:
        redis.stop()


def test_redis_away_two_nodes_on_one_data_dir_send_one_message(
    start_service, fake_ai, receiver, tmp_path, caplog
):
    # Redis away is the very outage store_unusable reports: the claims fall back to DATA_DIR.
    redis = RedisServer(tmp_path / "redis", free_port(), "alerts-test-password").start()
    try:
        env = alert_env(receiver, REDIS_URL=redis.url, DATA_DIR=str(tmp_path / "node"))
        nodes = [start_service(**env) for _ in range(2)]
    finally:
        redis.stop()
    for node in nodes:
        refused = node.chat("a fox").json()["error"]
        assert refused["code"] == "store_unavailable" and "REDIS_URL" in refused["message"]
    [store] = receiver.wait_for(1)
    check_body("json", store, "store_unusable", None, "Check REDIS_URL")
    assert len(receiver.wait_for(2, seconds=1.0)) == 1
    assert "store_unusable|- not sent: another worker or node has claimed it" in caplog.text
    assert "alerts-test-password" not in service_log(caplog)
    assert HOOK_SECRET not in service_log(caplog)


def test_a_failing_webhook_is_one_warning_and_generations_go_on(
    start_service, fake_ai, receiver, caplog
):
    receiver.status = 500
    service = start_service(**alert_env(receiver, CF_DAILY_NEURONS="10"))
    fake_ai.neurons = 9.0
    assert service.chat("a fox").status_code == 200  # 90 %: pool_80, refused by the webhook
    receiver.wait_for(1)
    assert service.chat("a fox").status_code == 200  # 180 %: pool_100, refused too
    receiver.wait_for(2)
    fake_ai.accounts[ACCOUNT_ID] = "cf-token-SECRET-changed"
    assert service.chat("a fox").status_code == 502  # token_refused, refused too
    receiver.wait_for(3)
    warnings = [r.getMessage() for r in caplog.records if "alert webhook" in r.getMessage()]
    host = receiver.url.removeprefix("http://")
    assert warnings == [
        f"the alert webhook at {host} failed (HTTP 500); alerts are not delivered until it "
        "answers (ALERT_WEBHOOK_URL)"
    ]
    receiver.status = 200
    fake_ai.accounts[ACCOUNT_ID] = TOKEN
    fake_ai.exhausted.add(ACCOUNT_ID)
    assert service.chat("a fox").status_code == 429  # account_parked: delivered
    assert receiver.wait_for(4)[3].body["kind"] == "account_parked"
    deadline = time.monotonic() + 5
    while "takes alerts again" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    assert f"the alert webhook at {host} takes alerts again" in caplog.text
    for secret in (HOOK_SECRET, *SECRETS, "cf-token-SECRET-changed"):
        assert secret not in service_log(caplog)


def test_a_webhook_that_never_answers_holds_no_generation(start_service, fake_ai, receiver, caplog):
    receiver.hold = True
    service = start_service(**alert_env(receiver, CF_DAILY_NEURONS="10"))
    fake_ai.neurons = 9.0
    assert service.chat("a fox").status_code == 200  # 90 %: its alert hangs in the webhook
    receiver.wait_for(1)
    assert receiver.held == 1
    for _ in range(3):  # made while the webhook still holds the alert's request
        assert service.chat("a fox").status_code == 200
    assert receiver.held == 1
    receiver.release()
    assert HOOK_SECRET not in service_log(caplog)


def test_no_webhook_no_alert_thread(start_service, fake_ai):
    service = start_service()
    fake_ai.exhausted.add(ACCOUNT_ID)
    assert service.chat("a fox").status_code == 429
    assert not any(
        "Alerts" in repr(s) for s in service.app.extensions["flux_api"].events._subscribers
    )
