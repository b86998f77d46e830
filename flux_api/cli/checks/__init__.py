"""The checks of `python -m flux_api doctor`, one module per thing checked; each gives `Check`s.

A check says what it found in words an operator can act on, and on a failure the fix: the
setting to change, or what to do outside the service. No check's text holds a secret (the
doctor scrubs every line all the same: secrets.py)."""

from __future__ import annotations

from dataclasses import dataclass

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Check:
    status: str  # OK, WARN (works, but see the detail) or FAIL (the service cannot do its job)
    name: str
    detail: str
    fix: str = ""


def ok(name: str, detail: str) -> Check:
    return Check(OK, name, detail)


def warn(name: str, detail: str, fix: str = "") -> Check:
    return Check(WARN, name, detail, fix)


def fail(name: str, detail: str, fix: str) -> Check:
    return Check(FAIL, name, detail, fix)
