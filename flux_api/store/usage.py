"""The usage ledger's storage: per UTC day, counters by name, shared by every worker and node.

A day is a flat mapping of counter names to numbers (observe/ledger.py names them). Each
generation adds its counts in one small write; reading asks for a range of days. Days older
than KEEP_DAYS expire. Two twins: a diskcache under DATA_DIR/usage (one machine) and a Redis
hash per day (every node, store/redis_usage.py).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

import diskcache

from flux_api.store.locks import WriteLock

log = logging.getLogger(__name__)

KEEP_DAYS = 31  # today and the 30 before it are shown; one more day covers clocks near midnight
_EXPIRE = (KEEP_DAYS + 1) * 86400
_ERRORS = (OSError, sqlite3.Error, diskcache.Timeout)


class UsageBook(Protocol):
    def add(self, day: str, counts: Mapping[str, float]) -> None:
        """Add `counts` to `day`'s counters (YYYY-MM-DD, UTC) in one write."""

    def days(self, days: Iterable[str]) -> dict[str, dict[str, float]]:
        """The counters of each of `days` that has any."""

    def close(self) -> None: ...


class UsageUnavailable(Exception):
    """The ledger could not be written or read (it never fails a generation: it is logged)."""


class DiskUsageBook:
    """One diskcache entry per day, changed in one SQLite transaction under the machine-wide
    write lock (the workers of one machine add to the same counters)."""

    def __init__(self, directory: Path):
        self._days = diskcache.Cache(str(directory))
        self._write_lock = WriteLock(Path(directory) / "write.lock")

    def add(self, day: str, counts: Mapping[str, float]) -> None:
        try:
            with self._write_lock, self._days.transact():
                stored = self._read(day)
                totals = stored if isinstance(stored, dict) else {}  # damaged: starts again
                for name, amount in counts.items():
                    value = totals.get(name, 0)
                    totals[name] = (value if isinstance(value, (int, float)) else 0) + amount
                self._days.set(day, totals, expire=_EXPIRE)
        except _ERRORS as exc:
            raise UsageUnavailable(type(exc).__name__) from exc

    def days(self, days: Iterable[str]) -> dict[str, dict[str, float]]:
        try:
            found = {day: self._read(day) for day in days}
        except _ERRORS as exc:
            raise UsageUnavailable(type(exc).__name__) from exc
        return {day: _numbers(value) for day, value in found.items() if isinstance(value, dict)}

    def _read(self, day: str) -> object:
        """A day's entry; one that cannot be unpickled (damaged, or not written by us) is
        treated as absent, and is overwritten by the next write."""
        try:
            return self._days.get(day)
        except _ERRORS:
            raise
        except Exception:  # noqa: BLE001 (pickle raises many kinds for damaged bytes)
            log.warning("the usage ledger's entry for %s was damaged; it counts from 0 again", day)
            return None

    def close(self) -> None:
        self._days.close()
        self._write_lock.close()


def _numbers(counters: dict) -> dict[str, float]:
    """What can be read of a day: counters that are numbers (a damaged one is left out)."""
    return {
        name: value
        for name, value in counters.items()
        if isinstance(name, str) and isinstance(value, (int, float)) and not isinstance(value, bool)
    }
