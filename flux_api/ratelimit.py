"""Per-API-key rate limiting (RATE_LIMIT, e.g. 30/minute), shared by every gunicorn worker.

It counts images, not requests: a view calls `hit` once it knows a request will call Workers
AI and how many images it asks for (task prompts and bad requests cost nothing). Fixed windows
counted in a diskcache of their own under DATA_DIR: `incr` is one SQLite transaction, so
workers on one machine see one count. Off unless RATE_LIMIT is set.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import diskcache

from .errors import APIError
from .locks import WriteLock
from .settings import RateLimit


class RateLimiter:
    def __init__(self, directory: Path, limit: RateLimit):
        self.limit = limit
        self._counts = diskcache.Cache(str(directory))
        self._write_lock = WriteLock(Path(directory) / "write.lock")

    def hit(self, api_key: str, images: int = 1) -> None:
        """Count `images` Workers AI calls for `api_key`; raise a 429 with Retry-After, counting
        nothing, if they would take it over the limit."""
        now = time.time()
        window = int(now // self.limit.period)
        # Keys are stored hashed: the counter file never holds an API key.
        digest = hashlib.sha256(api_key.encode()).hexdigest()[:24]
        counter = f"{digest}:{window}"
        with self._write_lock:
            count = self._counts.incr(counter, images, default=0)
            if count == images:
                self._counts.touch(counter, expire=self.limit.period * 2)
            if count > self.limit.requests:
                self._counts.decr(counter, images)  # refused: it spends nothing
        if count > self.limit.requests:
            retry_after = max(1, int((window + 1) * self.limit.period - now) + 1)
            asked = f" (this request asks for {images})" if images > 1 else ""
            raise APIError(
                429,
                f"Rate limit reached: this key may make {self.limit} images{asked}. "
                f"Try again in {retry_after} s.",
                type="rate_limit_exceeded",
                code="rate_limit_exceeded",
                extra_headers={"Retry-After": str(retry_after)},
            )

    def close(self) -> None:
        self._counts.close()
        self._write_lock.close()
