"""An alert as the webhook's format wants it, and the POST that sends it.

Formats (ALERT_WEBHOOK_FORMAT): `json`, a generic body for an operator's own script; `slack`
(`{"text"}`, an incoming webhook); `discord` (`{"content"}`); `ntfy`, its JSON publishing: a
POST to the server's root with the topic in the body, the topic being the URL's last segment
(https://ntfy.sh/mytopic), the URL's query (ntfy's ?auth= token) kept. A failing webhook is one
warning per outage, naming its host only: Slack's and Discord's URLs hold their secret, and so
may anyone's.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import requests

log = logging.getLogger(__name__)

TIMEOUT = 5.0  # seconds, to connect and to answer: the alert thread waits on nothing longer


@dataclass(frozen=True)
class Alert:
    """`kind`: account_parked, token_refused, pool_80, pool_100 or store_unusable; `account`:
    the account's label (never its token), None when it is not about one."""

    kind: str
    account: str | None
    title: str
    message: str  # short, and says what to do
    at: float  # epoch seconds


# ntfy's tags (shown as emoji) and priority (3 default, 5 max) per kind.
_NTFY = {
    "account_parked": ("hourglass", 3),
    "token_refused": ("no_entry", 4),
    "pool_80": ("warning", 3),
    "pool_100": ("rotating_light", 4),
    "store_unusable": ("rotating_light", 5),
}


def body(alert: Alert, fmt: str, url: str, service_url: str = "") -> dict:
    """What is POSTed for `alert` in format `fmt` to `url`. `service_url`: PUBLIC_BASE_URL."""
    where = f" ({service_url})" if service_url else ""
    if fmt == "slack":
        return {"text": f"*flux-api: {alert.title}*{where}\n{alert.message}"}
    if fmt == "discord":
        return {"content": f"**flux-api: {alert.title}**{where}\n{alert.message}"}
    if fmt == "ntfy":
        tag, priority = _NTFY.get(alert.kind, ("warning", 3))
        sent = {
            "topic": ntfy_target(url)[1],
            "title": f"flux-api: {alert.title}",
            "message": alert.message,
            "tags": [tag, alert.kind],
            "priority": priority,
        }
        if service_url:
            sent["click"] = service_url
        return sent
    return {
        "source": "flux-api",
        "kind": alert.kind,
        "account": alert.account,
        "title": alert.title,
        "message": alert.message,
        "time": datetime.fromtimestamp(alert.at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "service": service_url or None,
    }


def ntfy_target(url: str) -> tuple[str, str]:
    """(the server's root, the topic) of an ntfy topic URL: https://ntfy.sh/mytopic gives
    (https://ntfy.sh/, mytopic); a server under a path keeps it (https://x/ntfy/t), and the
    query stays on the root: ntfy's `?auth=` access token (a secret, like the topic)."""
    parts = urlsplit(url)
    base, _, topic = parts.path.rstrip("/").rpartition("/")
    return urlunsplit((parts.scheme, parts.netloc, base + "/", parts.query, "")), topic


def host_of(url: str) -> str:
    """What a log line may say of the webhook: its host and port, no path, query or password."""
    parts = urlsplit(url)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.hostname or '?'}{port}"


class Webhook:
    """POSTs alerts to ALERT_WEBHOOK_URL with short timeouts, from one thread (its session)."""

    def __init__(self, url: str, fmt: str, service_url: str = "", timeout: float = TIMEOUT):
        self.url, self.format, self.service_url = url, fmt, service_url
        self._post_to = ntfy_target(url)[0] if fmt == "ntfy" else url
        self.host = host_of(url)
        self._timeout = timeout
        self._session: requests.Session | None = None
        self._lock = threading.Lock()
        self._failing = False

    def send(self, alert: Alert) -> bool:
        """Whether the webhook took it (a 2xx). A failure is logged once per outage."""
        if self._session is None:
            self._session = requests.Session()
        try:
            response = self._session.post(
                self._post_to,
                json=body(alert, self.format, self.url, self.service_url),
                timeout=self._timeout,
                allow_redirects=False,
            )
            response.close()
        except requests.Timeout:
            return self._failed(f"no answer within {self._timeout:g} s")
        except requests.ConnectionError:
            return self._failed("no connection")
        except requests.RequestException as exc:  # the exception's text may hold the URL
            return self._failed(type(exc).__name__)
        if not 200 <= response.status_code < 300:
            return self._failed(f"HTTP {response.status_code}")
        with self._lock:
            was_failing, self._failing = self._failing, False
        if was_failing:
            log.info("the alert webhook at %s takes alerts again", self.host)
        return True

    def _failed(self, why: str) -> bool:
        with self._lock:
            was_failing, self._failing = self._failing, True
        if not was_failing:
            log.warning(
                "the alert webhook at %s failed (%s); alerts are not delivered until it "
                "answers (ALERT_WEBHOOK_URL)",
                self.host,
                why,
            )
        return False
