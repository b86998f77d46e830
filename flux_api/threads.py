"""Thread pools whose threads exist before a burst needs them.

A ThreadPoolExecutor makes its threads one at a time, as work arrives and none is idle, and each
new thread then opens its own connections to the shared state (diskcache keeps one SQLite
connection per thread and cache, ~0.4 ms each). Paid by the first requests of a burst, on the
same cores that must answer them, this was most of the delay before a stream's first line
(bench/README.md, "A burst of held streams").
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)

PRESTART_TIMEOUT = 30.0  # seconds; a worker that cannot make its threads starts anyway


def prestart(pool: ThreadPoolExecutor, count: int, warm: Callable[[], None] = lambda: None) -> None:
    """Make `count` threads of `pool` now, each running `warm` once. `count` must not exceed
    the pool's max_workers: the tasks beyond it would wait for a thread while the others wait
    for them, and all would give up at PRESTART_TIMEOUT. Every task waits for all the others,
    so no thread is idle when the next is submitted and the pool makes a new one for each. A
    failing `warm` is left to the requests to meet."""
    barrier = threading.Barrier(count + 1)

    def start_one() -> None:
        try:
            warm()
        except Exception as exc:  # noqa: BLE001 (the store's own errors reach requests)
            log.debug("warming a thread failed: %s", type(exc).__name__)
        finally:
            _wait(barrier)

    for made in range(count):
        try:
            pool.submit(start_one)
        except RuntimeError as exc:  # no thread can be made (a process or memory limit)
            log.warning("%d of %d threads made in advance: %s", made, count, exc)
            barrier.abort()  # those made go on at once
            return
    try:
        _wait(barrier)
    finally:  # also when a signal ends the wait (SIGQUIT raises SystemExit): none is left
        barrier.abort()


def _wait(barrier: threading.Barrier) -> None:
    try:
        barrier.wait(PRESTART_TIMEOUT)
    except threading.BrokenBarrierError:  # one timed out: the others go on, fewer made
        pass
