"""What one request may still spend: time until its deadline, and whether its client is still
there to receive what it paid for; and what it spent (its Workers AI tries).

Every paid step (the optimizer call, each Workers AI try) asks its budget first, so a request
whose client has left or whose deadline has passed costs nothing more.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable

# poll() flags that mean the peer closed or broke the connection. POLLRDHUP (Linux) is the
# client's FIN: HTTP clients never half-close while waiting for their answer.
_GONE = select.POLLHUP | select.POLLERR | select.POLLNVAL | getattr(select, "POLLRDHUP", 0)


class ClientLeft(Exception):
    """The client closed its connection: stop, and spend nothing more on it."""


class Stopped(Exception):
    """The request has already failed (another of its images did): nothing more is spent."""


class DeadlineExceeded(Exception):
    """The request's whole-request deadline has passed (or would, before a try could end)."""

    def __init__(self, waited: float, where: str):
        super().__init__(where)
        self.detail = f"{waited:.1f} s, {where}"


def peer_closed(sock: socket.socket | None) -> bool:
    """True when the other end of `sock` has closed it (checked without reading or blocking:
    a pipelined next request is left where it is)."""
    if sock is None:
        return False
    try:
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN | _GONE)
        events = poller.poll(0)
    except (OSError, ValueError):  # closed already
        return True
    return any(flags & _GONE for _, flags in events)


class Budget:
    """One request's deadline (time.monotonic) and a check for its client's presence."""

    def __init__(
        self,
        deadline: float,
        client_closed: Callable[[], bool] = lambda: False,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.deadline = deadline
        self.started = clock()
        self._client_closed = client_closed
        self._clock = clock
        self._left = threading.Event()
        self._stopped = threading.Event()
        # What was spent: each Workers AI try (an events.UpstreamCall), in the order made, and
        # how many generations ran (the pipeline counts them).
        self.tries: list = []
        self.generations = 0

    @classmethod
    def unlimited(cls) -> Budget:
        return cls(float("inf"))

    def remaining(self) -> float:
        return self.deadline - self._clock()

    def extend(self, seconds: float) -> None:
        """Give back time spent on a step with its own limit (the optimizer's)."""
        self.deadline += seconds

    def leave(self) -> None:
        """Record that the client is gone (its stream was closed)."""
        self._left.set()

    def stop(self) -> None:
        """Record that the request has failed: its other work stops before its next paid step."""
        self._stopped.set()

    @property
    def client_left(self) -> bool:
        """Whether the client has gone, asking its socket now."""
        if not self._left.is_set() and self._client_closed():
            self._left.set()
        return self._left.is_set()

    @property
    def noticed_client_left(self) -> bool:
        """Whether the client was seen leaving while the request ran (the socket is not asked:
        once the answer is sent, a client closing its connection is normal)."""
        return self._left.is_set()

    def check(self, where: str) -> None:
        """Raise unless the client is still there and time remains; `where` names the step."""
        if self._stopped.is_set():
            raise Stopped(where)
        if self.client_left:
            raise ClientLeft(where)
        if self.remaining() <= 0:
            raise DeadlineExceeded(self._clock() - self.started, where)

    def wait_for(self, slot: threading.Semaphore, where: str, poll: float = 0.25) -> None:
        """Acquire `slot`, giving up when the client leaves or the deadline passes."""
        while True:
            self.check(where)
            if slot.acquire(timeout=max(0.0, min(poll, self.remaining()))):
                return
