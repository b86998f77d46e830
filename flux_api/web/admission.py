"""Admission: a generation runs only when a thread of this worker is free for it now; beyond
that it is shed at once, a 503 that says when to come back, before anything is read or paid.

A generation holds its thread for seconds (a stream for the whole generation). gthread gives
each request to a pool of GUNICORN_THREADS threads, and a request that finds them all busy
waits in the pool's queue (or, once the worker stops accepting, in the kernel's backlog) until
one is free: in a burst it may then meet its deadline and end in a 504 having waited for a
thread, not for Workers AI. Here, per worker process:

- at most GUNICORN_THREADS - GENERATION_RESERVE generations are in flight, so GENERATION_RESERVE
  threads are always left for everything else: health checks, /v1/models, image fetches, and
  the sheds themselves, which therefore never wait behind a generation either (the worker's
  accept limit, server/worker.py, counts threads + 32 connections: room for them);
- there is no queue: admitted means a thread now, shed means a 503 now. A queue would hold
  a client for a slot whose wait nobody can know (a FLUX image takes 1 to 20 s, an edit
  more), then fail it at its deadline after all;
- with more than one key configured, one key holds at most KEY_SHARE of the capacity, so a
  burst from one key (a team's shared chat client) leaves room for the others. Without a queue
  the share has to hold at all times: a key that took every slot while it was alone would shed
  the next key that arrives. One key for everyone is never halved;
- a generation that waited more than ADMISSION_WAIT (0.5 s) between the worker handing it to
  its pool of threads and reaching here is shed too: the worker is too busy (a burst: every
  core running other requests' starts) to give it its first line in time, and starting it
  would only make everyone's later. This is what keeps a burst's admitted streams' first lines
  within a second: without it a burst of 1,024 on 2 cores admitted 480 and 240 to 470 of them
  had their first line within 1 s; with it 310 to 425 are admitted (what the cores start in a
  second), nearly all within 1 s (the slowest at 1.1 s), and the rest are told to come back in
  a few seconds (bench/README.md). The wait counted is the server's: the time in the worker's
  queue for a thread and then to here, not the time a thread spent reading the client's
  headers (server/worker.py puts it in the environ), so a client slow to send is not shed.

It is WSGI middleware in front of Flask, like the image fast path (image_files.py): a shed is
answered from the method, the path and the Authorization header alone, without Flask's request
machinery, body or routing. A request whose key is not valid goes on to Flask, which answers
its 401. The slot of an admitted request is released when the server closes its response
(PEP 3333: gunicorn always does, whether the body was sent, failed, or its client left) or when
the app raises, and a release is counted once: a leaked slot would shed for ever. Work the app
started for the request that may outlive its response keeps the slot too (keep_slot): a
stream's generation goes on after its client has left until its Workers AI call returns, and
the slot must count it, or clients that hang up at once could run more calls than the worker
holds.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from werkzeug.wsgi import ClosingIterator

from flux_api.config.api_keys import ApiKey
from flux_api.errors import APIError
from flux_api.events import Events, Shed
from flux_api.web import logs
from flux_api.web.auth import bearer_token, matching_key
from flux_api.web.image_files import cors_headers

# The requests that hold a thread for a generation (a chat answered in text holds one for the
# optimizer's call, so it counts too).
GENERATION_PATHS = frozenset(
    {"/v1/chat/completions", "/v1/images/generations", "/v1/images/edits", "/v1/images/variations"}
)
# Retry-After of a shed, in seconds, drawn at random in this range: the openai SDK waits exactly
# what it says (up to 60 s), so a burst shed at once comes back spread over a few seconds
# instead of all at once. Short, as slots free every few seconds (a FLUX image takes 1 to 20 s).
RETRY_AFTER = (2, 5)
# Why a request was shed (Shed.reason): every generation thread held, its key's share held,
# or it waited too long for a thread and the CPU before admission (ADMISSION_WAIT).
CAPACITY, KEY_SHARE, WAITED = "capacity", "key_share", "waited"
# In an admitted request's WSGI environ: what keep_slot calls.
_KEEP_SLOT = "flux_api.keep_generation_slot"
# In the WSGI environ, from the server (server/worker.py): when the request was handed to the
# pool of threads (time.monotonic()), for how long it waited for a thread and the CPU.
QUEUED_AT = "flux_api.queued_at"


class GenerationSlots:
    """The generations one worker holds, in all and by key; thread-safe."""

    def __init__(self, capacity: int, key_limit: int, changed: Callable[[int], None] | None = None):
        """`changed`: told the generations in flight after each change, under the lock, so
        that what it is told arrives in order (a gauge set out of order would stay wrong)."""
        self.capacity = capacity
        self.key_limit = key_limit
        self._changed = changed or (lambda in_flight: None)
        self._lock = threading.Lock()
        self._in_flight = 0
        self._by_key: dict[str, int] = {}

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def held_by(self, key: str) -> int:
        return self._by_key.get(key, 0)

    def take(self, key: str) -> tuple[str | None, int]:
        """A slot for `key`: (None, generations in flight now) when taken, else (why not,
        generations in flight)."""
        with self._lock:
            if self._in_flight >= self.capacity:
                return CAPACITY, self._in_flight
            held = self._by_key.get(key, 0)
            if held >= self.key_limit:
                return KEY_SHARE, self._in_flight
            self._by_key[key] = held + 1
            self._in_flight += 1
            self._changed(self._in_flight)
            return None, self._in_flight

    def release(self, key: str) -> int:
        """Give back a slot `key` took; the generations in flight now."""
        with self._lock:
            held = self._by_key.get(key, 0)
            if held <= 0:  # never below zero, whatever a caller does twice
                return self._in_flight
            if held == 1:
                del self._by_key[key]
            else:
                self._by_key[key] = held - 1
            self._in_flight -= 1
            self._changed(self._in_flight)
            return self._in_flight


def key_limit(capacity: int, share: float, keys: int) -> int:
    """The most generations one key may hold: `share` of the capacity (at least one) when more
    than one key is configured; all of it for a lone key."""
    return capacity if keys <= 1 else max(1, int(capacity * share))


def keep_slot(environ: dict) -> Callable[[], None]:
    """For work the app starts for a request and that may go on after its response is closed:
    the request's slot stays taken until the returned function has been called (once counts;
    later calls do nothing) and the response is closed. A no-op for a request not admitted
    here (one that holds no slot)."""
    keep = environ.get(_KEEP_SLOT)
    return keep() if keep is not None else _nothing


def _nothing() -> None:
    pass


class _Slot:
    """An admitted request's slot: given back once nothing holds it any more, i.e. its
    response has been closed and each piece of work kept for it (keep_slot) is done."""

    def __init__(self, release: Callable[[], None]):
        self._release = release
        self._lock = threading.Lock()
        self._holders = 0
        self._released = False
        self.response_closed = self.keep()  # the response holds it first

    def keep(self) -> Callable[[], None]:
        with self._lock:
            if self._released:  # too late: the slot is back, nothing to hold
                return _nothing
            self._holders += 1
        done = False

        def let_go() -> None:
            nonlocal done
            with self._lock:
                if done:
                    return
                done = True
                self._holders -= 1
                last = self._released = self._holders == 0
            if last:
                self._release()

        return let_go


class _Held:
    """An admitted request's response body: tells its slot once the server has closed it,
    even if the body's own close() fails."""

    def __init__(self, body: Iterable[bytes], closed: Callable[[], None]):
        self._body = body
        self._closed = closed

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._closed()


class Admission:
    """WSGI middleware: admits or sheds requests for generations (see the module docstring)."""

    def __init__(
        self,
        app: Callable,
        slots: GenerationSlots,
        keys: tuple[ApiKey, ...],
        events: Events,
        cors_origins: tuple[str, ...],
        wait_limit: float = 0.0,
    ):
        """`wait_limit`: ADMISSION_WAIT (0: none)."""
        self.app = app
        self.wait_limit = wait_limit
        self.slots = slots
        self.keys = keys
        self.events = events
        self.origins = frozenset(cors_origins)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] != "POST" or environ.get("PATH_INFO") not in GENERATION_PATHS:
            return self.app(environ, start_response)
        key = self._key(environ.get("HTTP_AUTHORIZATION", ""))
        if key is None:  # no valid key: Flask answers the 401
            return self.app(environ, start_response)
        if self._waited_too_long(environ):
            return self._shed(environ, start_response, key.name, WAITED, self.slots.in_flight)
        refused, in_flight = self.slots.take(key.name)
        if refused is not None:
            return self._shed(environ, start_response, key.name, refused, in_flight)

        def release() -> None:
            self.slots.release(key.name)

        slot = _Slot(release)
        environ[_KEEP_SLOT] = slot.keep
        try:
            body = self.app(environ, start_response)
        except BaseException:
            slot.response_closed()
            raise
        return _Held(body, slot.response_closed)

    def _waited_too_long(self, environ: dict) -> bool:
        queued_at = environ.get(QUEUED_AT)
        if not self.wait_limit or queued_at is None:  # off, or not served by our worker
            return False
        return time.monotonic() - queued_at > self.wait_limit

    def _key(self, authorization: str) -> ApiKey | None:
        token = bearer_token(authorization)
        return None if token is None else matching_key(token, self.keys)

    def _shed(
        self, environ: dict, start_response: Callable, key: str, reason: str, in_flight: int
    ) -> Iterable[bytes]:
        started = time.monotonic()
        path = environ["PATH_INFO"]
        retry_after = random.randint(*RETRY_AFTER)
        error = shed_error(reason, self.slots, key, retry_after, self.wait_limit)
        rid = logs.request_id_from(environ.get("HTTP_X_REQUEST_ID", ""))
        token = logs.request_id.set(rid)  # the shed line carries the request's id
        try:
            self.events.announce(Shed(reason, key, in_flight, self.slots.capacity, retry_after))
        finally:
            logs.request_id.reset(token)
        body = json.dumps(error.body()).encode()
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            *error.headers().items(),
            ("X-Request-ID", rid),
            *cors_headers(environ.get("HTTP_ORIGIN"), self.origins),
        ]
        start_response("503 Service Unavailable", headers)

        def log_line() -> None:
            token = logs.request_id.set(rid)
            try:
                logs.announce_request(
                    self.events,
                    "POST",
                    path,
                    503,
                    started,
                    "-",
                    rid,
                    key=key,
                    error=error.code,
                    route=path,
                )
            finally:
                logs.request_id.reset(token)

        return ClosingIterator([body], log_line)


def shed_error(
    reason: str, slots: GenerationSlots, key: str, retry_after: int, wait_limit: float = 0.0
) -> APIError:
    """The 503 of a shed. `x-should-retry: true`, the one error that says so: nothing was read,
    started or billed, so a repeat cannot bill twice (RELIABILITY.md)."""
    if reason == WAITED:
        message = (
            "The service is too busy to start this generation in time: it waited more than "
            f"{wait_limit:g} s for a thread (ADMISSION_WAIT). Nothing was started or billed; "
            f"retry after {retry_after} s."
        )
    elif reason == KEY_SHARE:
        message = (
            f"The API key {key!r} already has {slots.key_limit} generations in flight, its "
            "share (KEY_SHARE) of what this server holds while other keys use it too. Nothing "
            f"was started or billed; retry after {retry_after} s."
        )
    else:
        message = (
            f"The service is at capacity: all {slots.capacity} generations it can hold at once "
            f"are in flight. Nothing was started or billed; retry after {retry_after} s."
        )
    return APIError(
        503,
        message,
        type="api_error",
        code="overloaded",
        should_retry=True,
        extra_headers={"Retry-After": str(retry_after)},
    )
