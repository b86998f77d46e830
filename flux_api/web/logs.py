"""Logging: a request id on every line, and each request announced once its body is sent
(observe/log_lines.py writes its access line).

The id comes from the client's X-Request-ID (when it is a plain token) or is made here, is
echoed in the response, and follows the request into background threads (contextvars), so the
generation timings logged by the pipeline can be matched to their request.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import os
import queue
import re
import secrets
import time
from collections.abc import Callable
from contextvars import ContextVar

from flask import Flask, g, request

from flux_api.events import Events, RequestDone

request_id: ContextVar[str] = ContextVar("request_id", default="-")
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
FORMAT = "%(asctime)s %(levelname)s %(name)s pid=%(process)d [%(request_id)s] %(message)s"


def configure() -> None:
    """Stamp every log record with the current request id; give our loggers a handler unless
    the host (pytest, a custom logging setup) already set one up."""
    factory = logging.getLogRecordFactory()
    # A reload re-imports this module (gunicorn.conf.py), making a new `request_id`: a factory
    # left by the old module would read the old variable, which no request sets any more.
    if getattr(factory, "request_id_var", None) is not request_id:
        logging.setLogRecordFactory(_RecordWithId(getattr(factory, "base_factory", factory)))
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(_QueuedStderr())
        root.setLevel(logging.INFO)
    logging.getLogger("flux_api").setLevel(logging.INFO)


class _RecordWithId:
    """A log record factory that stamps each record with the current request id. It names the
    variable it reads and the factory it wraps, for `configure` after a reload."""

    def __init__(self, base_factory: Callable[..., logging.LogRecord]):
        self.base_factory = base_factory
        self.request_id_var = request_id

    def __call__(self, *args, **kwargs) -> logging.LogRecord:
        record = self.base_factory(*args, **kwargs)
        record.request_id = self.request_id_var.get()
        return record


class _QueuedStderr(logging.handlers.QueueHandler):
    """Request threads only queue their records; one thread per process writes them to stderr,
    so a hundred busy threads do not queue on the stream's lock and its writes."""

    def __init__(self):
        super().__init__(queue.SimpleQueue())
        self._start_writer()
        # After a fork (gunicorn's workers) the writer thread is gone: start one in the child.
        os.register_at_fork(after_in_child=self._start_writer)

    def _start_writer(self) -> None:
        stream = logging.StreamHandler()
        stream.setFormatter(logging.Formatter(FORMAT))
        self.queue = queue.SimpleQueue()
        self.listener = logging.handlers.QueueListener(self.queue, stream)
        self.listener.start()
        atexit.register(self.listener.stop)  # flush what is queued when the process exits


def request_id_from(offered: str) -> str:
    """The client's X-Request-ID when it is a plain token, else a new id."""
    return offered if _CLIENT_ID.fullmatch(offered) else secrets.token_hex(8)


def announce_request(
    events: Events,
    method: str,
    path: str,
    status: int,
    started: float,
    model: str,
    rid: str,
    client_left: bool = False,
    key: str = "-",
    error: str | None = None,
    generated: bool = False,
    route: str = "",
) -> None:
    """A request answered: its access line (and what else subscribes) follows from this.
    `route`: the rule that answered, as route_of() writes it ("" for none)."""
    seconds = time.monotonic() - started
    done = RequestDone(
        method,
        path,
        status,
        seconds,
        model,
        rid,
        client_left,
        key=key,
        error=error,
        generated=generated,
        route=route,
    )
    events.announce(done)


_CONVERTED = re.compile(r"<(?:[^<>:]+:)?([^<>:]+)>")


def route_of(rule: str) -> str:
    """A Flask rule as the OpenAPI document writes it: /image/<path:key> is /image/{key}."""
    return _CONVERTED.sub(r"{\1}", rule)


def init_app(app: Flask, events: Events) -> None:
    @app.before_request
    def start_request():
        g.request_id = request_id_from(request.headers.get("X-Request-ID", ""))
        g.started = time.monotonic()
        g.request_id_token = request_id.set(g.request_id)

    @app.teardown_request
    def forget_request_id(_exc):
        # Threads are reused: a later line on this one (gunicorn's own) must not carry this id.
        token = g.pop("request_id_token", None)
        if token is not None:
            request_id.reset(token)

    @app.after_request
    def finish_request(response):
        rid = g.get("request_id") or secrets.token_hex(8)
        response.headers["X-Request-ID"] = rid
        started, model = g.get("started", time.monotonic()), g.get("model", "-")
        method, path, status = request.method, request.path, response.status_code
        budget = g.get("budget")
        api_key = g.get("api_key")
        key = api_key.name if api_key is not None else "-"
        error = g.get("error_code")
        route = route_of(request.url_rule.rule) if request.url_rule is not None else ""

        # Logged when the body has been sent, so a stream's line has its full duration, and
        # 499 (nginx's "client closed request") when its client left before the end.
        def log_line():
            left = budget is not None and budget.noticed_client_left
            generated = budget is not None and budget.generations > 0
            announce_request(
                events,
                method,
                path,
                status,
                started,
                model,
                rid,
                left,
                key,
                error,
                generated,
                route,
            )

        if response.direct_passthrough:  # a file handed to sendfile: no close callback runs
            log_line()
        else:
            response.call_on_close(log_line)
        return response
