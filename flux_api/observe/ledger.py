"""The usage ledger: what each Cloudflare account and each API key spent, per UTC day.

A subscriber: each generation adds its counts in one small write (store/usage.py keeps them 31
days, shared by every worker and node), as does each request refused with an error. The
counters of a day, by name:

    account|<label>|calls|<outcome>       Workers AI tries, by events.UpstreamCall's outcome
    account|<label>|neurons                neurons Cloudflare reported for its good tries
    account|<label>|neurons_estimated      neurons of good tries it did not report, estimated
                                           from its published prices (config/pricing.py)
    key|<name>|images|<endpoint>|<model>   images made
    key|<name>|hour|<HH>                   images made in that UTC hour (00-23), for the usage
                                           page's bars; in the same write as the images
    key|<name>|failed|<error>              generations that failed, by exception class
    key|<name>|refused|<code>              image requests refused before any generation ran,
                                           by error code
    key|<name>|client_left|<model>         generations stopped, or made and not kept, because
                                           their client left

Writing never fails a generation: a ledger that cannot be written is one warning (and one
line when it works again); those counts are lost.

Writes are grouped: a count that arrives while another thread of the process is writing is
added to what that thread writes next, instead of waiting for the machine-wide write lock
itself. Alone, a count is written at once; in a burst (hundreds of sheds in a second, each a
refusal) the process writes a few merged transactions instead of one per request, and the
threads that only counted are free at once. A thread writes its own counts and at most one
merged batch after them; what keeps arriving after that is written by a thread of the
ledger's own, so no request (a stream's last line, its admission slot) waits on a burst's
writes; what that thread still holds when the process exits is written on the way out.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

from flux_api.config.models import find_model
from flux_api.config.pricing import estimated_neurons
from flux_api.events import Event, GenerationDone, RequestDone, UpstreamCall
from flux_api.store.probes import CachedProbe
from flux_api.store.usage import UsageBook, UsageUnavailable

log = logging.getLogger(__name__)

IMAGE_PATHS = ("/v1/chat/completions", "/v1/images/")
_SHARE_SECONDS = 5.0


def utc_day(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d")


def utc_hour(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%H")


class Ledger:
    def __init__(
        self,
        book: UsageBook,
        clock: Callable[[], float] = time.time,
        accounts: int = 0,
        daily_neurons: int = 0,
    ):
        """`accounts`, `daily_neurons`: the pool's size and CF_DAILY_NEURONS, for the pool's
        share used today."""
        self.book = book
        self._clock = clock
        self._failing = False
        self._lock = threading.Lock()
        # Counts waiting to be written, by UTC day, and whether a thread is writing them.
        self._pending: dict[str, Counter[str]] = {}
        self._writing = False
        self._pending_lock = threading.Lock()
        self._flusher_thread: _Flusher | None = None
        self._accounts, self._daily = accounts, daily_neurons
        # /healthz shows the share and is called often, without a key: read it at most every
        # few seconds, one thread at a time (a hung Redis holds one thread, not all).
        self.pool_share_today = CachedProbe(self._pool_share, _SHARE_SECONDS)

    def now(self) -> float:
        return self._clock()

    def _pool_share(self) -> float | None:
        try:
            return pool_share(self.book, self._accounts, self._daily, self._clock())
        except Exception:
            log.exception("the pool's share could not be read from the usage ledger")
            return None

    def neurons_today(self) -> dict[str, tuple[float, float]]:
        """Each account's neurons today (reported and estimated) and the part estimated; {}
        when the ledger cannot be read."""
        try:
            return spent_today(self.book, self._clock())
        except UsageUnavailable:
            return {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, GenerationDone):
            now = self._clock()  # one moment for the day and the hour
            self._write(generation_counts(event, utc_hour(now)), now)
        elif isinstance(event, RequestDone) and _refused(event):
            self._write({f"key|{event.key}|refused|{event.error}": 1}, self._clock())

    def _write(self, counts: dict[str, float], now: float) -> None:
        if not counts:
            return
        with self._pending_lock:
            self._pending.setdefault(utc_day(now), Counter()).update(counts)
            if self._writing:
                return  # the thread writing now writes these next
            self._writing = True
        try:
            for _ in range(2):  # its own counts, then those that came meanwhile
                if not self._write_pending():
                    return
            with self._pending_lock:
                if not self._pending:
                    self._writing = False
                    return
            self._flusher().wake()  # more keep coming: the ledger's thread takes over
        except BaseException:  # a bug: the next count starts a write again
            with self._pending_lock:
                self._writing = False
            raise

    def _write_pending(self) -> bool:
        """Write what is waiting; False when nothing was (the writer's duty is over)."""
        batch = self._take_pending()
        for day, merged in batch.items():
            self._add(day, dict(merged))
        return bool(batch)

    def _flusher(self) -> _Flusher:
        with self._pending_lock:
            if self._flusher_thread is None or self._flusher_thread.pid != os.getpid():
                self._flusher_thread = _Flusher(self._write_pending)  # once per process
            return self._flusher_thread

    def _take_pending(self) -> dict[str, Counter[str]]:
        """What is waiting to be written ({} when nothing is), and the writer's duty ended
        under the same lock when nothing is: a count added after that starts its own write."""
        with self._pending_lock:
            batch, self._pending = self._pending, {}
            if not batch:
                self._writing = False
            return batch

    def _add(self, day: str, counts: dict[str, float]) -> None:
        try:
            self.book.add(day, counts)
        except UsageUnavailable as exc:
            self._note(failing=True, why=str(exc))
            return
        except Exception:  # a bug: these counts are lost, the others still written
            log.exception("the usage ledger could not add a day's counts")
            return
        if self._failing:
            self._note(failing=False, why="")

    def _note(self, failing: bool, why: str) -> None:
        with self._lock:
            if self._failing == failing:
                return
            self._failing = failing
        if failing:
            log.warning("the usage ledger cannot be written (%s); its counts are lost", why)
        else:
            log.warning("the usage ledger is written again")


class _Flusher:
    """The ledger's own thread, for writes handed over in a burst: each wake-up writes what is
    waiting until nothing is (which ends the writer's duty, as a thread's own write does)."""

    def __init__(self, write_pending: Callable[[], bool]):
        self.pid = os.getpid()  # a fork (a gunicorn worker) makes its own
        self._write_pending = write_pending
        self._wake = threading.Event()
        threading.Thread(target=self._run, name="ledger", daemon=True).start()
        # The thread is a daemon, stopped without a word when the process ends (a worker's
        # graceful exit, a reload): what it was handed is written on the way out instead.
        atexit.register(self.drain)

    def drain(self) -> None:
        while self._write_pending():
            pass

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            self.drain()


def generation_counts(event: GenerationDone, hour: str) -> dict[str, float]:
    """`hour`: the UTC hour it ended in (HH)."""
    counts: Counter[str] = Counter()
    for call in event.tries:
        counts.update(_call_counts(call))
    key = event.caller.key
    if event.outcome == "ok":
        counts[f"key|{key}|images|{event.caller.endpoint}|{event.model}"] += event.count
        counts[f"key|{key}|hour|{hour}"] += event.count
    elif event.outcome == "failed":
        counts[f"key|{key}|failed|{event.error}"] += 1
    else:  # client_left: what it cost the accounts is counted above
        counts[f"key|{key}|client_left|{event.model}"] += 1
    return dict(counts)


def _call_counts(call: UpstreamCall) -> dict[str, float]:
    account = f"account|{call.account}"
    counts: dict[str, float] = {f"{account}|calls|{call.outcome}": 1}
    if call.outcome != "ok":  # refused at once (not billed), or unknown: nothing counted
        return counts
    if call.neurons is not None:
        counts[f"{account}|neurons"] = call.neurons
    elif (estimate := _estimate(call)) is not None:
        counts[f"{account}|neurons_estimated"] = estimate
    return counts


def _estimate(call: UpstreamCall) -> float | None:
    model = find_model(call.model)
    if model is None:
        return None
    width, height = call.size or model.fixed_size  # a model that takes no size makes one
    return estimated_neurons(model.id, width, height, call.steps, call.inputs)


def _refused(event: RequestDone) -> bool:
    return (
        event.status >= 400
        and not event.generated  # else its generation failed, and is counted as such
        and event.error != "client_closed_request"  # it left: no refusal
        and event.key != "-"
        and event.error is not None
        and event.path.startswith(IMAGE_PATHS)
    )


def spent_today(book: UsageBook, now: float) -> dict[str, tuple[float, float]]:
    """Each account's neurons on `now`'s UTC day (reported and estimated) and the part
    estimated. UsageUnavailable when the ledger cannot be read."""
    today = utc_day(now)
    spent: dict[str, tuple[float, float]] = {}
    for name, value in book.days([today]).get(today, {}).items():
        kind, _, rest = name.partition("|")
        label, _, what = rest.rpartition("|")
        if kind != "account" or what not in ("neurons", "neurons_estimated"):
            continue
        total, guessed = spent.get(label, (0.0, 0.0))
        guessed += value if what == "neurons_estimated" else 0.0
        spent[label] = (round(total + value, 2), round(guessed, 2))
    return spent


def pool_share(book: UsageBook, accounts: int, daily: int, now: float) -> float | None:
    """The share of the pool's allocation used today (None: no cap, or the ledger unread)."""
    if daily <= 0 or not accounts:
        return None
    try:
        spent = spent_today(book, now)
    except UsageUnavailable:
        return None
    used = sum(total for total, _ in spent.values())
    return round(used / (daily * accounts), 4)
