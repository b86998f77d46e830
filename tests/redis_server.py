"""A real redis-server (Debian's package) on a loopback port with a temporary directory, for the
tests of several nodes sharing one store. Nothing is persisted to disk."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from tests.nginx import require_program


class RedisServer:
    def __init__(self, directory: Path, port: int, password: str | None = None, **options):
        """`options`: more redis-server settings, such as maxmemory="3mb"."""
        self.binary = require_program("redis-server", "redis-server")
        self.directory, self.port, self.password = directory, port, password
        self.options = options
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--dir", str(self.directory), "--save", "", "--appendonly", "no"]
        if self.password:
            args += ["--requirepass", self.password]
        for name, value in self.options.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        self.directory.mkdir(parents=True, exist_ok=True)
        log = open(self.directory / f"redis-{self.port}.log", "ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        """Kill it at once, as a crash would: what it held is gone."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
