"""Worst-case memory of one worker: concurrent Images API calls for four 2048x2048 PNGs as
b64_json, with and without the IMAGE_MEMORY_MB bound. Prints the worker's peak RSS.

    python bench/memory.py [--clients 16] [--rounds 2]

The fake Workers AI (its own gunicorn process) answers SDXL calls with photo-like PNGs of the
size asked for (2048x2048: ~9 MiB each); the service runs one worker under gunicorn.conf.py.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import fake_upstream, process_group  # noqa: E402
from tests.support.fakes.workers_ai import ACCOUNT_ID, TOKEN  # noqa: E402
from tests.support.programs import Gunicorn  # noqa: E402

API_KEY = "sk-bench-key"
BODY = {
    "prompt": "a fox in the snow",
    "model": "@cf/stabilityai/stable-diffusion-xl-base-1.0",
    "n": 4,
    "size": "2048x2048",
    "response_format": "b64_json",
}


def peak_rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024


def one_call(url: str) -> tuple[int, int]:
    response = requests.post(
        url + "/v1/images/generations",
        json=BODY,
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=600,
    )
    return response.status_code, len(response.content)


def measure(fake_url: str, workdir: Path, memory_mb: int, clients: int, rounds: int) -> dict:
    env = {
        "API_KEY": API_KEY,
        "CF_ACCOUNT_ID": ACCOUNT_ID,
        "CF_API_TOKEN": TOKEN,
        "CF_API_BASE": f"{fake_url}/client/v4/accounts/{{account_id}}/ai/run",
        "DATA_DIR": str(workdir / f"data-{memory_mb}"),
        "IMAGE_MEMORY_MB": str(memory_mb),
        "UPSTREAM_TIMEOUT": "600",
        "IMAGES_MAX_N": "4",
    }
    app = Gunicorn(env, workdir, workers=1).start()
    try:
        one_call(app.url)  # warm: the fake renders its 2048x2048 PNG once
        worker = process_group(app.process.pid)[1]
        started = time.monotonic()
        with ThreadPoolExecutor(clients) as pool:
            results = list(pool.map(lambda _: one_call(app.url), range(clients * rounds)))
        seconds = time.monotonic() - started
        return {
            "limit_mb": memory_mb,
            "calls": len(results),
            "ok": sum(1 for status, _ in results if status == 200),
            "answer_mib": results[0][1] / 2**20,
            "seconds": seconds,
            "peak_rss_mib": peak_rss_mib(worker),
        }
    finally:
        app.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--limits", default="100000,256", help="IMAGE_MEMORY_MB values to try")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flux-bench-mem-") as tmp:
        workdir = Path(tmp)
        upstream = SimpleNamespace(latency=0.5, jitter=0.0)
        with fake_upstream(workdir, upstream) as fake:
            print(f"{args.clients} clients x {args.rounds} rounds of n=4 2048x2048 b64_json")
            print("| IMAGE_MEMORY_MB | calls ok | answer MiB | seconds | worker peak RSS MiB |")
            print("|---|---|---|---|---|")
            for limit in (int(x) for x in args.limits.split(",")):
                row = measure(fake.url, workdir, limit, args.clients, args.rounds)
                print(
                    f"| {row['limit_mb']} | {row['ok']}/{row['calls']} | "
                    f"{row['answer_mib']:.1f} | {row['seconds']:.1f} | {row['peak_rss_mib']:.0f} |"
                )


if __name__ == "__main__":
    main()
