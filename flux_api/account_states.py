"""Where the account pool keeps what it knows of each account (last use, parked until, token
refused, busy, neurons spent), shared by every worker process of the machine.

The pool needs two operations: a read, and an atomic read-modify-write of the whole record (a
few hundred bytes for any realistic pool). This implementation keeps it in a diskcache under
DATA_DIR, changed under the machine-wide write lock, so it outlives restarts: a parked account
stays parked until its reset, not until the service restarts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, TypeVar

import diskcache

from .locks import WriteLock

T = TypeVar("T")
States = dict[str, dict]  # account id -> what is known of it (see account_pool.py)
_KEY = "accounts"


class FileAccountStates:
    def __init__(self, directory: Path):
        self._cache = diskcache.Cache(str(directory))
        self._lock = WriteLock(Path(directory) / "write.lock")

    def read(self) -> States:
        return self._cache.get(_KEY) or {}

    def change(self, edit: Callable[[States], T]) -> T:
        """Apply `edit` to the record and save it, with no other process in between."""
        with self._lock:
            states = self.read()
            result = edit(states)
            self._cache.set(_KEY, states)
            return result

    def close(self) -> None:
        self._cache.close()
        self._lock.close()
