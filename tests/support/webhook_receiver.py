"""A local webhook receiver as a real HTTP server: records each POST's path, query, headers and JSON
body; can be told to fail (a status) or to hold its answers until released."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

from tests.support.fakes.server import BackgroundServer


@dataclass
class Received:
    path: str
    headers: dict
    body: dict
    query: str = ""


@dataclass
class WebhookReceiver:
    status: int = 200
    hold: bool = False  # answers wait until release() (or 30 s)
    received: list[Received] = field(default_factory=list)
    url: str = ""

    def __post_init__(self):
        self._changed = threading.Condition()
        self._released = threading.Event()
        self.held = 0  # requests waiting for release() now

    def app(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length)
        headers = {
            k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k[:5] == "HTTP_"
        }
        headers["content-type"] = environ.get("CONTENT_TYPE", "")
        with self._changed:
            self.received.append(
                Received(
                    environ["PATH_INFO"],
                    headers,
                    json.loads(raw or b"{}"),
                    environ.get("QUERY_STRING", ""),
                )
            )
            if self.hold:
                self.held += 1
            self._changed.notify_all()
        if self.hold:
            self._released.wait(30)
            with self._changed:
                self.held -= 1
        start_response(f"{self.status} X", [("Content-Type", "text/plain")])
        return [b"ok"]

    def release(self) -> None:
        self._released.set()

    def wait_for(self, count: int, seconds: float = 15) -> list[Received]:
        """The requests received once there are `count` of them (fewer after `seconds`)."""
        deadline = time.monotonic() + seconds
        with self._changed:
            while len(self.received) < count and time.monotonic() < deadline:
                self._changed.wait(deadline - time.monotonic())
            return list(self.received)

    def of_kind(self, kind: str) -> list[Received]:
        """Received alerts whose body names `kind` (any format: json's kind, ntfy's tags, the
        title in slack's text and discord's content)."""
        return [r for r in self.received if kind in json.dumps(r.body)]


class RunningReceiver:
    def __init__(self, receiver: WebhookReceiver):
        self.receiver = receiver
        self._server = BackgroundServer(receiver.app)

    def __enter__(self) -> WebhookReceiver:
        self._server.__enter__()
        self.receiver.url = self._server.url
        return self.receiver

    def __exit__(self, *exc) -> None:
        self.receiver.release()
        self._server.__exit__()
