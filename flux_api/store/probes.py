"""A check that is expensive or may hang (can an image be stored?), answered from its
last result for a few seconds: /healthz is unauthenticated and may be called a thousand times
a second, and a check that waits (on the store's write lock, on a Redis that hangs) must not
hold every request thread that asks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class CachedProbe:
    def __init__(self, probe: Callable[[], Any], seconds: float):
        self._probe = probe
        self._seconds = seconds
        self._lock = threading.Lock()
        self._last: tuple[float, Any] | None = None  # (good until, in monotonic time; answer)

    def __call__(self) -> Any:
        last = self._last
        if last and time.monotonic() < last[0]:
            return last[1]
        # One thread probes. Meanwhile the others give its last answer rather than each wait
        # for it; only the very first callers, with no answer yet, wait.
        if not self._lock.acquire(blocking=last is None):
            assert last is not None  # a blocking acquire always succeeds
            return last[1]
        try:
            last = self._last  # another thread may have probed while this one waited
            if last is None or time.monotonic() >= last[0]:
                last = self._last = (time.monotonic() + self._seconds, self._probe())
            return last[1]
        finally:
            self._lock.release()

    def failed(self) -> None:
        """A failure seen elsewhere (a read, a write): say so at once, not at the next probe."""
        self.remember(False)

    def remember(self, answer: Any) -> None:
        """An answer learnt elsewhere, given until the next probe is due."""
        self._last = (time.monotonic() + self._seconds, answer)
