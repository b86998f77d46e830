"""What the usage ledger and the metrics cost a generation: the CPU and wall time of their work
for one generation's events (one Workers AI try, the generation, its request), next to "off"
(the same events, no subscriber). The ledger on DATA_DIR (diskcache, under the machine-wide
lock) and on Redis (one MULTI/EXEC round trip); the metrics as under gunicorn (prometheus_client's
multiprocess files).

    python bench/usage.py [--generations 2000]

A real redis-server is started on a loopback port when Debian's redis-server is installed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flux_api.events import Caller, Events, GenerationDone, RequestDone, UpstreamCall
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
REQUEST = RequestDone(
    "POST", "/v1/chat/completions", 200, 2.6, "flux-1-schnell", "rid", False,
    key="alice", generated=True, route="/v1/chat/completions",
)  # fmt: skip


def cpu_per_generation_ms(events: Events, generations: int) -> tuple[float, float]:
    """CPU (this process's, all threads) and wall time per generation's events: its try, then
    its end."""
    for _ in range(50):  # warm up: connections, SQLite pages, imports
        for event in (CALL, GENERATION, REQUEST):
            events.announce(event)
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(generations):
        for event in (CALL, GENERATION, REQUEST):
            events.announce(event)
    per = 1000 / generations
    return (time.process_time() - cpu) * per, (time.perf_counter() - wall) * per


def with_subscriber(subscriber) -> Events:
    events = Events()
    events.subscribe(subscriber)
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=2000)
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
        rows.append(_metrics_row(Path(directory), n))
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


def _metrics_row(directory: Path, n: int):
    import os

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory / "metrics")  # as under gunicorn
    (directory / "metrics").mkdir()
    from flux_api.accounts.pool import AccountPool
    from flux_api.accounts.states import FileAccountStates
    from flux_api.config.accounts import Account
    from flux_api.config.settings import Settings
    from flux_api.observe.metrics import Metrics
    from flux_api.store.disk import DiskImageStore

    pool = AccountPool(
        (Account("abcdef" + "0" * 26, "t" * 40),), FileAccountStates(directory / "a")
    )
    store = DiskImageStore(directory / "images", ttl=600, size_limit_bytes=10**8)
    metrics = Metrics(pool, store, Settings())
    return ("metrics (multiprocess)", cpu_per_generation_ms(with_subscriber(metrics.count), n))


if __name__ == "__main__":
    main()
