"""The real programs the system tests run: Debian's (nginx, redis-server, chromium, ...) found or
the test skipped, a free loopback port, and the real gunicorn with the shipped gunicorn.conf.py."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.support import ROOT


def require_program(name: str, package: str) -> str:
    """A program from Debian's packages. Missing: the test is skipped with the reason, except in
    CI (where .ci/run installs it), where it fails rather than pass silently."""
    candidates = (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}")
    binary = next((c for c in candidates if c and Path(c).exists()), None)
    if binary is None:
        message = f"{name} is not installed (apt-get install {package}); .ci/run installs it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return binary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    """The real gunicorn with the shipped gunicorn.conf.py, run from a clean working directory."""

    def __init__(self, env: dict, workdir: Path, workers: int = 2):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"gunicorn-{self.port}.log"
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT),
            **env,
            "BIND": f"127.0.0.1:{self.port}",
            "WEB_CONCURRENCY": str(workers),
        }
        self.workdir = workdir
        self.process = None
        self.prefix: list[str] = []  # e.g. prlimit, to start it under other limits

    def start(self, app: str = "app:app") -> Gunicorn:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [
                *self.prefix,
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                str(ROOT / "gunicorn.conf.py"),
                app,
            ],
            cwd=self.workdir,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_until_serving(deadline=time.monotonic() + 20)
        except BaseException:  # never leave a master and its workers running after a failure
            self.stop()
            raise
        return self

    def _wait_until_serving(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                requests.get(self.url + "/", timeout=1)  # any answer: it is serving
                return
            except requests.RequestException:  # refused, or slow to answer on a busy machine
                time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not start:\n{self.log_path.read_text()}")

    def run_until_exit(self, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run gunicorn in the foreground, for starts that must fail: its exit and output."""
        return subprocess.run(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "app:app"],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
