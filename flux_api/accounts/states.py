"""Where the account pool keeps what it knows of each account (last use, parked until, token
refused, busy, neurons spent), shared by every worker process of the machine.

The pool needs two operations: a read, and an atomic read-modify-write of the whole record (a
few hundred bytes for any realistic pool). This implementation keeps it in a diskcache under
DATA_DIR, changed under the machine-wide write lock, so it outlives restarts: a parked account
stays parked until its reset, not until the service restarts. (redis_states.RedisAccountStates
is its twin for several nodes.)

The record only advises which account to call next, so it never stops a generation: a value
that cannot be read back (not a pickle, its value file truncated or lost) is replaced by an
empty one, with one warning; a store that cannot be used at all (a damaged database, a full
disk) is replaced by a record kept in this process's memory, with one warning; a malformed entry
is dropped.
"""

from __future__ import annotations

import logging
import math
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Literal, Protocol, TypedDict, TypeGuard, TypeVar

import diskcache

from flux_api.store.locks import WriteLock

log = logging.getLogger(__name__)
T = TypeVar("T")


class Refusal(TypedDict):
    token: str  # the refused token's fingerprint: a changed token is tried at once
    checked: float  # when it was last tried


class AccountRecord(TypedDict, total=False):
    """What is known of one account (the pool's policy, accounts/pool.py, writes it)."""

    last_used: float  # epoch seconds: least recently used goes next
    parked_until: float  # its daily allocation is used up until then (the next 00:00 UTC)
    busy: float  # out of capacity until then: other accounts first
    refused: Refusal  # its token was refused
    neurons: tuple[str, float]  # (UTC day, neurons spent that day)


States = dict[str, AccountRecord]  # account id -> its record


class AccountStates(Protocol):
    """The record of every account, shared by all workers (FileAccountStates here on disk,
    accounts/redis_states.RedisAccountStates on Redis): a read, and an atomic change."""

    def read(self) -> States: ...

    def change(self, edit: Callable[[States], T]) -> T: ...

    @property
    def in_memory(self) -> bool:
        """Whether the last read or change used this process's own record (the shared one
        could not be used): what it said is not what the other workers see."""
        ...

    def close(self) -> None: ...


_KEY = "accounts"
_STORE_ERRORS = (sqlite3.Error, diskcache.Timeout)  # the database itself cannot be used
_ERRORS = (OSError, *_STORE_ERRORS)
_NUMBERS: tuple[Literal["last_used", "parked_until", "busy"], ...] = (
    "last_used",
    "parked_until",
    "busy",
)
_YEAR_10000 = 253402300800  # epoch seconds


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
        except _STORE_ERRORS as exc:
            return self._fail(exc)
        # A damaged value: replaced under the lock, so only one process warns.
        except Exception:  # noqa: BLE001
            return self.change(lambda states: states.copy())

    def change(self, edit: Callable[[States], T]) -> T:
        """Apply `edit` to the record and save it, with no other process in between."""
        memory = self._memory
        if memory is None:
            try:
                with self._lock:
                    states = self._load()
                    result = edit(states)
                    self._cache.set(_KEY, states)
                    return result
            except _ERRORS as exc:
                memory = self._fail(exc)
        return edit(memory)

    @property
    def in_memory(self) -> bool:
        return self._memory is not None

    def _load(self) -> States:
        """The record as stored, or an empty one (saved by `change`) if it cannot be read back."""
        try:
            return clean(self._cache.get(_KEY))
        except _STORE_ERRORS:
            raise
        # Unpickling damaged bytes can raise almost anything (UnpicklingError, EOFError,
        # ValueError, KeyError...), and a lost value file an OSError: the value is gone either way.
        except Exception as exc:  # noqa: BLE001
            log.warning(
                "the account state under DATA_DIR was damaged (%s); dropped and rebuilt "
                "(accounts it had parked or set aside are tried again)",
                type(exc).__name__,
            )
            return {}

    def _fail(self, exc: BaseException) -> States:
        log.warning(
            "the account state under DATA_DIR cannot be used (%s); this worker keeps its own "
            "until restarted",
            type(exc).__name__,
        )
        self._memory = {}
        return self._memory

    def warm(self) -> None:
        """Open this thread's SQLite connection now (diskcache keeps one per thread)."""
        self._cache.get("warm-up")

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


def _clean_record(record: dict) -> AccountRecord:
    kept: AccountRecord = {}
    for key in _NUMBERS:
        if _is_time(record.get(key)):
            kept[key] = float(record[key])
    refused = record.get("refused")
    if (
        isinstance(refused, dict)
        and isinstance(refused.get("token"), str)
        and _is_time(refused.get("checked"))
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


def _is_number(value: object) -> TypeGuard[int | float]:
    if isinstance(value, int) and not isinstance(value, bool):
        return abs(value) < 2**53  # a larger one would not fit in a float
    return isinstance(value, float) and math.isfinite(value)


def _is_time(value: object) -> bool:
    """A moment that can be shown as a date (an impossible one would make /healthz a 500)."""
    return _is_number(value) and 0 <= value < _YEAR_10000
