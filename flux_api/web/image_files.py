"""Stored images, served by a thin WSGI layer in front of Flask.

An image fetch is the service's most frequent request and needs none of what Flask brings
(routing, auth, rate limits, JSON errors): going through Flask's request machinery cost ~1.7 ms
of CPU per fetch, a bare WSGI answer with sendfile ~0.6 ms (bench/README figures). So a hit,
GET or HEAD, is answered here; everything else under /image/ (unknown or expired keys, other
methods, a store that cannot be read) goes on to the blueprint's view, which answers the error.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterable
from functools import partial

from werkzeug.http import http_date, parse_etags
from werkzeug.wsgi import ClosingIterator, wrap_file

from flux_api.events import Events
from flux_api.imaging.pictures import sniff_type
from flux_api.store.images import ImageStore, OpenedImage, StoreUnavailable
from flux_api.web import logs

PREFIX = "/image/"
ROUTE = "/image/{key}"  # what the fetches are announced as having been answered by
PROXY_CACHE_SECONDS = 3600  # the longest a reverse proxy keeps an image it has cached
STORE_FAILED = "flux_api.store_failed"  # in the WSGI environ: why the store could not be read


def image_headers(key: str, opened: OpenedImage) -> list[tuple[str, str]]:
    """The headers of a 200 answer for a stored image (the Flask view uses them too)."""
    return [
        ("Content-Type", sniff_type(opened.head) or "application/octet-stream"),
        ("Content-Length", str(opened.size)),
        *freshness_headers(key, opened),
        ("X-Content-Type-Options", "nosniff"),
    ]


def freshness_headers(key: str, opened: OpenedImage) -> list[tuple[str, str]]:
    """ETag and lifetime, for a 200 and a 304 alike: caches keep the image as long as the store.

    max-age counts from this answer, so a cache that replays it without adding Age (nginx's
    proxy_cache) would stretch it; Expires is the image's own expiry, right whenever it is
    replayed (the shipped nginx site passes clients Expires alone)."""
    return [
        ("ETag", f'"{key}"'),
        ("Cache-Control", f"public, max-age={opened.seconds_left}"),
        ("Expires", http_date(int(opened.expires_at))),
        # nginx's own lifetime for its copy (it passes this header to no client): an image
        # deleted with DELETE /image/<key> leaves the shipped site's cache within the hour.
        ("X-Accel-Expires", str(min(opened.seconds_left, PROXY_CACHE_SECONDS))),
    ]


def _log_sent(
    events: Events, method: str, path: str, status: int, started: float, rid: str
) -> None:
    """The fetch announced (its access line), under its own id: the thread's context still
    holds the id of whatever request Flask last served on this thread."""
    token = logs.request_id.set(rid)
    try:
        logs.announce_request(events, method, path, status, started, "-", rid, route=ROUTE)
    finally:
        logs.request_id.reset(token)


def cors_headers(origin: str | None, origins: frozenset[str]) -> list[tuple[str, str]]:
    """CORS for an answer made before Flask (and flask_cors): images carry no credentials, so
    any origin may read them when CORS_ORIGINS is "*" (and caches keep one copy, with no
    Vary); a shed (web/admission.py) is readable by the origins the API is."""
    if "*" in origins:
        allowed = [("Access-Control-Allow-Origin", "*")]
    elif origin in origins:
        allowed = [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
    else:
        return [("Vary", "Origin")]
    return allowed + [("Access-Control-Expose-Headers", "X-Request-ID, Retry-After")]


class ImageFiles:
    """WSGI middleware: serves stored images, passes every other request to `app`."""

    def __init__(
        self, app: Callable, store: ImageStore, cors_origins: tuple[str, ...], events: Events
    ):
        self.app = app
        self.store = store
        self.events = events
        self.origins = frozenset(cors_origins)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        if method not in ("GET", "HEAD") or not path.startswith(PREFIX):
            return self.app(environ, start_response)
        started = time.monotonic()
        key = path[len(PREFIX) :]
        try:
            opened = self.store.open(key)
        except StoreUnavailable as exc:
            environ[STORE_FAILED] = exc  # the view answers 503 without waiting on it again
            opened = None
        if opened is None:
            return self.app(environ, start_response)

        rid = logs.request_id_from(environ.get("HTTP_X_REQUEST_ID", ""))
        extra = [("X-Request-ID", rid), *cors_headers(environ.get("HTTP_ORIGIN"), self.origins)]
        body: Iterable[bytes]
        if parse_etags(environ.get("HTTP_IF_NONE_MATCH")).contains(key):
            opened.file.close()
            status, headers, body = 304, freshness_headers(key, opened), []
        else:
            status, headers = 200, image_headers(key, opened)
            if method == "HEAD":
                opened.file.close()
                body = []
            elif isinstance(opened.file, io.BytesIO):  # from Redis: already in memory
                body = [opened.file.getvalue()]  # one write, not gunicorn's 8 KiB blocks
            else:
                body = wrap_file(environ, opened.file)  # sendfile under gunicorn
        start_response("200 OK" if status == 200 else "304 Not Modified", headers + extra)
        log_line = partial(_log_sent, self.events, method, path, status, started, rid)
        if isinstance(body, list):  # a 304, a HEAD or bytes: nothing to close but the log
            return ClosingIterator(body, log_line)
        # Servers call close() once the body is sent (or its client is gone). The body stays an
        # instance of the server's own file wrapper, which is what makes gunicorn use sendfile,
        # so the line is added to the wrapper's close rather than by wrapping the wrapper.
        assert hasattr(body, "close")  # a file wrapper has one (PEP 3333)
        close_file = body.close

        def close_and_log() -> None:
            try:
                close_file()
            finally:
                log_line()

        body.close = close_and_log
        return body
