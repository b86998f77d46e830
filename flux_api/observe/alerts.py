"""Alerts to ALERT_WEBHOOK_URL: an account parked, a token refused, the pool at 80 % and 100 % of
today's allocation, the image store unusable.

A subscriber that never slows the work it watches: it hands the event to a bounded queue (one
that is full drops it, counted) and returns. A daemon thread, started in the process that first
hands one over (gunicorn builds the app in its master and forks the workers: a thread started
there would not exist in them), reads the pool's share, claims the alert and POSTs it.

At most one message per kind per account per hour across every worker and node: before sending,
a claim on the alert's name is taken in the shared state (store/alert_claims.py), with a
one-hour expiry; whoever takes it sends, the others do not. The pool's thresholds are claimed
until the next 00:00 UTC instead: the share only grows through a day, so an hourly repeat would
say nothing new. A message whose POST failed is tried once more RETRY_SECONDS later (a webhook
that blinked); meanwhile its claim is shortened to end soon after, so that a process restarted
in between (a reload, often how a wrong webhook URL is fixed) leaves it to the next occurrence.
If the retry fails too, the next occurrence, in any worker, tries again once the claim ends; the
outage's warning says alerts are not delivered.

Redis's claims that cannot be asked (Redis away: likely the very outage store_unusable reports)
fall back to claims under DATA_DIR/alerts, shared by the workers of one node: one message per
node. Should those fail too, each worker sends its own (it still remembers what it sent for the
hour): an alert twice beats none.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from flux_api.accounts.pool import next_reset, utc
from flux_api.config.settings import Settings
from flux_api.events import AccountChanged, Event, GenerationDone, StoreFailed
from flux_api.observe.alert_webhook import Alert, Webhook
from flux_api.observe.ledger import Ledger, pool_share
from flux_api.store.alert_claims import AlertClaims, ClaimsUnavailable

log = logging.getLogger(__name__)

HOUR = 3600
QUEUE_SIZE = 100
RETRY_SECONDS = 60.0
RETRY_MARGIN = 30  # seconds a failed message's claim outlives its retry
THRESHOLDS = ((1.0, "pool_100"), (0.8, "pool_80"))  # the highest reached is sent


class Alerts:
    def __init__(
        self,
        webhook: Webhook,
        open_claims: Callable[[], AlertClaims],
        pool_share: Callable[[], float | None] | None = None,
        allocation: str = "",
        clock: Callable[[], float] = time.time,
        retry_seconds: float = RETRY_SECONDS,
        local_claims: Callable[[], AlertClaims] | None = None,
        accounts: int = 1,
    ):
        """`open_claims`: opens the shared claims, in the thread that uses them;
        `local_claims`, the node's own, asked when those cannot be (Redis's fall back to
        DATA_DIR's). `pool_share`: the share of today's allocation used (None when
        CF_DAILY_NEURONS is 0: no pool alerts); `allocation` says what it is a share of, for
        the message."""
        self.webhook = webhook
        each_own = "each worker sends its own"
        if local_claims is None:
            self._claim_sources = [_Claims(open_claims, "the shared state", each_own)]
        else:
            self._claim_sources = [
                _Claims(
                    open_claims,
                    "the shared state",
                    "the workers of this node decide under DATA_DIR/alerts",
                ),
                _Claims(local_claims, "DATA_DIR/alerts", each_own),
            ]
        self._pool_share = pool_share
        self._allocation = allocation
        self._accounts = accounts  # how many: a parked one's calls go to the others, if any
        self._clock = clock
        self._retry_seconds = retry_seconds
        self._start_lock = threading.Lock()
        self._pid = 0  # the process whose thread drains the queue (0: none started yet)
        self._queue: queue.Queue[Event] = queue.Queue(QUEUE_SIZE)
        self.dropped = 0  # events dropped because the queue was full
        self._share_queued = False  # a share check is waiting: another adds nothing
        self._pool_full_until = 0.0  # pool_100 known claimed today: no more share checks
        # Names this process knows to be claimed (by it or another), until when: the shared
        # state is asked once per alert and hour, not at every event.
        self._held: dict[str, float] = {}
        self._retries: list[_Retry] = []

    # In the announcing thread: quick, never waits.

    def __call__(self, event: Event) -> None:
        worth = isinstance(event, StoreFailed) or (
            isinstance(event, AccountChanged) and event.state in ("parked", "refused")
        )
        if worth:
            self._hand_over(event)
        elif isinstance(event, GenerationDone) and self._pool_share is not None:
            spent = any(call.outcome == "ok" for call in event.tries)
            quiet = self._pool_full_until > time.monotonic()
            if spent and not quiet and not self._share_queued:
                # Set before the hand-over: the alert thread may take the event and clear the
                # flag before put_nowait returns; set after, it would stay set for good.
                self._share_queued = True
                if not self._hand_over(event):
                    self._share_queued = False  # dropped: the next generation checks

    def _hand_over(self, event: Event) -> bool:
        """Whether the event was queued (a full queue drops it: the request never waits)."""
        if self._pid != os.getpid():
            self._start()
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("alerts: %d event(s) dropped, the alert queue being full", self.dropped)
            return False
        return True

    def _start(self) -> None:
        with self._start_lock:
            if self._pid == os.getpid():
                return
            self._queue = queue.Queue(QUEUE_SIZE)  # a fork's copy may hold the parent's
            self._pid = os.getpid()
            threading.Thread(target=self._drain, name="alerts", daemon=True).start()

    # In the alert thread.

    def _drain(self) -> None:
        while True:
            wait = None
            if self._retries:
                wait = max(0.0, min(retry.at for retry in self._retries) - time.monotonic())
            try:
                event = self._queue.get(timeout=wait)
            except queue.Empty:
                event = None
            try:
                if event is not None:
                    for alert in self.alerts_for(event):
                        self.send(alert)
                self._retry_due()
            except Exception:  # a bug here must not end the thread: later alerts still go
                log.exception("alerts: an alert could not be handled")

    def alerts_for(self, event: Event) -> list[Alert]:
        now = self._clock()
        if isinstance(event, AccountChanged) and event.state == "parked":
            back = utc(event.until) if event.until else "the next 00:00 UTC"
            meanwhile = (
                "the other accounts take its calls while they have allocation left"
                if self._accounts > 1
                else "until then generations answer 429 insufficient_quota"
            )
            return [
                Alert(
                    "account_parked",
                    event.account,
                    f"account {event.account} parked",
                    f"Cloudflare account {event.account} has used its daily allocation of "
                    f"neurons; it is parked until {back}, and {meanwhile}. If this happens "
                    "daily, add an account to CF_ACCOUNTS.",
                    now,
                )
            ]
        if isinstance(event, AccountChanged) and event.state == "refused":
            setting = event.setting or "CF_ACCOUNTS"
            return [
                Alert(
                    "token_refused",
                    event.account,
                    f"account {event.account} refused",
                    f"Cloudflare refused the token or account id of account {event.account}: "
                    f"fix {setting}. It is retried every 10 minutes, and at once when its "
                    "token changes.",
                    now,
                )
            ]
        if isinstance(event, StoreFailed):
            return [
                Alert(
                    "store_unusable",
                    None,
                    "image store unusable",
                    f"The image store cannot be used ({event.detail}): generations answer 503 "
                    f"until it can. Check {event.setting} (writable, disk not full).",
                    now,
                )
            ]
        if isinstance(event, GenerationDone):
            self._share_queued = False
            return self._pool_alerts(now)
        return []

    def _pool_alerts(self, now: float) -> list[Alert]:
        assert self._pool_share is not None
        share = self._pool_share()
        if share is None:
            return []
        for threshold, kind in THRESHOLDS:
            if share >= threshold:
                percent = round(share * 100)
                # CF_DAILY_NEURONS is the service's own count: Cloudflare, not the service,
                # refuses calls once an account's real allocation is spent.
                then = (
                    "Cloudflare will soon refuse calls (each account is then parked until "
                    "00:00 UTC), unless the accounts are on the paid plan, which bills them"
                    if threshold >= 1
                    else "at 100 % Cloudflare starts refusing calls until 00:00 UTC"
                )
                return [
                    Alert(
                        kind,
                        None,
                        f"pool at {percent} % of today's allocation",
                        f"The Cloudflare accounts have used {percent} % of today's allocation "
                        f"({self._allocation}); {then}. Add an account to CF_ACCOUNTS, or move "
                        "one to Workers AI's paid plan.",
                        now,
                    )
                ]
        return []

    def send(self, alert: Alert) -> None:
        """Claim `alert` (see the module's docstring) and, if this process took it, POST it."""
        name, hold = _claim_name(alert)
        now = time.monotonic()
        if self._held.get(name, 0.0) > now:
            return
        self._held = {n: until for n, until in self._held.items() if until > now}
        self._held[name] = now + hold
        if alert.kind == "pool_100":
            self._pool_full_until = now + hold
        taken, source = self._claim(name, hold)
        if not taken:
            log.info("alert %s not sent: another worker or node has claimed it", name)
            return
        if not self.webhook.send(alert):
            if source is not None:
                source.hold(name, int(self._retry_seconds) + RETRY_MARGIN)
            self._retries.append(_Retry(now + self._retry_seconds, alert, name, hold, source))

    def _retry_due(self) -> None:
        now = time.monotonic()
        due = [retry for retry in self._retries if retry.at <= now]
        self._retries = [retry for retry in self._retries if retry.at > now]
        for retry in due:
            if self.webhook.send(retry.alert):
                if retry.source is not None:
                    retry.source.hold(retry.name, retry.hold)  # the whole hour (or day) again
                continue
            # Given up: its short claim ends soon, and the next occurrence tries again.
            self._held.pop(retry.name, None)
            if retry.alert.kind == "pool_100":
                self._pool_full_until = 0.0

    def _claim(self, name: str, hold: int) -> tuple[bool, _Claims | None]:
        """Whether this process sends, and the claims that said so: the first that can be
        asked decide; none can, it sends (each worker its own, remembered for the hour in
        `_held`)."""
        for source in self._claim_sources:
            try:
                return source.claim(name, hold), source
            except ClaimsUnavailable:
                continue
        return True, None


@dataclass(frozen=True)
class _Retry:
    at: float  # time.monotonic() when it is due
    alert: Alert
    name: str  # its claim's
    hold: int  # its claim's whole length, restored if the retry is delivered
    source: _Claims | None  # the claims that gave it to this process


class _Claims:
    """Claims opened on first use, in the alert thread; a failure is one warning per outage
    (saying what decides instead), its end one line."""

    def __init__(self, open_claims: Callable[[], AlertClaims], what: str, instead: str):
        self._open, self.what, self.instead = open_claims, what, instead
        self._claims: AlertClaims | None = None
        self._failing = False

    def claim(self, name: str, hold: int) -> bool:
        try:
            if self._claims is None:
                self._claims = self._open()
            taken = self._claims.claim(name, hold)
        except ClaimsUnavailable as exc:
            if not self._failing:
                log.warning(
                    "alerts: %s cannot say who sends (%s); %s until it can",
                    self.what,
                    exc,
                    self.instead,
                )
            self._failing = True
            raise
        if self._failing:
            log.info("alerts: %s says who sends again", self.what)
            self._failing = False
        return taken

    def hold(self, name: str, seconds: int) -> None:
        """Change how long this process's claim lasts; if that cannot be done, the claim keeps
        its length (the failure is claim()'s to report)."""
        try:
            if self._claims is not None:
                self._claims.hold(name, seconds)
        except ClaimsUnavailable:
            pass


def _claim_name(alert: Alert) -> tuple[str, int]:
    """The claim's name and how long it holds: an hour, or the pool's thresholds to the next
    00:00 UTC (their day in the name: a clock just past midnight starts a new day's)."""
    if alert.kind.startswith("pool_"):
        day = time.strftime("%Y-%m-%d", time.gmtime(alert.at))
        return f"{alert.kind}|{day}", max(60, int(next_reset(alert.at) - alert.at))
    return f"{alert.kind}|{alert.account or '-'}", HOUR


def from_settings(
    settings: Settings,
    ledger: Ledger,
    open_claims: Callable[[], AlertClaims],
    local_claims: Callable[[], AlertClaims] | None = None,
) -> Alerts:
    """The subscriber for ALERT_WEBHOOK_URL; the pool's share read from `ledger`'s book,
    uncached (in the alert thread: the ledger's own 5-s cache could miss a threshold).
    `open_claims`, `local_claims`: see Alerts."""
    accounts, daily = len(settings.accounts), settings.cf_daily_neurons
    share = None
    if daily > 0 and accounts:
        share = lambda: pool_share(ledger.book, accounts, daily, ledger.now())  # noqa: E731
    webhook = Webhook(
        settings.alert_webhook_url, settings.alert_webhook_format, settings.public_base_url
    )
    allocation = f"CF_DAILY_NEURONS {daily} × {accounts} account{'s' if accounts != 1 else ''}"
    return Alerts(
        webhook, open_claims, share, allocation, local_claims=local_claims, accounts=accounts
    )
