"""Reading an upstream answer's body by a deadline.

requests' timeouts bound each socket read, not the call: an upstream that sends one byte every
second keeps a request for ever. Reading here sets each wait to the time left and stops at the
deadline, so a client's deadline holds whatever the upstream does.
"""

from __future__ import annotations

import time

import requests

CHUNK = 256 * 1024  # an image answer is ~250 KiB: usually one or two reads


def read_body(response: requests.Response, deadline: float) -> bytes:
    """The whole body of a response sent with `stream=True`, or TimeoutError at `deadline`
    (a time.monotonic() value). The connection is closed, not reused, if it times out."""
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
