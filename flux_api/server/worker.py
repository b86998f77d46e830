"""gunicorn's gthread worker with bounded sockets, so idle or slow clients cannot freeze it.

Stock gthread (gunicorn 27) parses a request on a thread with a blocking socket and no timeout,
parks a silent connection for `keepalive` seconds, and counts parked connections against
worker_connections, so a few hundred idle or half-sent sockets stop every worker accepting, and a
client that never reads its image holds a thread in sendfile for ever. Here:

- a request's headers are gathered without a thread: a thread reads what has arrived without
  waiting and, while the header block is incomplete, hands the connection back to the poller;
  headers not complete HEADER_TIMEOUT after the request began close the connection (a
  whole-header deadline, so one byte every few seconds does not keep it alive);
- every blocking read and write, sendfile included, fails after IO_TIMEOUT without progress;
- parked connections (waiting for headers or kept alive) hold no thread, so they do not stop a
  worker accepting: only connections a thread works on count against threads + BUSY_MARGIN,
  and worker_connections caps them all (within the file-descriptor limit, raised to fit).

Idle kept-alive connections still close after `keepalive`, as in gthread. TLS in gunicorn
(`certfile`) keeps plain gthread behaviour: the shipped setup ends TLS in nginx.
"""

from __future__ import annotations

import logging
import os
import resource
import threading
import time
from collections import deque

from gunicorn.workers import gthread

from flux_api.server.client_socket import IO_TIMEOUT, GuardedSocket
from flux_api.threads import prestart
from flux_api.web.admission import QUEUED_AT

log = logging.getLogger("gunicorn.error")

# A real client sends its headers in one packet right after connecting; 10 s is generous for a
# slow mobile link and short enough that a flood of silent or dribbling sockets drains quickly.
HEADER_TIMEOUT = 10.0
# The whole body must have arrived this long after the headers, plus a second for every
# MIN_UPLOAD_RATE bytes it announces (a JSON body is at most MAX_BODY_KB, an edit's upload
# MAX_UPLOAD_MB); a body dribbled a byte at a time would otherwise hold a thread for as long
# as each byte comes within IO_TIMEOUT.
BODY_TIMEOUT = 30.0
MIN_UPLOAD_RATE = 100 * 1024  # bytes a second: a slow mobile uplink
# gunicorn drains at most 64 KiB of a body the app did not read, after it has already
# answered with keep-alive, then closes: a client sending its next request on that
# connection loses it. A larger body (the app's 413) closes the connection by announcement.
DRAINABLE_BODY = 64 * 1024
# A worker takes new connections while fewer than threads + BUSY_MARGIN are being served: near
# `threads`, a busy worker leaves new connections to idle workers instead of queueing them.
BUSY_MARGIN = 32
# Parked connections past their header deadline are looked for at most this often: a scan is
# O(parked), and every readable socket wakes the worker's loop.
PENDING_SCAN_INTERVAL = 0.5
# Descriptors a worker needs besides client sockets, per thread (an upstream connection, an
# image file) and in all (logs, the store, the listening sockets).
FDS_PER_THREAD, FDS_SPARE = 4, 256


class GuardedThreadWorker(gthread.ThreadWorker):
    """gthread with GuardedSocket connections, header deadlines, and an accept limit that only
    counts connections a thread is working on (see the module docstring)."""

    header_timeout = HEADER_TIMEOUT
    body_timeout = BODY_TIMEOUT
    io_timeout = IO_TIMEOUT
    next_pending_scan = 0.0

    # run() stops accepting while nr_conns >= worker_connections. Parked connections cost a
    # descriptor, not a thread, so they count only against the configured cap.
    @property
    def worker_connections(self) -> int:
        parked = len(self.pending_conns) + len(self.keepalived_conns)
        return min(self.most_connections, parked + self.cfg.threads + BUSY_MARGIN)

    @worker_connections.setter
    def worker_connections(self, value: int) -> None:
        self.most_connections = value

    def init_process(self):
        self.most_connections = fit_fd_limit(self.most_connections, self.cfg.threads)
        if self.cfg.is_ssl:
            self.log.warning("TLS in gunicorn: slow-client guards are off (end TLS in nginx)")
        super().init_process()

    def run(self):
        """Make every request thread (and the app's stream threads) before taking the first
        connection: made on demand instead, they cost a burst's first requests most of their
        first second (flux_api/threads.py)."""
        services = getattr(self.loaded_app, "extensions", {}).get("flux_api")
        opened = _open_descriptors()
        self.notify()  # the arbiter's heartbeat, on either side of the wait
        if services is None:  # another app on this worker (the bench's ideal proxy)
            prestart(self.tpool, self.cfg.threads)
        else:
            services.prestart_threads(self.tpool, self.cfg.threads)
        self.notify()
        # Each thread's SQLite connections hold descriptors (the database and its WAL) for
        # good: budget them too, or accept() would meet the limit before worker_connections.
        self.most_connections = fit_fd_limit(
            self.most_connections, self.cfg.threads, _open_descriptors() - opened
        )
        super().run()

    def handle_exit(self, sig, frame):
        """SIGTERM (a stop, or the old workers of a reload): besides finishing what is in
        flight, close the listening sockets at once. gthread would keep them open until then,
        so the kernel would go on completing new connections into the backlog, and a load
        balancer's POST sent on one would be reset when the worker exits (nginx never re-sends
        a POST: its client gets a 502). Closed, they are refused, and nginx tries another
        node. The master and a reload's new workers hold their own copies, so a reload keeps
        the port open."""
        if self.alive:
            super().handle_exit(sig, frame)  # alive = False: the loop will not accept again
            self.method_queue.defer(self._stop_listening)  # on the worker's main loop

    def _stop_listening(self) -> None:
        self.set_accept_enabled(False)
        for listener in self.sockets:
            listener.close()

    def enqueue_req(self, conn):
        if not self.cfg.is_ssl:
            if not isinstance(conn.sock, GuardedSocket):  # just accepted
                conn.sock = GuardedSocket.adopt(conn.sock, self.io_timeout)
            if conn.sock.header_deadline is None:  # a request begins (new, kept alive, pipelined)
                now = time.monotonic()
                conn.sock.request_started = now
                conn.sock.header_deadline = now + self.header_timeout
                conn.sock.body_deadline = None
        conn.queued_at = time.monotonic()  # handed to the pool now (for QUEUED_AT)
        super().enqueue_req(conn)

    def load_wsgi(self):
        """The app, with QUEUED_AT in the environ: admission sheds a generation that waited too
        long for a thread (handle_request says what counts as waiting)."""
        super().load_wsgi()
        app = self.loaded_app = self.wsgi
        handed = self._handed_over = threading.local()  # set by handle_request, on its thread

        def with_queue_time(environ, start_response):
            environ[QUEUED_AT] = getattr(handed, "at", None)
            return app(environ, start_response)

        self.wsgi = with_queue_time

    def handle(self, conn):
        conn.picked_at = time.monotonic()  # a thread took it from the pool's queue
        sock = conn.sock
        if isinstance(sock, GuardedSocket) and not _read_ahead(conn):
            if not sock.prefetch_headers():
                # Back to the poller until more arrives or the deadline (gunicorn 27's marker,
                # newer than types-gunicorn's stubs)
                return gthread._DEFER  # type: ignore[attr-defined]
            conn.data_ready = True  # no need for gthread's wait on this thread
        return super().handle(conn)

    def handle_request(self, req, conn):
        # The wait admission counts: the time in the pool's queue, and from here on (the CPU
        # this thread gets before admission). Between the thread taking the connection and
        # here, it may have been blocked on the client (a TLS handshake, headers read ahead
        # that were not complete): not the server's wait, so not counted.
        queued, picked = getattr(conn, "queued_at", None), getattr(conn, "picked_at", None)
        self._handed_over.at = (
            None if queued is None or picked is None else queued + (time.monotonic() - picked)
        )
        length = getattr(getattr(req.body, "reader", None), "length", 0)
        if isinstance(conn.sock, GuardedSocket):
            conn.sock.header_deadline = None  # the headers are in
            allowed = self.body_timeout + length / MIN_UPLOAD_RATE
            conn.sock.body_deadline = time.monotonic() + allowed
        if length > DRAINABLE_BODY:
            req.must_close = True
        try:
            return super().handle_request(req, conn)
        finally:
            self._handed_over.at = None  # never seen by a later request on this thread (HTTP/2)

    def finish_request(self, conn, fs):
        # Bytes read ahead with a header block may hold whole pipelined requests the parser has
        # not taken yet: the socket will not turn readable for them, so serve them now (as
        # gthread does for its parser's own read-ahead).
        sock = conn.sock
        if (
            isinstance(sock, GuardedSocket)
            and sock.early
            and self.alive
            and not fs.cancelled()
            and fs.exception() is None
            and fs.result() is True
        ):
            self.enqueue_req(conn)
            return
        super().finish_request(conn, fs)

    def murder_pending(self):
        """Close connections waiting for their headers past the deadline (gthread would keep
        them `keepalive` seconds). Their deadlines are not in queue order: check them all."""
        now = time.monotonic()
        if now < self.next_pending_scan:
            return
        self.next_pending_scan = now + PENDING_SCAN_INTERVAL
        keep: deque[gthread.TConn] = deque()
        for conn in self.pending_conns:
            deadline = getattr(conn.sock, "header_deadline", None) or conn.timeout
            assert deadline is not None  # gthread times every pending connection
            if deadline > now:
                keep.append(conn)
                continue
            try:
                self.poller.unregister(conn.sock)
            except (OSError, KeyError, ValueError):
                pass
            self.nr_conns -= 1
            conn.close()
        self.pending_conns = keep


def _read_ahead(conn) -> bool:
    """Whether gunicorn's parser already holds bytes of the next request (pipelining): then the
    socket may stay silent, and the parser reads the rest by the header deadline instead."""
    unreader = getattr(conn.parser, "unreader", None)
    return bool(unreader is not None and unreader.buf.getvalue())


def fit_fd_limit(connections: int, threads: int, held: int = 0) -> int:
    """Raise this process's soft descriptor limit to fit `connections` (up to the hard limit)
    beside `held` descriptors kept open for good; the number of connections that fit. Running
    out would make accept() fail and kill the worker."""
    need = connections + threads * FDS_PER_THREAD + FDS_SPARE + held
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        soft = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft != resource.RLIM_INFINITY and soft < need:
        fit = max(threads + BUSY_MARGIN, soft - threads * FDS_PER_THREAD - FDS_SPARE - held)
        log.warning(
            "worker_connections %s lowered to %s: open files limit %s", connections, fit, soft
        )
        return fit
    return connections


def _open_descriptors() -> int:
    """How many descriptors this process has open (0 where /proc cannot tell)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0
