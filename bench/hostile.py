"""What hostile input costs one worker before it is refused (issue 19's figures): a chat message
with thousands of `image_url` parts naming one stored image, and edits carrying 16 large PNGs
(6300x6300 RGBA, ~150 KB each) for a model that takes 4. Prints the worker's growth in peak
RSS and how long the refusals took.

    python bench/hostile.py [--parts 3000,15000] [--bombs 16] [--concurrent 32]

The service runs one gunicorn worker under gunicorn.conf.py against the fake Workers AI (its own
process); the only paid call is the one that makes the image the chat parts name.
"""

from __future__ import annotations

import argparse
import struct
import sys
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.memory import peak_rss_mib  # noqa: E402
from bench.run import API_KEY, app_env, fake_upstream, process_group  # noqa: E402
from tests.support.programs import Gunicorn  # noqa: E402

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def bomb_png(side: int) -> bytes:
    """One colour, RGBA: a few hundred KB that decode to side*side*4 bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    pixels = zlib.compress((b"\0" + b"\x80" * (side * 4)) * side, 9)
    header = struct.pack(">IIBBBBB", side, side, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def chat_parts(url: str, image: str, parts: int) -> tuple[int, float]:
    content = [{"type": "text", "text": "make it blue"}]
    content += [{"type": "image_url", "image_url": {"url": image}}] * parts
    body = {"messages": [{"role": "user", "content": content}]}
    started = time.monotonic()
    answer = requests.post(url + "/v1/chat/completions", json=body, headers=AUTH, timeout=600)
    return answer.status_code, time.monotonic() - started


def edit_bombs(url: str, bomb: bytes, count: int) -> tuple[int, float]:
    files = [("image[]", (f"{i}.png", bomb, "image/png")) for i in range(count)]
    started = time.monotonic()
    answer = requests.post(
        url + "/v1/images/edits", files=files, data={"prompt": "x"}, headers=AUTH, timeout=600
    )
    return answer.status_code, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="3000,15000")
    parser.add_argument("--bombs", type=int, default=16)
    parser.add_argument("--concurrent", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flux-bench-hostile-") as tmp:
        workdir = Path(tmp)
        with fake_upstream(workdir, SimpleNamespace(latency=0.0, jitter=0.0)) as fake:
            env = app_env(fake.url, workdir / "data", MAX_UPLOAD_MB="20")
            app = Gunicorn(env, workdir, workers=1).start()
            try:
                run(app, args)
            finally:
                app.stop()


def run(app: Gunicorn, args) -> None:
    worker = process_group(app.process.pid)[1]
    body = {"messages": [{"role": "user", "content": "a fox"}]}
    made = requests.post(app.url + "/v1/chat/completions", json=body, headers=AUTH, timeout=60)
    image = made.json()["flux_api"]["image_url"]
    print("| request | answer | seconds | worker peak RSS growth MiB |")
    print("|---|---|---|---|")
    for parts in (int(x) for x in args.parts.split(",")):
        before = peak_rss_mib(worker)
        status, seconds = chat_parts(app.url, image, parts)
        grown = peak_rss_mib(worker) - before
        label = f"chat, {parts:,} parts naming one stored image"
        print(f"| {label} | {status} | {seconds:.2f} | {grown:.0f} |")
    bomb = bomb_png(6300)
    before = peak_rss_mib(worker)
    status, seconds = edit_bombs(app.url, bomb, args.bombs)
    grown = peak_rss_mib(worker) - before
    label = f"edit, {args.bombs} x 6300x6300 RGBA PNG ({len(bomb) // 1000} KB each)"
    print(f"| {label} | {status} | {seconds:.2f} | {grown:.0f} |")
    before = peak_rss_mib(worker)
    started = time.monotonic()
    with ThreadPoolExecutor(args.concurrent) as pool:
        results = list(
            pool.map(lambda _: edit_bombs(app.url, bomb, args.bombs), range(args.concurrent))
        )
    seconds = time.monotonic() - started
    grown = peak_rss_mib(worker) - before
    statuses = sorted({status for status, _ in results})
    label = f"{args.concurrent} such edits at once"
    print(f"| {label} | {statuses} | {seconds:.2f} (all) | {grown:.0f} |")


if __name__ == "__main__":
    main()
