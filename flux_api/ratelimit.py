"""Per-API-key rate limiting (RATE_LIMIT, e.g. 30/minute), shared by every gunicorn worker.

Fixed windows counted in a diskcache of their own under DATA_DIR: `incr` is one SQLite
transaction, so workers on one machine see one count. Off unless RATE_LIMIT is set.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import diskcache
from flask import Flask, g, request

from .errors import APIError
from .locks import WriteLock
from .settings import RateLimit


class RateLimiter:
    def __init__(self, directory: Path, limit: RateLimit):
        self.limit = limit
        self._counts = diskcache.Cache(str(directory))
        self._write_lock = WriteLock(Path(directory) / "write.lock")

    def hit(self, api_key: str) -> None:
        """Count one request for `api_key`; raise a 429 with Retry-After once over the limit."""
        now = time.time()
        window = int(now // self.limit.period)
        # Keys are stored hashed: the counter file never holds an API key.
        digest = hashlib.sha256(api_key.encode()).hexdigest()[:24]
        counter = f"{digest}:{window}"
        with self._write_lock:
            count = self._counts.incr(counter, 1, default=0)
            if count == 1:
                self._counts.touch(counter, expire=self.limit.period * 2)
        if count > self.limit.requests:
            retry_after = max(1, int((window + 1) * self.limit.period - now) + 1)
            raise APIError(
                429,
                f"Rate limit reached: this key may make {self.limit} requests. "
                f"Try again in {retry_after} s.",
                type="rate_limit_exceeded",
                code="rate_limit_exceeded",
                extra_headers={"Retry-After": str(retry_after)},
            )

    def close(self) -> None:
        self._counts.close()
        self._write_lock.close()


# Only the endpoints that spend Workers AI quota are limited.
LIMITED_ENDPOINTS = frozenset({"api.chat_completions", "api.images_generations"})


def init_app(app: Flask, limiter: RateLimiter | None) -> None:
    """Register after auth: it runs once the key is known to be valid (`g.api_key`)."""
    if limiter is None:
        return

    @app.before_request
    def limit_rate():
        if request.endpoint in LIMITED_ENDPOINTS and "api_key" in g:
            limiter.hit(g.api_key)
