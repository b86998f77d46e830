"""Reloads (SIGHUP, `systemctl reload`) cannot take the service down: a bad setting or code that
does not import is refused with one log line while the running workers keep serving, and a good
reload runs the code now on disk."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.support import ROOT
from tests.support.programs import free_port
from tests.support.service import API_KEY


class CopiedService:
    """gunicorn running a copy of the code in `tmp`, so a test can change the code under it."""

    def __init__(self, tmp: Path, env: dict):
        self.code = tmp / "code"
        shutil.copytree(
            ROOT / "flux_api", self.code / "flux_api", ignore=shutil.ignore_patterns("__pycache__")
        )
        for name in ("app.py", "gunicorn.conf.py"):
            shutil.copy(ROOT / name, self.code / name)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dotenv = self.code / ".env"
        env = {**env, "BIND": f"127.0.0.1:{self.port}"}
        self.dotenv.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        self.log_path = tmp / "gunicorn.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "app:app"],
            cwd=self.code,
            env={"PATH": os.environ.get("PATH", ""), "WEB_CONCURRENCY": "2"},
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
        )
        self.wait_until(lambda: self.health() == 200, 20, "gunicorn did not start")
        self.wait_until(lambda: self.booted() == 2, 20, "the workers did not boot")

    def booted(self) -> int:
        return self.log.count("Booting worker")

    def health(self) -> int | None:
        try:
            return requests.get(self.url + "/healthz", timeout=2).status_code
        except requests.RequestException:
            return None

    def workers(self) -> set[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return set(map(int, children.read_text().split()))

    def reload(self) -> None:
        self.process.send_signal(signal.SIGHUP)

    def wait_until(self, condition, seconds: float, message: str) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline, f"{message}:\n{self.log}"
            time.sleep(0.1)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


@pytest.fixture
def copied(tmp_path, service_env):
    env = {k: v for k, v in service_env.items() if k != "DATA_DIR"}
    service = CopiedService(tmp_path, {**env, "DATA_DIR": str(tmp_path / "data")})
    yield service
    service.stop()


def assert_refused_and_serving(service: CopiedService, before: set[int], words: str) -> None:
    service.wait_until(lambda: "Reload refused" in service.log, 30, "no refusal logged")
    time.sleep(1.5)  # had new workers been started, they would have died by now
    assert service.process.poll() is None, service.log
    assert service.health() == 200
    assert service.workers() == before  # the same workers, untouched
    refusals = [line for line in service.log.splitlines() if "Reload refused" in line]
    assert len(refusals) == 1 and words in refusals[0], refusals


def test_a_reload_with_a_bad_setting_is_refused_and_the_workers_keep_serving(copied):
    before = copied.workers()
    copied.dotenv.write_text(copied.dotenv.read_text() + "IMAGE_EXPIRATION=10m\n")
    copied.reload()
    assert_refused_and_serving(copied, before, "IMAGE_EXPIRATION")


def test_a_reload_with_code_that_does_not_import_is_refused(copied):
    before = copied.workers()
    with (copied.code / "flux_api" / "wire" / "openai.py").open("a") as module:
        module.write("\ndef broken(:\n")
    copied.reload()
    assert_refused_and_serving(copied, before, "SyntaxError")


def test_a_good_reload_runs_the_code_now_on_disk(copied):
    before = copied.workers()
    api = copied.code / "flux_api" / "web" / "views.py"
    source = api.read_text()
    assert '"default_model": settings.flux_model,' in source
    api.write_text(
        source.replace('"default_model": settings.flux_model,', '"default_model": "v2",')
    )
    copied.reload()
    copied.wait_until(
        lambda: copied.workers().isdisjoint(before) and len(copied.workers()) == 2,
        30,
        "the workers were not replaced",
    )
    assert requests.get(copied.url + "/healthz", timeout=5).json()["default_model"] == "v2"
    assert "Reload refused" not in copied.log


def test_a_worker_respawned_after_a_bad_edit_boots_with_the_checked_settings(copied):
    """A worker that dies between reloads is replaced from the settings the master checked,
    not from the file as it is now: a bad edit cannot make the respawn fail and halt gunicorn."""
    before = copied.workers()
    copied.dotenv.write_text(copied.dotenv.read_text() + "IMAGE_EXPIRATION=10m\n")
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    copied.wait_until(
        lambda: victim not in copied.workers() and len(copied.workers()) == 2,
        30,
        "the worker was not replaced",
    )
    assert copied.process.poll() is None
    assert copied.health() == 200


def test_a_reload_with_a_bad_gunicorn_setting_is_refused(copied):
    before = copied.workers()
    copied.dotenv.write_text(
        copied.dotenv.read_text() + "FORWARDED_ALLOW_IPS=127.0.0.1,localhost\n"
    )
    copied.reload()
    assert_refused_and_serving(copied, before, "FORWARDED_ALLOW_IPS")


def test_a_reload_onto_an_address_in_use_is_refused(copied):
    before = copied.workers()
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        copied.dotenv.write_text(copied.dotenv.read_text() + f"BIND=127.0.0.1:{port}\n")
        copied.reload()
        assert_refused_and_serving(copied, before, "cannot be listened on")


def test_log_lines_keep_their_request_id_after_a_reload(copied, fake_ai):
    before = copied.workers()
    copied.reload()
    copied.wait_until(
        lambda: copied.workers().isdisjoint(before) and len(copied.workers()) == 2,
        30,
        "the workers were not replaced",
    )
    response = requests.post(
        copied.url + "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "a fox"}]},
        headers={"Authorization": f"Bearer {API_KEY}", "X-Request-ID": "after-reload-42"},
        timeout=30,
    )
    assert response.status_code == 200
    copied.wait_until(lambda: "generation model=" in copied.log, 10, "no generation line")
    line = next(line for line in copied.log.splitlines() if "generation model=" in line)
    assert "[after-reload-42]" in line, line
