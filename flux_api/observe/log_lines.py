"""The log lines that events make: one per generation, per account change, per request.

Their content is the interface operators grep and parse (docs/architecture.md lists them);
the loggers are named after what they tell of.
"""

from __future__ import annotations

import logging
import threading
import time
from urllib.parse import quote

from flux_api.accounts.pool import utc
from flux_api.events import (
    AccountChanged,
    Event,
    Events,
    GenerationDone,
    GenerationsInFlight,
    RequestDone,
    Shed,
)

generation_log = logging.getLogger("flux_api.generation")
accounts_log = logging.getLogger("flux_api.accounts")
access_log = logging.getLogger("flux_api.access")
admission_log = logging.getLogger("flux_api.admission")
# A burst may shed hundreds of requests a second, each with its own access line (status=503)
# already: the shed line, a warning, is written at most this often per worker and says how
# many were shed since the last one (the metrics count every one).
SHED_LINE_INTERVAL = 1.0
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"


def subscribe(events: Events) -> None:
    events.subscribe(write)


def write(event: Event) -> None:
    if isinstance(event, GenerationDone):
        _generation(event)
    elif isinstance(event, AccountChanged):
        _account(event)
    elif isinstance(event, RequestDone):
        _request(event)
    elif isinstance(event, Shed):
        _shed_lines.write(event)
    elif isinstance(event, GenerationsInFlight):
        _shed_lines.flush()


def _generation(event: GenerationDone) -> None:
    if event.outcome != "ok":
        return  # the request's error is logged where it is answered
    generation_log.info(
        "generation model=%s size=%dx%d n=%d optimizer_s=%.2f upstream_s=%.2f store_s=%.3f "
        "total_s=%.2f",
        event.model,
        *event.size,
        event.count,
        event.optimizer_seconds,
        event.upstream_seconds,
        event.store_seconds,
        event.total_seconds,
    )


def _account(event: AccountChanged) -> None:
    if event.state == "parked":
        accounts_log.warning(
            "account %s used its daily free allocation; not called again until %s",
            event.account,
            utc(event.until or 0.0),
        )
    elif event.state == "refused":
        accounts_log.warning(
            "account %s: Cloudflare refused its token or account id; set aside (check %s)",
            event.account,
            event.setting,
        )
    elif event.state == "works":
        accounts_log.warning("account %s works again", event.account)


def _request(event: RequestDone) -> None:
    access_log.info(
        "request method=%s path=%s status=%d duration_ms=%d model=%s id=%s key=%s",
        event.method,
        quote(event.path[:200], safe=_PATH_SAFE),  # no control characters or forged lines
        499 if event.client_left else event.status,
        event.seconds * 1000,
        event.model,
        event.request_id,
        event.key,
    )


class _ShedLines:
    """The shed line, at most once every SHED_LINE_INTERVAL: the first shed of a quiet spell is
    logged at once, those after it are counted into the next line (`also_shed`), or, when no
    shed comes after them, into a line of their own at the next admitted or finished
    generation (so that a burst's tail is told while it is news, not with the next burst)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 0.0
        self._unlogged = 0

    def write(self, event: Shed) -> None:
        now = time.monotonic()
        with self._lock:
            if now < self._next:
                self._unlogged += 1
                return
            self._next = now + SHED_LINE_INTERVAL
            unlogged, self._unlogged = self._unlogged, 0
        admission_log.warning(
            "shed reason=%s key=%s in_flight=%d capacity=%d retry_after=%d also_shed=%d",
            event.reason,
            event.key,
            event.in_flight,
            event.capacity,
            event.retry_after,
            unlogged,
        )

    def flush(self) -> None:
        now = time.monotonic()
        with self._lock:
            if not self._unlogged or now < self._next:
                return
            self._next = now + SHED_LINE_INTERVAL
            unlogged, self._unlogged = self._unlogged, 0
        admission_log.warning("shed also_shed=%d (since the last shed line)", unlogged)


_shed_lines = _ShedLines()
