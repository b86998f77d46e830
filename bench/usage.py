"""What the usage ledger costs a generation: the CPU time of its one write per generation, on
DATA_DIR (diskcache, under the machine-wide lock) and on Redis (one pipelined round trip), next
to "off" (the same events, no ledger). With --metrics, the Prometheus subscriber too.

    python bench/usage.py [--generations 2000] [--metrics]

A real redis-server is started on a loopback port when Debian's redis-server is installed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flux_api.events import Caller, Events, GenerationDone, UpstreamCall
from flux_api.observe.ledger import Ledger
from flux_api.store.usage import DiskUsageBook

CALL = UpstreamCall("abcdef…wxyz", "flux-1-schnell", "ok", None, 2.5, steps=4)
GENERATION = GenerationDone(
    "flux-1-schnell",
    (1024, 1024),
    1,
    "ok",
    None,
    0.0,
    2.5,
    0.01,
    2.52,
    tries=(CALL,),
    caller=Caller("alice", "/v1/chat/completions"),
)


def cpu_per_generation_ms(events: Events, generations: int) -> tuple[float, float]:
    """CPU (this process's, all threads) and wall time per generation's events: its try, then
    its end."""
    for _ in range(50):  # warm up: connections, SQLite pages, imports
        events.announce(CALL)
        events.announce(GENERATION)
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(generations):
        events.announce(CALL)
        events.announce(GENERATION)
    per = 1000 / generations
    return (time.process_time() - cpu) * per, (time.perf_counter() - wall) * per


def with_subscriber(subscriber) -> Events:
    events = Events()
    events.subscribe(subscriber)
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=2000)
    parser.add_argument("--metrics", action="store_true")
    args = parser.parse_args()
    n = args.generations
    rows = [("off (no subscriber)", cpu_per_generation_ms(Events(), n))]
    with tempfile.TemporaryDirectory() as directory:
        book = DiskUsageBook(Path(directory) / "usage")
        rows.append(("ledger on DATA_DIR", cpu_per_generation_ms(with_subscriber(Ledger(book)), n)))
        book.close()
        redis_row = _redis_row(Path(directory), n)
        if redis_row:
            rows.append(redis_row)
    if args.metrics:
        rows.append(_metrics_row(n))
    print(f"per generation, {n} generations (one try each), ms: CPU, wall")
    for name, (cpu, wall) in rows:
        print(f"  {name:28} {cpu:7.3f} {wall:7.3f}")


def _redis_row(directory: Path, n: int):
    try:
        from flux_api.store.redis_usage import RedisUsageBook
        from tests.support.programs import free_port
        from tests.support.redis_server import RedisServer

        server = RedisServer(directory / "redis", free_port(), "bench-password").start()
    except Exception as exc:  # noqa: BLE001 (no redis-server here: that row is skipped)
        print(f"(Redis row skipped: {exc})")
        return None
    try:
        import redis

        book = RedisUsageBook(redis.Redis.from_url(server.url))
        return ("ledger on Redis", cpu_per_generation_ms(with_subscriber(Ledger(book)), n))
    finally:
        server.stop()


def _metrics_row(n: int):
    from flux_api.observe import metrics

    subscriber = metrics.subscriber() if hasattr(metrics, "subscriber") else metrics.count
    return ("metrics", cpu_per_generation_ms(with_subscriber(subscriber), n))


if __name__ == "__main__":
    main()
