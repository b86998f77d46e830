"""A burst of held chat streams: what each of N clients opening a stream at once gets.

    python bench/burst.py [--streams 1024] [--latency 10] [--jitter 0] [--repeat 1]
                          [--no-ideal] [--deadline 180] [--threads N]
                          [--admission-wait S] [--via-nginx]

It starts the fake Workers AI in its own process (as bench/run.py does, with a thread per stream
so the fake never queues), then, under the shipped gunicorn.conf.py with the service's default
settings (or `--threads` per worker, `--admission-wait`), the ideal proxy (bench/ideal.py,
streaming: first line at once, then a sleep) and the app, alternately when repeated, each once
its processes are idle (all workers started). N clients, one asyncio task each in this process,
open their streams at the same moment over raw HTTP/1.1 (stdlib only, a socket per stream) and
record: the time to the first progress line ("Original Prompt"), the status, whether the stream
ended with [DONE] and no in-band error, and the error code if one came. Meanwhile the RSS of the
gunicorn process group is sampled every 0.2 s; its peak is reported, with the CPU this client
used (it shares the cores with the server). `--via-nginx` puts the shipped nginx site (plain
HTTP) in front of both, the clients spread over 32 loopback addresses as if from as many
machines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import (
    API_KEY,
    _workers,
    app_env,
    cpu_seconds,
    fake_upstream,
    process_group,
    rss_mib,
)
from tests.support.nginx import Nginx
from tests.support.programs import Gunicorn

FIRST_LINE = b"Original Prompt"
# Through nginx, the clients come from this many loopback addresses: 1,024 streams are 32 per
# address, under the shipped site's 64 per client, so only its total (what the service holds)
# turns any away.
SOURCES = 32


@dataclass
class Stream:
    status: int = 0  # 0: no answer (connection failed or closed before a status line)
    first_chunk: float | None = None  # seconds from the burst's start to the progress line
    done: bool = False  # [DONE] received with no in-band error
    error: str = ""  # an error code (in-band or in a JSON body), or the exception's name
    retry_after: str = ""


@dataclass
class Burst:
    name: str
    streams: list[Stream]
    seconds: float
    peak_rss_mib: float
    client_cpu: float
    extra: dict = field(default_factory=dict)


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]):
    """The body's bytes as they arrive (chunked or until close)."""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                return
            data = await reader.readexactly(size)
            await reader.readexactly(2)
            yield data
    elif "content-length" in headers:
        yield await reader.readexactly(int(headers["content-length"]))
    else:
        while data := await reader.read(65536):
            yield data


async def one_stream(
    port: int, body: bytes, start: float, deadline: float, source: str | None = None
) -> Stream:
    """One stream; `source`: the local address to connect from (as if from another client)."""
    result = Stream()
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {API_KEY}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    writer = None
    try:
        async with asyncio.timeout(deadline):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, local_addr=(source, 0) if source else None
            )
            writer.write(request)
            await writer.drain()
            status_line = await reader.readline()
            if not status_line:
                result.error = "closed before a status line"
                return result
            result.status = int(status_line.split()[1])
            headers = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            result.retry_after = headers.get("retry-after", "")
            seen = b""
            async for data in _read_body(reader, headers):
                seen += data
                if result.first_chunk is None and FIRST_LINE in seen:
                    result.first_chunk = time.monotonic() - start
            if result.status != 200 or b'"error"' in seen:
                match = re.search(rb'"code":\s*"([a-z_]+)"', seen)
                result.error = match.group(1).decode() if match else f"status {result.status}"
            else:
                result.done = b"data: [DONE]" in seen
    except TimeoutError:
        result.error = "client deadline"
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
        result.error = type(exc).__name__
    finally:
        if writer is not None:
            writer.close()
    return result


async def burst(
    port: int, streams: int, deadline: float, sources: int = 0
) -> tuple[list[Stream], float]:
    """`sources`: spread the streams over that many loopback addresses (127.0.0.2 on), so that
    nginx's per-client limit sees that many clients; 0: all from 127.0.0.1."""
    body = json.dumps(
        {
            "model": "flux-1-schnell",
            "stream": True,
            "messages": [{"role": "user", "content": "a lighthouse at dawn"}],
        }
    ).encode()
    start = time.monotonic()
    results = await asyncio.gather(
        *(
            one_stream(
                port, body, start, deadline, f"127.0.0.{2 + i % sources}" if sources else None
            )
            for i in range(streams)
        )
    )
    return list(results), time.monotonic() - start


def peak_rss(master: int, stop: threading.Event, peak: list[float]) -> None:
    while not stop.wait(0.2):
        try:
            peak[0] = max(peak[0], sum(rss_mib(pid) for pid in process_group(master)))
        except (OSError, AttributeError):  # a process ended between listing and reading
            continue


def settle(server: Gunicorn, timeout: float = 30.0) -> None:
    """Until the server's processes are idle: it answers as soon as one worker does, while the
    others may still be starting (making their threads), which a burst would compete with."""
    deadline = time.monotonic() + timeout
    used: float | None = None
    while time.monotonic() < deadline:
        time.sleep(0.5)
        try:
            now = cpu_seconds(server.process.pid)
        except OSError:  # a process ended between listing and reading
            continue
        if used is not None and now - used < 0.02:  # under 4 % of a core
            return
        used = now


def measure(name: str, server: Gunicorn, args, port: int) -> Burst:
    settle(server)
    stop, peak = threading.Event(), [0.0]
    sampler = threading.Thread(target=peak_rss, args=(server.process.pid, stop, peak))
    sampler.start()
    before = resource.getrusage(resource.RUSAGE_SELF)
    try:
        streams, seconds = asyncio.run(
            burst(port, args.streams, args.deadline, SOURCES if args.via_nginx else 0)
        )
    finally:
        stop.set()
        sampler.join()
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return Burst(name, streams, seconds, peak[0], cpu)


def run(workdir: Path, args) -> list[Burst]:
    upstream_args = SimpleNamespace(latency=args.latency, jitter=args.jitter)
    runs = []
    with fake_upstream(workdir, upstream_args, threads=args.streams + 64) as upstream:
        for round_ in range(args.repeat):
            order = ["app"] if args.no_ideal else ["ideal", "app"]
            if round_ % 2:
                order.reverse()
            threads = {"GUNICORN_THREADS": str(args.threads)} if args.threads else {}
            for which in order:
                if which == "ideal":
                    env = {"BENCH_LATENCY": str(args.latency), "BENCH_JITTER": str(args.jitter)}
                    server = Gunicorn({**env, **threads}, workdir, workers=_workers())
                    server.start("bench.ideal:app")
                else:
                    data = workdir / f"data-{round_}"
                    wait = {"ADMISSION_WAIT": args.admission_wait} if args.admission_wait else {}
                    env = app_env(upstream.url, data, **threads, **wait)
                    server = Gunicorn(env, workdir, _workers()).start()
                nginx = None
                try:
                    port = server.port
                    if args.via_nginx:
                        nginx = Nginx(server.port, workdir / f"nginx-{which}-{round_}", tls=False)
                        port = nginx.start().https_port
                    runs.append(measure(which, server, args, port))
                finally:
                    if nginx is not None:
                        nginx.stop()
                    server.stop()
                time.sleep(2)
    return runs


def print_table(runs: list[Burst], args) -> None:
    print(
        f"\n{args.streams} streams at once, upstream {args.latency:g} s ± {args.jitter:g} s, "
        f"{_workers()} workers × {args.threads or 'the default'} threads "
        "(the shipped gunicorn.conf.py)"
        + (f", ADMISSION_WAIT={args.admission_wait}" if args.admission_wait else "")
        + (", through the shipped nginx site" if args.via_nginx else "")
        + "\n"
    )
    print(
        "| run | first chunk ≤ 1 s | completed | 503 shed | 504 | other errors "
        "| first chunk p50 / p90 / max | wall | peak RSS (group) | client CPU |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for run_ in runs:
        firsts = sorted(s.first_chunk for s in run_.streams if s.first_chunk is not None)
        within = sum(1 for t in firsts if t <= 1.0)
        completed = sum(1 for s in run_.streams if s.done)
        shed = sum(1 for s in run_.streams if s.status == 503)
        timeouts = sum(1 for s in run_.streams if s.status == 504 or s.error == "upstream_timeout")
        others = Counter(
            s.error or f"status {s.status}"
            for s in run_.streams
            if not s.done and s.status not in (503, 504) and s.error != "upstream_timeout"
        )
        spread = (
            f"{statistics.median(firsts):.2f} / {firsts[int(len(firsts) * 0.9) - 1]:.2f} / "
            f"{firsts[-1]:.2f} s"
            if firsts
            else "–"
        )
        other = ", ".join(f"{n} {kind}" for kind, n in others.most_common()) or "0"
        print(
            f"| {run_.name} | {within} | {completed} | {shed} | {timeouts} | {other} | {spread} "
            f"| {run_.seconds:.1f} s | {run_.peak_rss_mib:.0f} MiB | {run_.client_cpu:.1f} s |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description="flux-api: a burst of held chat streams")
    parser.add_argument("--streams", type=int, default=1024)
    parser.add_argument("--latency", type=float, default=10.0, help="the fake's seconds")
    parser.add_argument("--jitter", type=float, default=0.0)
    parser.add_argument("--repeat", type=int, default=1, help="rounds, ideal and app alternating")
    parser.add_argument("--no-ideal", action="store_true", help="the app only")
    parser.add_argument(
        "--deadline", type=float, default=180.0, help="a client gives up after this"
    )
    parser.add_argument(
        "--via-nginx",
        action="store_true",
        help="through the shipped nginx site (plain HTTP), clients from 32 loopback addresses",
    )
    parser.add_argument(
        "--admission-wait", default="", help="ADMISSION_WAIT (default: the service's own)"
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="GUNICORN_THREADS (default: the service's own)"
    )
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.streams)), hard))
    workdir = Path(tempfile.mkdtemp(prefix="flux-burst-"))
    try:
        print_table(run(workdir, args), args)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
