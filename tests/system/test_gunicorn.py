"""The real gunicorn with the shipped gunicorn.conf.py: workers, key file, restarts, bad starts."""

import os
import re
import signal
import time
from pathlib import Path

import pytest
import requests

from tests.support.programs import Gunicorn
from tests.support.service import API_KEY, SECRETS, content_of, read_sse


def chat(url: str, key: str, content: str = "a fox 16:9", **body) -> requests.Response:
    return requests.post(
        f"{url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": content}], **body},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
        stream=body.get("stream", False),
    )


def test_generation_and_streaming_through_gunicorn(gunicorn, service_env, fake_ai):
    server = gunicorn(service_env)
    response = chat(server.url, API_KEY)
    assert response.status_code == 200
    url = re.search(r"\((http[^)]+)\)$", response.json()["choices"][0]["message"]["content"]).group(
        1
    )
    assert url.startswith(server.url + "/image/")
    assert requests.get(url).headers["Content-Type"] == "image/jpeg"

    fake_ai.latency = 1.0
    started = time.monotonic()
    events = read_sse(chat(server.url, API_KEY, stream=True), started)
    assert events[0].at < 0.5  # the role chunk is not held back by the slow upstream
    assert any(e.comment == "keep-alive" for e in events)
    assert content_of(events).endswith(")")
    assert events[-1].data == "[DONE]"


def test_workers_share_one_created_key(gunicorn, service_env, tmp_path, fake_ai):
    env = {k: v for k, v in service_env.items() if k != "API_KEY"}
    server = gunicorn(env, workers=3)
    key = (tmp_path / "data" / "api_key").read_text().strip()
    statuses = {
        requests.get(
            f"{server.url}/v1/models", headers={"Authorization": f"Bearer {key}"}
        ).status_code
        for _ in range(30)
    }
    assert statuses == {200}
    assert key not in server.log
    assert "api_key" in server.log


def test_a_restart_keeps_every_image(gunicorn, service_env, fake_ai):
    first = gunicorn(service_env)
    urls = []
    for i in range(3):
        content = chat(first.url, API_KEY, f"picture {i}").json()["choices"][0]["message"][
            "content"
        ]
        urls.append(re.search(r"/image/[^)]+", content).group(0))
    first.stop()
    second = gunicorn(service_env)
    for path in urls:
        assert requests.get(second.url + path).status_code == 200


@pytest.mark.parametrize(
    "setting, message",
    [
        ({"FLUX_NUM_STEPS": "lots"}, "FLUX_NUM_STEPS must be a number, not 'lots'."),
        ({"DATA_DIR": "{file}"}, "DATA_DIR: the "),
        ({"DATA_DIR": "{file}", "API_KEY": None}, "DATA_DIR: the key file"),
    ],
)
def test_a_bad_setting_stops_gunicorn_with_one_clear_line(tmp_path, service_env, setting, message):
    not_a_directory = tmp_path / "a-file"
    not_a_directory.write_text("")
    env = {**service_env, **{k: v.format(file=not_a_directory) for k, v in setting.items() if v}}
    env = {k: v for k, v in env.items() if setting.get(k, "") is not None}
    process = Gunicorn(env, tmp_path).run_until_exit()
    assert process.returncode != 0
    output = process.stdout + process.stderr
    assert f"flux-api cannot start: {message}" in output
    assert "Traceback" not in output


def test_no_secret_reaches_gunicorns_log(gunicorn, service_env, fake_ai):
    server = gunicorn(service_env)
    chat(server.url, API_KEY)
    chat(server.url, "sk-wrong")
    requests.get(f"{server.url}/v1/models", headers={"Authorization": f"Bearer {API_KEY}"})
    bad_token = gunicorn({**service_env, "CF_API_TOKEN": "cf-other-SECRET-token"})
    assert chat(bad_token.url, API_KEY).status_code == 502
    # Each process writes its log lines from a thread of its own: wait for them to land.
    deadline = time.monotonic() + 10
    while "workers_ai" not in bad_token.log and time.monotonic() < deadline:
        time.sleep(0.1)
    logs = server.log + bad_token.log
    assert "workers_ai" in logs  # the log is not empty: upstream calls are logged
    for secret in (*SECRETS, "cf-other-SECRET-token"):
        assert secret not in logs


def workers_serving(server, besides: set[str] = frozenset()) -> set[str]:
    """Ask /healthz until two workers (not in `besides`) have answered; their pids."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        requests.get(f"{server.url}/healthz", timeout=10)
        pids = set(re.findall(r"pid=(\d+) \S+ request method=GET path=/healthz", server.log))
        if len(pids - besides) >= 2:
            return pids - besides
        time.sleep(0.05)
    raise AssertionError(f"two workers did not answer:\n{server.log}")


def test_the_key_file_is_named_once_per_start_and_reload(gunicorn, service_env, fake_ai):
    env = {k: v for k, v in service_env.items() if k != "API_KEY"}
    server = gunicorn(env, workers=2)
    first = workers_serving(server)
    server.process.send_signal(signal.SIGHUP)
    workers_serving(server, besides=first)  # the new workers have loaded the app
    time.sleep(0.5)  # each process writes its log from a thread of its own
    named = [line for line in server.log.splitlines() if "clients must use the key" in line]
    assert len(named) == 2, "\n".join(named)  # the master's, at the start and at the reload
    assert all(f"pid={server.process.pid} " in line for line in named), named


def _worker_of(master: int) -> int:
    (worker,) = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return int(worker)


def _opened(pid: int, path: Path) -> int:
    """How many of `pid`'s descriptors are open on `path`."""
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            count += os.readlink(fd) == str(path)
        except FileNotFoundError:  # closed since it was listed
            continue
    return count


def test_a_worker_makes_its_threads_before_the_first_request(gunicorn, service_env, tmp_path):
    """A burst's first requests would otherwise make the threads and open their SQLite
    connections themselves (bench/README.md: most of a stream's delay to its first line)."""
    env = {**service_env, "GUNICORN_THREADS": "12", "GENERATION_RESERVE": "4"}  # 8 generations
    server = gunicorn(env, workers=1)
    worker = _worker_of(server.process.pid)
    threads = int(re.search(r"Threads:\s+(\d+)", Path(f"/proc/{worker}/status").read_text())[1])
    assert threads >= 1 + 12 + 8  # main, the request threads, the streams' generation threads
    data = Path(service_env["DATA_DIR"]).resolve()
    # Each request thread reads the account record before any answer, each generation thread
    # before its Workers AI call: their connections are open.
    assert _opened(worker, data / "accounts" / "cache.db") >= 12 + 8
    # The image store's are opened when first used (~115 KiB each, needed after the upstream).
    assert _opened(worker, data / "images" / "cache.db") < 12
    assert chat(server.url, API_KEY).status_code == 200


def test_a_worker_has_room_for_its_connections_beside_its_threads_connections(
    service_env, tmp_path
):
    """Each thread's SQLite connections hold descriptors for good (the database and its WAL):
    under systemd's usual soft limit of 1024 the worker must still fit worker_connections
    (1000), or accept() would fail and kill it."""
    env = {**service_env, "RATE_LIMIT": "100/minute"}  # a second connection per thread
    server = Gunicorn(env, tmp_path, workers=1)
    server.prefix = ["prlimit", "--nofile=1024:20000"]
    server.start()
    try:
        worker = _worker_of(server.process.pid)
        limits = Path(f"/proc/{worker}/limits").read_text()
        soft = int(re.search(r"Max open files\s+(\d+)", limits)[1])
        held = len(list(Path(f"/proc/{worker}/fd").iterdir()))
        assert soft - held >= 1000 + 128 * 4  # connections, and a request's own files
        assert chat(server.url, API_KEY).status_code == 200
    finally:
        server.stop()
