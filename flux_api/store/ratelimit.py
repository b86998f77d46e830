"""Per-API-key rate limiting (RATE_LIMIT, e.g. 30/minute), shared by every gunicorn worker.

It counts images, not requests: a view calls `hit` once it knows a request will call Workers
AI and how many images it asks for (task prompts and bad requests cost nothing). Fixed windows
counted in a diskcache of their own under DATA_DIR (workers on one machine see one count), or
in Redis when nodes share REDIS_URL (every node sees one count). Off unless RATE_LIMIT is set.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
from pathlib import Path

import diskcache

from flux_api.config.api_keys import ApiKey, RateLimit
from flux_api.errors import APIError
from flux_api.events import Events, RateLimited
from flux_api.store.images import StoreUnavailable, failures_announced
from flux_api.store.locks import WriteLock

log = logging.getLogger(__name__)


class DiskWindows:
    """Window counters in a diskcache of their own under DATA_DIR, shared by the workers of
    one machine: each change is one SQLite transaction under the machine-wide write lock."""

    def __init__(self, directory: Path):
        self._counts = diskcache.Cache(str(directory))
        self._write_lock = WriteLock(Path(directory) / "write.lock")

    def add(self, counter: str, amount: int, ceiling: int, expire: int) -> int:
        """Add `amount` unless that would pass `ceiling`; the count it would make, either way.
        StoreUnavailable (a 503 before any paid call) when the counters cannot be used."""
        try:
            with self._write_lock:
                count = self._increment(counter, amount)
                if count == amount:
                    self._counts.touch(counter, expire=expire)
                if count > ceiling:
                    self._counts.decr(counter, amount)  # refused: it spends nothing
        except (OSError, sqlite3.Error, diskcache.Timeout) as exc:
            raise StoreUnavailable(f"rate-limit counters: {type(exc).__name__}") from exc
        return count

    def _increment(self, counter: str, amount: int) -> int:
        """The counter plus `amount`; one that is not a count (damaged, or written by another
        program) starts again from nothing, with a warning."""
        try:
            count = self._counts.incr(counter, amount, default=0)
            if isinstance(count, int) and count >= amount:
                return count
        except TypeError:  # diskcache adds to the stored value as it is: bytes, text, None
            pass
        log.warning("a rate-limit counter under DATA_DIR was damaged; it counts from 0 again")
        self._counts.set(counter, amount)
        return amount

    def warm(self) -> None:
        """Open this thread's SQLite connection now (diskcache keeps one per thread)."""
        self._counts.get("warm-up")

    def close(self) -> None:
        self._counts.close()
        self._write_lock.close()


class RateLimiter:
    def __init__(self, windows, default: RateLimit | None, events: Events | None = None):
        """`windows`: DiskWindows, or RedisWindows when several nodes share the limit.
        `default`: RATE_LIMIT, for the keys without a limit of their own."""
        self.default = default
        self._windows = windows
        self._events = events or Events()  # refusals, a store that cannot be used

    def hit(self, api_key: ApiKey, images: int = 1) -> None:
        """Count `images` Workers AI calls for `api_key`; raise a 429 with Retry-After, counting
        nothing, if they would take it over its limit."""
        limit = api_key.limit_under(self.default)
        if limit is None:
            return
        now = time.time()
        window = int(now // limit.period)
        # Keys are stored hashed: the counter file never holds an API key.
        digest = hashlib.sha256(api_key.secret.encode()).hexdigest()[:24]
        # The counters live in the store: a request meets a store that cannot be used here
        # first, before the pipeline looks at it.
        with failures_announced(self._events):
            count = self._windows.add(
                f"{digest}:{limit.period}:{window}", images, limit.requests, limit.period * 2
            )
        if count > limit.requests:
            retry_after = max(1, int((window + 1) * limit.period - now) + 1)
            self._events.announce(RateLimited(api_key.name, images, retry_after))
            asked = f" (this request asks for {images})" if images > 1 else ""
            raise APIError(
                429,
                f"Rate limit reached: this key may make {limit} images{asked}. "
                f"Try again in {retry_after} s.",
                type="rate_limit_exceeded",
                code="rate_limit_exceeded",
                extra_headers={"Retry-After": str(retry_after)},
            )

    def warm(self) -> None:
        self._windows.warm()

    def close(self) -> None:
        self._windows.close()
