"""Upstream HTTP calls bounded by a whole-call deadline, for both clients (Workers AI and the
prompt optimizer), and what their failures mean.

requests' timeouts bound each socket read, not the call: an upstream that sends its headers or
its body a byte at a time keeps a request for ever. Here the wait for the status line and the
headers is cut at the deadline by a watchdog that shuts the connection's socket down (the one
way to end a blocking read from another thread), and the body is read with each wait set to
the time left.
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar

import requests
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, ReadTimeoutError

CHUNK = 256 * 1024  # an image answer is ~250 KiB: usually one or two reads
_deadline: ContextVar[float | None] = ContextVar("upstream_deadline", default=None)


class _Watchdog:
    """One thread per process running callbacks at their time (time.monotonic)."""

    def __init__(self):
        self._start()
        os.register_at_fork(after_in_child=self._start)  # gunicorn's workers are forks

    def _start(self) -> None:
        self._due: list = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def call_at(self, when: float, callback: Callable[[], object]) -> Callable[[], None]:
        """Run `callback` at `when` unless the returned function is called first."""
        entry = [when, next(self._order), callback]
        with self._wake:
            heapq.heappush(self._due, entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="deadlines", daemon=True)
                self._thread.start()
            # Wake the thread only when this call is now the first due: it sleeps until the
            # first one's time, which is no later than any other's. Calls made later mostly
            # fall due later, so most add no wake-up (each was a thread switch per call).
            if self._due[0] is entry:
                self._wake.notify()
        return lambda: entry.__setitem__(2, None)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._due or self._due[0][2] is None:
                    if self._due:
                        heapq.heappop(self._due)  # cancelled
                    else:
                        self._wake.wait()
                when, _, callback = self._due[0]
                if when > time.monotonic():
                    self._wake.wait(when - time.monotonic())
                    continue
                heapq.heappop(self._due)
            try:
                callback()
            except Exception:  # noqa: BLE001 (a socket already closed, say: nothing to cut)
                pass


_WATCHDOG = _Watchdog()


class _HeadersByDeadline(HTTPConnection):
    """A urllib3 connection whose wait for the answer's headers ends at the deadline."""

    def getresponse(self, *args, **kwargs):
        deadline = _deadline.get()
        if deadline is None:
            return super().getresponse(*args, **kwargs)
        cancel = _WATCHDOG.call_at(deadline, self._cut)
        try:
            return super().getresponse(*args, **kwargs)
        finally:
            cancel()

    def _cut(self) -> None:
        if self.sock is not None:
            self.sock.shutdown(socket.SHUT_RDWR)


class _HTTPConnection(_HeadersByDeadline, HTTPConnection):
    pass


class _HTTPSConnection(_HeadersByDeadline, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter with connections whose header wait honours `fetch`'s deadline."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def fetch(
    send: Callable[[], requests.Response], deadline: float
) -> tuple[requests.Response, bytes]:
    """`send()` (a request with `stream=True` through a DeadlineAdapter) and its whole body, by
    `deadline` (time.monotonic()); TimeoutError once it has passed, however the cut shows."""
    token = _deadline.set(deadline)
    try:
        response = send()
        return response, read_body(response, deadline)
    except (requests.Timeout, ReadTimeoutError, TimeoutError) as exc:
        raise TimeoutError("the deadline passed") from exc
    except Exception as exc:
        if time.monotonic() >= deadline:  # the watchdog's cut: a reset or closed connection
            raise TimeoutError("the deadline passed") from exc
        raise
    finally:
        _deadline.reset(token)


def read_body(response: requests.Response, deadline: float) -> bytes:
    """The whole body of a response sent with `stream=True`, or TimeoutError at `deadline`.
    The connection is closed, not reused, if it fails part-way."""
    raw = response.raw
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    chunks = []
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the deadline passed while the answer was arriving")
            if sock is not None:
                sock.settimeout(remaining)
            chunk = raw.read1(CHUNK, decode_content=True)
            if not chunk:
                break
            chunks.append(chunk)
    except BaseException:
        response.close()  # part of an answer is on the wire: never hand this connection on
        raise
    return b"".join(chunks)


def never_sent(exc: requests.ConnectionError) -> bool:
    """True when the connection failed before any byte of the request left (safe to retry)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    # urllib3's NewConnectionError (refused, unreachable, DNS) subclasses ConnectTimeoutError.
    return isinstance(reason, ConnectTimeoutError)


def tls_reason(exc: BaseException) -> str:
    """The ssl module's short reason inside requests' wrappers (CERTIFICATE_VERIFY_FAILED…)."""
    inner: object = exc
    for _ in range(6):  # requests' SSLError → MaxRetryError → urllib3's SSLError → ssl's
        if isinstance(inner, ssl.SSLError):
            return str(inner.reason or type(inner).__name__)[:80]
        args = getattr(inner, "args", ())
        inner = getattr(inner, "reason", None) or (args[0] if args else None)
    return "no reason given"


def unreachable_reason(exc: BaseException) -> str:
    """Why a call got no answer, in a few words: refused, no such host, timed out, TLS."""
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS handshake failed: {tls_reason(exc)}"
    if isinstance(exc, requests.ConnectTimeout):
        return "timed out connecting"
    if isinstance(exc, requests.Timeout):
        return "timed out waiting for the answer"
    inner: object = exc
    for _ in range(6):  # requests' ConnectionError → MaxRetryError → NewConnectionError → OSError
        if isinstance(inner, socket.gaierror):
            return "no such host (DNS)"
        if isinstance(inner, ConnectionRefusedError):
            return "connection refused"
        if isinstance(inner, OSError) and inner.strerror:
            return inner.strerror.lower()
        args = getattr(inner, "args", ())
        inner = (
            getattr(inner, "reason", None)
            or getattr(inner, "__context__", None)
            or (args[0] if args else None)
        )
    text = str(exc).lower()
    if "name or service not known" in text or "name resolution" in text:
        return "no such host (DNS)"
    if "refused" in text:
        return "connection refused"
    return "no connection"
