"""A write lock shared by the threads of every worker process on this machine.

SQLite lets one writer in at a time and makes the others wait in its busy handler, which sleeps
in growing steps (up to 100 ms) with no queue: under a few hundred concurrent generations some
writes starve for seconds. Taking this lock first queues writers instead (a blocking flock wakes
the next waiter as soon as the lock is free), so each SQLite transaction finds the database free.
Hand-written because the `filelock` package polls for the lock rather than blocking on it.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path


class WriteLock:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        # flock is held per open file, so the threads sharing this one queue on a thread lock.
        self._threads = threading.Lock()

    def __enter__(self) -> WriteLock:
        self._threads.acquire()
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def close(self) -> None:
        os.close(self._fd)
