"""A stand-in for an old Redis: a real TCP server speaking just enough of Redis's protocol
(RESP) to answer PING and INFO with a version older than the service needs, and HELLO as Redis
6 does (a map, so that redis-py speaks RESP3 without warning of a fallback). Debian ships only
a current redis-server, and the start-up check needs nothing more than these answers."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager


def _handler(version: str) -> type[socketserver.StreamRequestHandler]:
    info = f"# Server\r\nredis_version:{version}\r\nredis_mode:standalone\r\n".encode()
    fields = {"server": "redis", "version": version}
    hello = b"%3\r\n" + b"".join(_bulk(k) + _bulk(v) for k, v in fields.items())
    hello += _bulk("proto") + b":3\r\n"
    speaks_resp3 = int(version.split(".")[0]) >= 6  # HELLO came with Redis 6.0

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            while command := self._read_command():
                name = command[0].upper()
                if name == b"PING":
                    self.wfile.write(b"+PONG\r\n")
                elif name == b"HELLO" and speaks_resp3:
                    self.wfile.write(hello)
                elif name == b"INFO":
                    self.wfile.write(b"$%d\r\n%s\r\n" % (len(info), info))
                else:
                    self.wfile.write(b"-ERR unknown command\r\n")

        def _read_command(self) -> list[bytes]:
            header = self.rfile.readline()
            if not header.startswith(b"*"):
                return []
            parts = []
            for _ in range(int(header[1:])):
                size = int(self.rfile.readline()[1:])
                parts.append(self.rfile.read(size + 2)[:-2])
            return parts

    return Handler


def _bulk(text: str) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(text.encode()), text.encode())


@contextmanager
def old_redis(version: str = "6.2.14") -> Iterator[str]:
    """The URL of a server that says it is Redis `version`."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _handler(version))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"redis://127.0.0.1:{server.server_address[1]}/0"
    finally:
        server.shutdown()
        server.server_close()
