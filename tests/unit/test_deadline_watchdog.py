"""The deadlines' watchdog (flux_api/upstream/http.py): it wakes only for the first call due,
so a call that falls due before all those waiting must still run first, and a cancelled one
never runs."""

from __future__ import annotations

import threading
import time

from flux_api.upstream.http import _Watchdog


def test_a_call_due_before_the_waiting_ones_runs_first():
    watchdog = _Watchdog()
    ran: list[str] = []
    done = threading.Event()
    now = time.monotonic()
    watchdog.call_at(now + 3600, lambda: ran.append("later"))
    watchdog.call_at(now + 1800, lambda: ran.append("sooner"))
    watchdog.call_at(now + 0.01, lambda: (ran.append("first"), done.set()))
    assert done.wait(30)
    assert ran == ["first"]


def test_a_call_due_after_the_first_is_not_lost():
    watchdog = _Watchdog()
    both = threading.Event()
    ran: list[str] = []
    now = time.monotonic()
    watchdog.call_at(now + 0.01, lambda: ran.append("one"))
    watchdog.call_at(now + 0.02, lambda: (ran.append("two"), both.set()))
    assert both.wait(30)
    assert ran == ["one", "two"]


def test_a_cancelled_call_never_runs():
    watchdog = _Watchdog()
    ran: list[str] = []
    done = threading.Event()
    now = time.monotonic()
    cancel = watchdog.call_at(now + 0.01, lambda: ran.append("cancelled"))
    cancel()
    watchdog.call_at(now + 0.02, lambda: (ran.append("kept"), done.set()))
    assert done.wait(30)
    assert ran == ["kept"]
