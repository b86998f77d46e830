"""Where the account pool keeps what it knows of each account (last use, parked until, token
refused, busy, neurons spent), shared by every worker process of the machine.

The pool needs two operations: a read, and an atomic read-modify-write of the whole record (a
few hundred bytes for any realistic pool). This implementation keeps it in a diskcache under
DATA_DIR, changed under the machine-wide write lock, so it outlives restarts: a parked account
stays parked until its reset, not until the service restarts. (redis_state.RedisAccountStates
is its twin for several nodes.)

The record only advises which account to call next, so it never stops a generation: a record
that cannot be read or written (a damaged file, a full disk) is replaced by one kept in this
process's memory, with one warning, and a malformed entry is dropped.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Callable, TypeVar

import diskcache

from .locks import WriteLock

log = logging.getLogger(__name__)
T = TypeVar("T")
States = dict[str, dict]  # account id -> what is known of it (see account_pool.py)
_KEY = "accounts"
_ERRORS = (OSError, sqlite3.Error, diskcache.Timeout)
_NUMBERS = ("last_used", "parked_until", "busy")


class FileAccountStates:
    def __init__(self, directory: Path):
        """Raises OSError or sqlite3.Error when the directory cannot be used at all."""
        self._cache = diskcache.Cache(str(directory))
        self._lock = WriteLock(Path(directory) / "write.lock")
        self._memory: States | None = None  # used instead once the file has failed

    def read(self) -> States:
        if self._memory is not None:
            return self._memory
        try:
            return clean(self._cache.get(_KEY))
        except _ERRORS as exc:
            return self._fail(exc)

    def change(self, edit: Callable[[States], T]) -> T:
        """Apply `edit` to the record and save it, with no other process in between."""
        if self._memory is None:
            try:
                with self._lock:
                    states = clean(self._cache.get(_KEY))
                    result = edit(states)
                    self._cache.set(_KEY, states)
                    return result
            except _ERRORS as exc:
                self._fail(exc)
        return edit(self._memory)

    def _fail(self, exc: BaseException) -> States:
        log.warning(
            "the account state under DATA_DIR cannot be used (%s); this worker keeps its own "
            "until restarted",
            type(exc).__name__,
        )
        self._memory = {}
        return self._memory

    def close(self) -> None:
        self._cache.close()
        self._lock.close()


def clean(value: object) -> States:
    """The record with every malformed part dropped (it may come from an older version, a
    damaged file or another program writing the same key)."""
    if not isinstance(value, dict):
        return {}
    states: States = {}
    for account_id, record in value.items():
        if isinstance(account_id, str) and isinstance(record, dict):
            states[account_id] = _clean_record(record)
    return states


def _clean_record(record: dict) -> dict:
    kept = {k: float(record[k]) for k in _NUMBERS if _is_number(record.get(k))}
    refused = record.get("refused")
    if (
        isinstance(refused, dict)
        and isinstance(refused.get("token"), str)
        and _is_number(refused.get("checked"))
    ):
        kept["refused"] = {"token": refused["token"], "checked": float(refused["checked"])}
    neurons = record.get("neurons")
    if (
        isinstance(neurons, (list, tuple))
        and len(neurons) == 2
        and isinstance(neurons[0], str)
        and _is_number(neurons[1])
    ):
        kept["neurons"] = (neurons[0], float(neurons[1]))
    return kept


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
