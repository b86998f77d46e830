"""Alerts without a socket: each format's body, the ntfy target, the settings' checks, and the
claim logic (one sender per alert across processes sharing DATA_DIR, a failed POST retried
once, a full queue dropping rather than waiting)."""

from __future__ import annotations

import logging
import os
import queue
import threading

import pytest

from flux_api.config.settings import SettingsError, load_settings
from flux_api.events import AccountChanged, GenerationDone, StoreFailed, UpstreamCall
from flux_api.observe import alerts as alerts_module
from flux_api.observe.alert_webhook import Alert, body, host_of, ntfy_target
from flux_api.observe.alerts import QUEUE_SIZE, Alerts
from flux_api.store.alert_claims import ClaimsUnavailable, DiskAlertClaims

SPENT = GenerationDone(
    "flux-1-schnell", (1024, 1024), 1, "ok", None, 0, 0, 0, 0,
    tries=(UpstreamCall("aaa", "m", "ok", 5.0, 1.0),),
)  # fmt: skip
PARKED = Alert("account_parked", "abc123…cdef", "account abc123…cdef parked", "Parked.", 0.0)
SECRET_URL = "https://hooks.slack.com/services/T000/B000/SECRET-xyz"


def test_the_json_body_is_generic():
    sent = body(PARKED, "json", "http://10.0.0.5:9000/alerts", "https://img.example.com")
    assert sent == {
        "source": "flux-api",
        "kind": "account_parked",
        "account": "abc123…cdef",
        "title": "account abc123…cdef parked",
        "message": "Parked.",
        "time": "1970-01-01T00:00:00Z",
        "service": "https://img.example.com",
    }
    assert body(PARKED, "json", "http://x/a")["service"] is None


def test_slack_and_discord_take_one_text_field():
    assert body(PARKED, "slack", SECRET_URL) == {
        "text": "*flux-api: account abc123…cdef parked*\nParked."
    }
    discord = body(PARKED, "discord", "https://discord.com/api/webhooks/1/t", "https://i.ex")
    assert discord == {
        "content": "**flux-api: account abc123…cdef parked** (https://i.ex)\nParked."
    }


def test_ntfy_gets_its_json_publishing_body_at_the_server_root():
    sent = body(PARKED, "ntfy", "https://ntfy.sh/flux-alerts", "https://i.ex")
    assert sent == {
        "topic": "flux-alerts",
        "title": "flux-api: account abc123…cdef parked",
        "message": "Parked.",
        "tags": ["hourglass", "account_parked"],
        "priority": 3,
        "click": "https://i.ex",
    }
    assert ntfy_target("https://ntfy.sh/flux-alerts") == ("https://ntfy.sh/", "flux-alerts")
    assert ntfy_target("http://10.0.0.5/ntfy/t1/") == ("http://10.0.0.5/ntfy/", "t1")


def test_ntfy_keeps_the_urls_query_its_access_token():
    url = "https://ntfy.example.com/flux-alerts?auth=SECRET-tk"
    assert ntfy_target(url) == ("https://ntfy.example.com/?auth=SECRET-tk", "flux-alerts")
    assert body(PARKED, "ntfy", url)["topic"] == "flux-alerts"


def test_a_log_line_names_the_host_only():
    assert host_of(SECRET_URL) == "hooks.slack.com"
    assert host_of("http://user:pw@127.0.0.1:8080/x?token=s") == "127.0.0.1:8080"


@pytest.mark.parametrize(
    "env, says",
    [
        ({"ALERT_WEBHOOK_URL": "ftp://host/SECRET-x"}, "ALERT_WEBHOOK_URL must be an http"),
        ({"ALERT_WEBHOOK_URL": "hooks.slack.com/SECRET-x"}, "ALERT_WEBHOOK_URL must be an http"),
        ({"ALERT_WEBHOOK_URL": "https://h:port/SECRET-x"}, "ALERT_WEBHOOK_URL must be an http"),
        (
            {"ALERT_WEBHOOK_URL": "https://ntfy.sh/", "ALERT_WEBHOOK_FORMAT": "ntfy"},
            "must name the ntfy topic",
        ),
        ({"ALERT_WEBHOOK_FORMAT": "teams"}, "ALERT_WEBHOOK_FORMAT must be one of json, slack"),
    ],
)
def test_bad_alert_settings_stop_the_start_without_echoing_the_url(tmp_path, env, says):
    with pytest.raises(SettingsError) as raised:
        load_settings({"DATA_DIR": str(tmp_path), **env})
    assert says in str(raised.value) and "SECRET" not in str(raised.value)


def test_a_private_address_is_the_operators_own(tmp_path):
    settings = load_settings(
        {"ALERT_WEBHOOK_URL": "http://192.168.1.5:2586/flux", "ALERT_WEBHOOK_FORMAT": "NTFY"}
    )
    assert settings.alert_webhook_url == "http://192.168.1.5:2586/flux"
    assert settings.alert_webhook_format == "ntfy"
    assert "192.168" not in repr(settings)


class Recorder:
    """A webhook that records what it is asked to send, and answers `ok`."""

    def __init__(self, ok: bool = True):
        self.ok, self.sent = ok, []

    def send(self, alert: Alert) -> bool:
        self.sent.append(alert.kind)
        return self.ok


def alerts(tmp_path, webhook, share=None, retry_seconds=60.0) -> Alerts:
    return Alerts(
        webhook,  # type: ignore[arg-type]
        lambda: DiskAlertClaims(tmp_path / "alerts"),
        share,
        "CF_DAILY_NEURONS 10 × 1 account",
        retry_seconds=retry_seconds,
    )


def test_of_two_processes_sharing_data_dir_one_sends(tmp_path, caplog):
    caplog.set_level(logging.INFO, "flux_api")
    first, second = Recorder(), Recorder()
    event = StoreFailed("DATA_DIR", "OperationalError")
    for sender in (alerts(tmp_path, first), alerts(tmp_path, second)):
        for alert in sender.alerts_for(event) * 2:
            sender.send(alert)
    assert first.sent == ["store_unusable"] and second.sent == []
    assert caplog.text.count("not sent: another worker or node has claimed it") == 1


def test_each_account_and_kind_is_its_own_claim(tmp_path):
    webhook = Recorder()
    sender = alerts(tmp_path, webhook)
    for event in (
        AccountChanged("aaa", "parked", until=86400.0),
        AccountChanged("bbb", "parked", until=86400.0),
        AccountChanged("aaa", "refused", setting="CF_ACCOUNTS"),
        AccountChanged("aaa", "parked", until=86400.0),
    ):
        for alert in sender.alerts_for(event):
            sender.send(alert)
    assert webhook.sent == ["account_parked", "account_parked", "token_refused"]


def test_a_failed_post_is_retried_once_then_left_to_the_next_occurrence(tmp_path, monkeypatch):
    monkeypatch.setattr(alerts_module, "RETRY_MARGIN", 0)  # the shortened claim ends at once
    webhook = Recorder(ok=False)
    sender = alerts(tmp_path, webhook, retry_seconds=0.0)
    [alert] = sender.alerts_for(AccountChanged("aaa", "refused", setting="CF_API_TOKEN"))
    sender.send(alert)
    sender._retry_due()
    sender._retry_due()  # once only
    assert webhook.sent == ["token_refused", "token_refused"]
    sender.send(alert)  # the next occurrence: its claim has ended, so it is tried again
    assert webhook.sent == ["token_refused"] * 3


def test_a_failed_post_shortens_its_claim_for_a_restarted_worker(tmp_path, monkeypatch):
    """A reload (how a wrong webhook URL is fixed) ends the process before its retry: the new
    worker must be free to send at the next occurrence, not wait an hour."""
    monkeypatch.setattr(alerts_module, "RETRY_MARGIN", 0)
    [alert] = alerts(tmp_path, Recorder()).alerts_for(AccountChanged("aaa", "parked", until=9e4))
    alerts(tmp_path, Recorder(ok=False), retry_seconds=0.0).send(alert)  # then it is gone
    restarted = Recorder()
    alerts(tmp_path, restarted).send(alert)
    assert restarted.sent == ["account_parked"]


def test_a_delivered_retry_holds_its_claim_for_the_hour_again(tmp_path, monkeypatch):
    monkeypatch.setattr(alerts_module, "RETRY_MARGIN", 0)
    blinking = Recorder(ok=False)
    sender = alerts(tmp_path, blinking, retry_seconds=0.0)
    [alert] = sender.alerts_for(AccountChanged("aaa", "parked", until=9e4))
    sender.send(alert)
    blinking.ok = True
    sender._retry_due()
    other = Recorder()
    alerts(tmp_path, other).send(alert)
    assert blinking.sent == ["account_parked"] * 2 and other.sent == []


def test_a_parked_lone_account_says_generations_answer_429(tmp_path):
    lone = alerts(tmp_path, Recorder()).alerts_for(AccountChanged("aaa", "parked", until=9e4))
    assert "generations answer 429 insufficient_quota" in lone[0].message
    pooled = Alerts(Recorder(), lambda: DiskAlertClaims(tmp_path), accounts=2)  # type: ignore[arg-type]
    [alert] = pooled.alerts_for(AccountChanged("aaa", "parked", until=9e4))
    assert "the other accounts take its calls" in alert.message


def test_the_highest_threshold_reached_is_the_one_sent(tmp_path):
    done = GenerationDone(
        "flux-1-schnell", (1024, 1024), 1, "ok", None, 0, 0, 0, 0,
        tries=(UpstreamCall("aaa", "m", "ok", 5.0, 1.0),),
    )  # fmt: skip
    for share, kinds in ((0.5, []), (0.85, ["pool_80"]), (1.3, ["pool_100"]), (None, [])):
        sender = alerts(tmp_path, Recorder(), lambda share=share: share)
        assert [a.kind for a in sender.alerts_for(done)] == kinds
    [full] = alerts(tmp_path, Recorder(), lambda: 1.3).alerts_for(done)
    assert "130 %" in full.message and "CF_DAILY_NEURONS 10 × 1 account" in full.message


def test_claims_that_cannot_be_taken_send_anyway(tmp_path, caplog):
    webhook = Recorder()

    def broken():
        raise ClaimsUnavailable("OperationalError")

    sender = Alerts(webhook, broken)  # type: ignore[arg-type]
    [alert] = sender.alerts_for(StoreFailed("DATA_DIR", "OperationalError"))
    sender.send(alert)
    assert webhook.sent == ["store_unusable"]
    assert "each worker sends its own" in caplog.text


def test_a_full_queue_drops_instead_of_waiting(tmp_path):
    stuck = threading.Event()

    class Stuck(Recorder):
        def send(self, alert: Alert) -> bool:
            stuck.wait(10)
            return True

    sender = alerts(tmp_path, Stuck())
    try:
        for i in range(QUEUE_SIZE + 3):  # the thread holds one; the queue fills; the rest drop
            sender(AccountChanged(f"acc{i}", "parked", until=86400.0))
        assert sender.dropped >= 1
    finally:
        stuck.set()


def test_a_share_check_handled_at_once_leaves_room_for_the_next(tmp_path):
    """The alert thread may take the event and clear the flag before put_nowait returns: a
    queue whose put runs the consumer there and then forces that interleaving."""
    shares = []
    sender = alerts(tmp_path, Recorder(), lambda: shares.append(1) or 0.5)

    class HandledAtOnce(queue.Queue):
        def put_nowait(self, item):
            sender.alerts_for(item)  # the alert thread's work, before put_nowait returns

    sender._pid = os.getpid()  # no thread of its own: the queue above is the consumer
    sender._queue = HandledAtOnce()
    for _ in range(3):
        sender(SPENT)
    assert len(shares) == 3  # each generation's share was checked: none was left waiting


def test_a_share_check_dropped_by_a_full_queue_leaves_room_for_the_next(tmp_path):
    shares = []
    sender = alerts(tmp_path, Recorder(), lambda: shares.append(1) or 0.5)
    sender._pid = os.getpid()
    sender._queue = queue.Queue(1)
    sender._queue.put_nowait(AccountChanged("aaa", "parked", until=86400.0))
    sender(SPENT)  # dropped
    assert sender.dropped == 1
    sender._queue.get_nowait()
    sender(SPENT)  # queued
    for alert in sender.alerts_for(sender._queue.get_nowait()):
        sender.send(alert)
    assert len(shares) == 1


class Away:
    """Shared claims that cannot be asked (Redis away)."""

    def claim(self, name: str, seconds: int) -> bool:
        raise ClaimsUnavailable("ConnectionError")

    def close(self) -> None:
        pass


def test_shared_claims_away_the_workers_of_one_data_dir_still_send_once(tmp_path, caplog):
    caplog.set_level(logging.INFO, "flux_api")
    first, second = Recorder(), Recorder()
    event = StoreFailed("REDIS_URL and its Redis", "ConnectionError")
    for webhook in (first, second):
        sender = Alerts(
            webhook,  # type: ignore[arg-type]
            Away,
            local_claims=lambda: DiskAlertClaims(tmp_path / "alerts"),
        )
        for alert in sender.alerts_for(event) * 2:
            sender.send(alert)
    assert first.sent == ["store_unusable"] and second.sent == []
    assert caplog.text.count("the workers of this node decide under DATA_DIR/alerts") == 2
    assert "each worker sends its own" not in caplog.text


def test_with_neither_claims_each_worker_sends_its_own(tmp_path, caplog):
    webhook = Recorder()
    (tmp_path / "alerts").write_text("not a directory")
    sender = Alerts(
        webhook,  # type: ignore[arg-type]
        Away,
        local_claims=lambda: DiskAlertClaims(tmp_path / "alerts"),
    )
    [alert] = sender.alerts_for(StoreFailed("DATA_DIR", "OperationalError"))
    sender.send(alert)
    sender.send(alert)  # this worker remembers it for the hour
    assert webhook.sent == ["store_unusable"]
    assert "each worker sends its own" in caplog.text
