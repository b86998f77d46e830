"""CPU per generation of the ideal proxy and of one or more copies of the app, interleaved.

    python bench/compare.py [--rounds 2] [--duration 20] NAME=TREE[:APP] ...

Each NAME=TREE is a checkout of this repository (`git archive <commit> | tar -x -C TREE`); APP
is the gunicorn app to run from it (default app:app; `bench.variants:without_usage()` for the
app without the usage ledger and metrics; `bench.floor:app` for the fixed parts alone). A NAME
starting with "ideal" runs that tree's bench/ideal.py. One fake Workers AI serves them all; each
round runs every variant in turn (in reverse order every other round) under bench/run.py's wrk
load, so that a machine shared with other work weighs on all of them alike. It prints each
round's figures and a table of them against the ideal's in the same round.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tests.support.programs as programs
from bench.run import _workers, app_env, chat_body, fake_upstream, measured
from tests.support.programs import Gunicorn


def main() -> None:
    parser = argparse.ArgumentParser(description="flux-api: CPU per generation, interleaved")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=int, default=20, help="seconds per measured run")
    parser.add_argument("--connections", type=int, default=256)
    parser.add_argument("variants", nargs="+", help="NAME=TREE[:APP]")
    args = parser.parse_args()
    args.latency, args.jitter = 3.0, 0.6
    variants = [_variant(text) for text in args.variants]
    if not any(name.startswith("ideal") for name, _, _ in variants):
        sys.exit("compare needs an ideal=TREE variant to compare against")
    workdir = Path(tempfile.mkdtemp(prefix="flux-compare-"))
    rows: dict[str, list] = {}
    try:
        with fake_upstream(workdir, args) as upstream:
            for round_ in range(args.rounds):
                for name, tree, app in variants if round_ % 2 == 0 else variants[::-1]:
                    load, cpu = _one(name, tree, app, upstream.url, workdir, args)
                    rows.setdefault(name, []).append((load, cpu))
                    print(
                        f"round {round_} {name}: {load.rps:.1f} req/s, p50 {load.p50 * 1000:.0f}"
                        f" ms, p99 {load.p99 * 1000:.0f} ms, {cpu:.2f} ms CPU/gen, "
                        f"{load.failures} failed",
                        flush=True,
                    )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    _print_table(rows)


def _variant(text: str) -> tuple[str, Path, str]:
    name, _, spec = text.partition("=")
    tree, _, app = spec.partition(":")
    if not name or not (Path(tree) / "gunicorn.conf.py").exists():
        sys.exit(f"not NAME=TREE[:APP] with a checkout at TREE: {text!r}")
    return name, Path(tree).resolve(), app or "app:app"


def _one(name: str, tree: Path, app: str, upstream_url: str, workdir: Path, args):
    if name.startswith("ideal"):
        env = {"BENCH_LATENCY": str(args.latency), "BENCH_JITTER": str(args.jitter)}
        app = "bench.ideal:app"
    else:
        env = app_env(upstream_url, workdir / f"data-{name}")
    programs.ROOT = tree  # Gunicorn runs ROOT's gunicorn.conf.py, which imports from ROOT
    server = Gunicorn(env, workdir, workers=_workers())
    server.env["PYTHONPATH"] = str(tree)
    server.start(app)
    try:
        url = f"{server.url}/v1/chat/completions"
        return measured(server, url, args, chat_body("a lighthouse at dawn"))
    finally:
        server.stop()


def _print_table(rows: dict[str, list]) -> None:
    ideal = rows[next(name for name in rows if name.startswith("ideal"))]
    print("\n| run | CPU ms/gen, each round | × the ideal's | req/s × ideal | p99 over ideal |")
    print("|---|---|---|---|---|")
    for name, runs in rows.items():
        pairs = list(zip(runs, ideal))
        cpu = " / ".join(f"{c:.2f}" for (_, c), _ in pairs)
        ratio = " / ".join(f"{c / ic:.2f}" for (_, c), (_, ic) in pairs)
        rps = " / ".join(f"{load.rps / il.rps:.3f}" for (load, _), (il, _) in pairs)
        p99 = " / ".join(f"{(load.p99 - il.p99) * 1000:+.0f}" for (load, _), (il, _) in pairs)
        print(f"| {name} | {cpu} | {ratio} | {rps} | {p99} ms |")


if __name__ == "__main__":
    main()
