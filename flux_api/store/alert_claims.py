"""Who sends an alert: a claim on its name, taken atomically with an expiry, shared by every
worker (and, in Redis, every node). The first to claim sends; the others, until it expires,
know that it was sent. Two twins: a diskcache under DATA_DIR/alerts (one machine) and a Redis
key per claim (store/redis_alert_claims.py).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Protocol

import diskcache

_ERRORS = (OSError, sqlite3.Error, diskcache.Timeout)


class AlertClaims(Protocol):
    def claim(self, name: str, seconds: int) -> bool:
        """True for the one caller, across workers and nodes, that takes `name` first in
        `seconds`; False while another's claim holds. ClaimsUnavailable when it cannot tell."""

    def hold(self, name: str, seconds: int) -> None:
        """Make the claim on `name` (taken by this caller) end in `seconds` instead: shortened
        while its message waits for a retry, so that a process that dies meanwhile does not
        keep the alert from everyone for the hour. ClaimsUnavailable when it cannot."""

    def close(self) -> None: ...


class ClaimsUnavailable(Exception):
    """The shared state could not be asked (a store that cannot be used, say)."""


class DiskAlertClaims:
    """diskcache's `add` is one SQLite transaction: of the workers that add the same key,
    one succeeds; an expired key counts as absent."""

    def __init__(self, directory: Path):
        try:
            self._claims = diskcache.Cache(str(directory))
        except _ERRORS as exc:
            raise ClaimsUnavailable(type(exc).__name__) from exc

    def claim(self, name: str, seconds: int) -> bool:
        try:
            return bool(self._claims.add(name, time.time(), expire=seconds, retry=True))
        except _ERRORS as exc:
            raise ClaimsUnavailable(type(exc).__name__) from exc

    def hold(self, name: str, seconds: int) -> None:
        try:
            self._claims.set(name, time.time(), expire=seconds, retry=True)
        except _ERRORS as exc:
            raise ClaimsUnavailable(type(exc).__name__) from exc

    def close(self) -> None:
        self._claims.close()
