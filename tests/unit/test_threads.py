"""Thread pools made before they are needed (flux_api/threads.py)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from flux_api import threads
from flux_api.threads import prestart


def test_every_thread_is_made_and_warmed_once_on_a_thread_of_its_own():
    pool = ThreadPoolExecutor(max_workers=8)
    warmed: list[int] = []
    lock = threading.Lock()

    def warm():
        with lock:
            warmed.append(threading.get_ident())

    prestart(pool, 8, warm)
    assert len(pool._threads) == 8
    assert sorted(warmed) == sorted(set(warmed)) and len(warmed) == 8
    # All idle now: the next task runs on one of them, no new thread is made.
    pool.submit(lambda: None).result()
    assert len(pool._threads) == 8
    pool.shutdown()


def test_a_failing_warm_up_leaves_the_threads_made():
    pool = ThreadPoolExecutor(max_workers=4)

    def warm():
        raise OSError("DATA_DIR went away")

    prestart(pool, 4, warm)
    assert len(pool._threads) == 4
    assert pool.submit(lambda: 42).result(timeout=5) == 42
    pool.shutdown()


def test_a_pool_that_cannot_take_more_does_not_hold_the_start(monkeypatch, caplog):
    monkeypatch.setattr(threads, "PRESTART_TIMEOUT", 5.0)
    pool = ThreadPoolExecutor(max_workers=4)
    submit, made = pool.submit, []

    def refuse_the_third(fn, *args):
        if len(made) == 2:
            raise RuntimeError("can't start new thread")
        made.append(1)
        return submit(fn, *args)

    monkeypatch.setattr(pool, "submit", refuse_the_third)
    started = time.monotonic()
    prestart(pool, 4)
    assert time.monotonic() - started < 4  # the barrier was aborted, not waited out
    assert "2 of 4 threads made in advance" in caplog.text
    assert submit(lambda: "still works").result(timeout=5) == "still works"
    pool.shutdown()


def test_the_pool_is_usable_while_and_after_it_is_made():
    pool = ThreadPoolExecutor(max_workers=3)
    prestart(pool, 3)
    results = [pool.submit(lambda n=n: n * n) for n in range(10)]
    assert [r.result() for r in results] == [n * n for n in range(10)]
    pool.shutdown()


def test_a_signal_that_ends_the_wait_lets_the_threads_go_at_once(monkeypatch):
    """gunicorn's SIGQUIT handler raises SystemExit in the main thread: the threads made so far
    must not wait out PRESTART_TIMEOUT, or the worker's exit would."""
    pool = ThreadPoolExecutor(max_workers=4)
    waiting_for_all = threads._wait
    caller = threading.current_thread()

    def interrupted(barrier):
        if threading.current_thread() is caller:
            while barrier.n_waiting < 4:  # every thread made and waiting
                time.sleep(0.01)
            raise SystemExit(0)
        waiting_for_all(barrier)

    monkeypatch.setattr(threads, "_wait", interrupted)
    with pytest.raises(SystemExit):
        prestart(pool, 4)
    assert pool.submit(lambda: "free").result(timeout=5) == "free"
    pool.shutdown()
