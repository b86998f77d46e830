"""A worker's memory for images in flight: each Images API request reserves what its images may
take before any upstream call, and waits for room when the worker is full.

Without a bound, a hundred threads each holding four 2048x2048 images (decoded for a crop,
encoded as base64) take gigabytes. The estimate is the decoded RGB size, the largest form an
image takes here: the upstream's bytes, a crop's decode and re-encode, and the base64 streamed
out in pieces all fit inside it.
"""

from __future__ import annotations

import threading

from flux_api.budget import Budget


class ImageMemory:
    """A counting bound on the bytes of image data one worker process holds."""

    def __init__(self, limit_bytes: int):
        self.limit = limit_bytes
        self._free = limit_bytes
        self._room = threading.Condition()

    @property
    def in_use(self) -> int:
        return self.limit - self._free

    def reserve(self, nbytes: int, budget: Budget) -> Reservation:
        """Take `nbytes` (at most the whole limit, so one huge request still runs alone),
        waiting for room and giving up with the budget (deadline passed, client gone)."""
        nbytes = min(nbytes, self.limit)
        with self._room:
            while self._free < nbytes:
                budget.check("waiting for memory to hold the images")
                self._room.wait(timeout=max(0.0, min(0.25, budget.remaining())))
            self._free -= nbytes
        return Reservation(self, nbytes)

    def _give_back(self, nbytes: int) -> None:
        with self._room:
            self._free += nbytes
            self._room.notify_all()


class Reservation:
    """Memory taken from an ImageMemory; `release` gives it back, once however often called."""

    def __init__(self, memory: ImageMemory, nbytes: int):
        self._memory = memory
        self._nbytes = nbytes
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            nbytes, self._nbytes = self._nbytes, 0
        if nbytes:
            self._memory._give_back(nbytes)
