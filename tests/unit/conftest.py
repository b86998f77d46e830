"""Unit tests open no socket: no server, no client. Each runs with socket connect, bind, listen
and sendto refused; one that tries fails, naming the call, even where the code under test catches
OSError or makes the call in a thread of its own."""

from __future__ import annotations

import socket

import pytest

_GUARDED = ("connect", "connect_ex", "bind", "listen", "sendto")
_REPORTED = pytest.StashKey[bool]()


class SocketInUnitTest(BaseException):
    """Not an OSError (nor an Exception): no `except` in the code under test swallows it."""


@pytest.fixture(autouse=True)
def no_sockets(monkeypatch, request):
    attempts: list[str] = []

    def refuse(name: str):
        def refused(sock, *args, **kwargs):
            attempts.append(f"socket.{name}{args}")
            raise SocketInUnitTest(
                f"socket.{name}{args} in a unit test: a test that needs a socket belongs in "
                "tests/system"
            )

        return refused

    for name in _GUARDED:
        monkeypatch.setattr(socket.socket, name, refuse(name))
    yield
    if attempts and not request.node.stash.get(_REPORTED, False):
        # made in another thread, or swallowed on the way: the test may even have passed
        pytest.fail("a unit test used a socket: " + "; ".join(attempts), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when == "call" and call.excinfo and call.excinfo.errisinstance(SocketInUnitTest):
        item.stash[_REPORTED] = True  # failed already: no second report at teardown
    return report
