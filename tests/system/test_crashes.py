"""Crashes and restarts of the real gunicorn: nothing stored is lost, in-flight work finishes.

kill -9 of a worker mid-generation, graceful restarts (SIGHUP, SIGTERM), full restarts with
expiry and the size cap, and a store that cannot be opened.
"""

from __future__ import annotations

import os
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from flux_api.store.disk import DiskImageStore
from tests.support.programs import Gunicorn
from tests.support.service import API_KEY


def generate(url: str, prompt: str = "a fox", timeout: float = 30) -> str:
    """One generation through the chat endpoint; the image's path."""
    response = requests.post(
        f"{url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": prompt}]},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=timeout,
    )
    assert response.status_code == 200, response.text
    return re.search(r"/image/[A-Za-z0-9_-]+", response.text).group(0)


def try_generate(url: str, prompt: str) -> str | Exception:
    try:
        return generate(url, prompt)
    except (requests.ConnectionError, AssertionError) as exc:
        return exc


def workers(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def wait_for(condition, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def served(url: str, paths: list[str]) -> bool:
    return all(requests.get(url + path, timeout=10).status_code == 200 for path in paths)


KILL_ROUNDS = 3


def test_kill_9_of_a_worker_loses_nothing_stored(gunicorn, service_env, fake_ai):
    server = gunicorn(service_env, workers=2)
    stored = [generate(server.url, f"stored before {i}") for i in range(6)]
    for round_ in range(KILL_ROUNDS):
        fake_ai.latency = 1.5
        # 16 at once: with 8, the kernel now and then handed all of them to one worker (the
        # victim), and nothing was left to show the other one carrying on.
        with ThreadPoolExecutor(max_workers=16) as pool:
            inflight = [pool.submit(try_generate, server.url, f"{round_}/{i}") for i in range(16)]
            wait_for(lambda: fake_ai.in_flight >= 16)
            victim = workers(server.process.pid)[round_ % 2]
            os.kill(victim, signal.SIGKILL)
            results = [future.result() for future in inflight]
        fake_ai.latency = 0
        completed = [r for r in results if isinstance(r, str)]
        # Requests on the killed worker break; those on the other one complete.
        assert 0 < len(completed) < 16, results
        assert all(isinstance(r, (str, requests.ConnectionError)) for r in results), results
        wait_for(lambda: len(workers(server.process.pid)) == 2)
        assert victim not in workers(server.process.pid)
        stored += completed + [generate(server.url, f"after kill {round_}")]
        assert served(server.url, stored)  # every image stored so far, none lost
    assert "Traceback" not in server.log


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM])
def test_graceful_restart_and_stop_let_generations_finish(gunicorn, service_env, fake_ai, sig):
    server = gunicorn(service_env, workers=2)
    fake_ai.latency = 2
    with ThreadPoolExecutor(max_workers=6) as pool:
        inflight = [pool.submit(try_generate, server.url, f"in flight {i}") for i in range(6)]
        wait_for(lambda: fake_ai.in_flight >= 6)
        server.process.send_signal(sig)
        results = [future.result() for future in inflight]
    assert all(isinstance(r, str) for r in results), results
    fake_ai.latency = 0
    if sig == signal.SIGHUP:  # new workers, same master: everything still served
        assert served(server.url, results)
        assert served(server.url, [generate(server.url, "after the reload")])
    else:
        assert server.process.wait(timeout=30) == 0
        again = gunicorn(service_env)
        assert served(again.url, results)


def test_restart_keeps_unexpired_images_and_drops_expired_ones(gunicorn, service_env, fake_ai):
    env = {**service_env, "IMAGE_EXPIRATION": "3"}
    first = gunicorn(env)
    old = [generate(first.url, f"old {i}") for i in range(3)]
    time.sleep(3.2)
    fresh = [generate(first.url, f"fresh {i}") for i in range(3)]
    first.stop()
    second = gunicorn(env)
    assert served(second.url, fresh)
    for path in old:
        response = requests.get(second.url + path, timeout=10)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "image_not_found"


def test_the_store_stays_under_its_size_cap_across_restarts(gunicorn, service_env, fake_ai):
    env = {**service_env, "STORE_SIZE_LIMIT_MB": "1"}
    server = gunicorn(env)
    paths = []
    for i in range(4):
        response = requests.post(
            f"{server.url}/v1/images/generations",
            json={"prompt": f"batch {i}", "n": 4, "size": "2048x2048"},
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        paths += [item["url"].removeprefix(server.url) for item in response.json()["data"]]
    server.stop()
    directory = Path(env["DATA_DIR"]) / "images"
    store = DiskImageStore(directory, ttl=600, size_limit_bytes=1024 * 1024)
    try:
        assert 0 < store._cache.volume() <= 1024 * 1024
    finally:
        store.close()
    again = gunicorn(env)
    kept = [p for p in paths if requests.get(again.url + p, timeout=10).status_code == 200]
    assert 0 < len(kept) < len(paths), "the cap evicted some, not all"
    assert kept == paths[-len(kept) :], "the oldest went first"


def assert_refuses_to_start(server: Gunicorn) -> None:
    process = server.run_until_exit()
    output = process.stdout + process.stderr
    assert process.returncode != 0
    assert "flux-api cannot start: DATA_DIR: the image store" in output
    assert "Traceback" not in output


@pytest.mark.parametrize("damage", ["corrupt database", "directory is a file"])
def test_a_damaged_store_stops_the_start_with_one_clear_line(tmp_path, service_env, damage):
    images = Path(service_env["DATA_DIR"]) / "images"
    images.parent.mkdir(parents=True, exist_ok=True)
    if damage == "corrupt database":
        images.mkdir()
        (images / "cache.db").write_bytes(b"this is not a SQLite database" * 100)
    else:
        images.write_text("not a directory")
    assert_refuses_to_start(Gunicorn(service_env, tmp_path))


def test_a_database_damaged_while_running_stops_the_next_start(
    tmp_path, gunicorn, service_env, fake_ai
):
    """SQLite keeps working from its write-ahead log after the file under it is overwritten, so
    the damage shows at the next start: a clear line, never a silently empty store."""
    server = gunicorn(service_env)
    generate(server.url, "before the damage")
    database = Path(service_env["DATA_DIR"]) / "images" / "cache.db"
    database.write_bytes(b"this is not a SQLite database" * 1000)
    server.stop()
    assert_refuses_to_start(Gunicorn(service_env, tmp_path))
