"""A real redis-server (Debian's package) on a loopback port with a temporary directory, for the
tests of several nodes sharing one store. Nothing is persisted to disk. And what the service
keeps in it, read back."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from tests.support.programs import free_port, require_program


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


@contextmanager
def small_redis_server(directory: Path, maxmemory: str) -> Iterator[RedisServer]:
    """A redis-server that refuses writes past `maxmemory` (`noeviction`), for the tests of a
    full Redis; stopped on leaving."""
    server = RedisServer(
        directory, free_port(), maxmemory=maxmemory, maxmemory_policy="noeviction"
    ).start()
    try:
        yield server
    finally:
        server.stop()


def client_of(server: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(server.url)


def stored_sizes(client: redis.Redis) -> dict[str, int]:
    """Each stored image's size as Redis holds it: the value minus its `<expiry>:` stamp."""
    sizes = {}
    for name in client.scan_iter("flux-api:image:*"):
        stamp = client.getrange(name, 0, 31).split(b":", 1)[0]
        sizes[name.decode().rsplit(":", 1)[1]] = client.strlen(name) - len(stamp) - 1
    return sizes


def assert_counter_exact(client: redis.Redis) -> int:
    in_keys = stored_sizes(client)
    in_hash = {k.decode(): int(v) for k, v in client.hgetall("flux-api:images:sizes").items()}
    assert in_hash == in_keys
    assert client.zcard("flux-api:images:by-expiry") == len(in_keys)
    assert int(client.get("flux-api:images:bytes") or 0) == sum(in_keys.values())
    return sum(in_keys.values())
