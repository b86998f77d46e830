"""A client connection for gunicorn's worker (flux_api/server/worker.py) whose blocking calls cannot
wait for ever: each read or write must make progress within an I/O timeout, reads end at the
request's header or body deadline, and a header block can be gathered without blocking."""

from __future__ import annotations

import errno
import logging
import select
import socket
import time

log = logging.getLogger("gunicorn.error")

# Longest wait for a client to take (or send) the next bytes of a body: a thread is held that
# long by a client that stopped reading, so the service answers again within 30 s of such a
# flood (one per thread). The wait is only for a blocked write or read: gaps between writes
# (a stream's heartbeat, a generation that writes nothing for minutes) do not count.
IO_TIMEOUT = 20.0
# Bytes gathered before the header block is handed to gunicorn's parser even if incomplete
# (the parser then rejects it, or reads the rest by the header deadline). Real headers are a
# few hundred bytes; this bounds the memory a parked half-sent connection holds.
PREFETCH_LIMIT = 16 * 1024


class ClientTimeout(ConnectionResetError):
    """The client made no progress within IO_TIMEOUT. A ConnectionResetError, so gthread closes
    the connection quietly as for a reset; one log line says why."""


class GuardedSocket(socket.socket):
    """An accepted connection whose blocking calls end after io_timeout without progress, whose
    reads end at header_deadline while one is set, and which can gather a header block without
    blocking (prefetch_headers); recv() hands out the gathered bytes first."""

    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):  # noqa: A002 (socket's names)
        super().__init__(family, type, proto, fileno)
        self.io_timeout = IO_TIMEOUT
        self.header_deadline: float | None = None
        self.body_deadline: float | None = None
        # When the current request began to arrive (time.monotonic()), before it waited for a
        # thread: the app counts its deadline from here (WSGI's environ["gunicorn.socket"]).
        self.request_started: float | None = None
        self.early = b""

    @classmethod
    def adopt(cls, sock: socket.socket, io_timeout: float) -> GuardedSocket:
        guarded = cls(fileno=sock.detach())
        guarded.io_timeout = io_timeout
        guarded.setblocking(False)
        return guarded

    # gthread switches a socket between non-blocking (in the poller) and blocking (on a
    # thread); "blocking" here means blocking for at most io_timeout.
    def setblocking(self, flag: bool) -> None:
        super().settimeout(self.io_timeout if flag else 0.0)

    def settimeout(self, value: float | None) -> None:
        super().settimeout(self.io_timeout if value is None else value)

    def prefetch_headers(self) -> bool:
        """Read what has arrived, without waiting: whether the header block is complete (or the
        client closed, or sent more than PREFETCH_LIMIT), so that parsing will not wait."""
        super().settimeout(0.0)
        while len(self.early) < PREFETCH_LIMIT:
            if b"\r\n\r\n" in self.early or b"\n\n" in self.early:
                return True
            try:
                chunk = super().recv(PREFETCH_LIMIT)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError:
                return True  # the parser meets the error and closes
            if not chunk:
                return True  # end of stream: likewise
            self.early += chunk
        return True

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if self.early:
            data, self.early = self.early[:bufsize], self.early[bufsize:]
            return data
        deadline = self._read_deadline()
        if deadline is not None and not self._readable_before(deadline):
            # Headers or body still incomplete at the deadline: handled as the client leaving.
            log.debug("Closing %s: the request did not arrive in time", self._peer())
            return b""
        try:
            return super().recv(bufsize, flags)
        except TimeoutError:
            raise self._timed_out("sent nothing") from None

    def _read_deadline(self) -> float | None:
        return self.header_deadline if self.header_deadline is not None else self.body_deadline

    def _readable_before(self, deadline: float) -> bool:
        timeout = self.gettimeout()
        if timeout == 0:
            return True  # a non-blocking caller handles EAGAIN itself
        wait = deadline - time.monotonic()
        if timeout is not None:  # always, as settimeout(None) sets io_timeout
            wait = min(timeout, wait)
        if wait <= 0:
            return False
        poller = select.poll()
        poller.register(self.fileno(), select.POLLIN)
        return bool(poller.poll(wait * 1000))

    def send(self, data, flags: int = 0) -> int:
        try:
            return super().send(data, flags)
        except TimeoutError:
            raise self._timed_out("read nothing") from None

    def sendall(self, data, flags: int = 0) -> None:
        # socket.sendall's timeout bounds the whole call, which would cut a slow but steady
        # reader of a large body; here each step must make progress within io_timeout.
        view = memoryview(data).cast("B")
        while view:
            view = view[self.send(view, flags) :]

    def sendfile(self, file, offset: int = 0, count: int | None = None) -> int:
        # socket.sendfile waits at most gettimeout() for each step (os.sendfile path included).
        try:
            return super().sendfile(file, offset, count)
        except TimeoutError:
            raise self._timed_out("read nothing") from None

    def _timed_out(self, what: str) -> ClientTimeout:
        log.info("Closing %s: it %s for %s s", self._peer(), what, self.io_timeout)
        return ClientTimeout(errno.ECONNRESET, f"client {what} for {self.io_timeout} s")

    def _peer(self) -> str:
        try:
            host, port = self.getpeername()[:2]
            return f"{host}:{port}"
        except OSError:
            return "a client"
