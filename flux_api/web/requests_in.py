"""What every view needs of the request: the app's services, the public URL, the request's
budget, its JSON body within its limit, and counting it against RATE_LIMIT."""

from __future__ import annotations

import json

from flask import current_app, g, request

from flux_api.budget import Budget, peer_closed
from flux_api.errors import APIError, invalid_request
from flux_api.services import Services
from flux_api.web import hosts


def services() -> Services:
    return current_app.extensions["flux_api"]


def public_base_url() -> str:
    """PUBLIC_BASE_URL when set; otherwise the URL this request came in on, whose Host must be
    a plain host[:port] (it goes into every image link of a billed reply)."""
    configured = services().settings.public_base_url
    if configured:
        return configured
    host = hosts.checked_host(request.host)
    return f"{request.scheme}://{host}"


def request_budget() -> Budget:
    """This request's deadline (UPSTREAM_TIMEOUT from its start) and a check that its client
    is still connected (the server's socket: gunicorn's, or werkzeug's in tests)."""
    environ = request.environ
    client = environ.get("gunicorn.socket") or environ.get("werkzeug.socket")
    # From when the request began to arrive (flux_api/server/worker.py records it on the socket),
    # waiting for a free thread included; else from when Flask began with it.
    started = getattr(client, "request_started", None) or g.started
    deadline = started + services().settings.upstream_timeout
    g.budget = Budget(deadline, client_closed=lambda: peer_closed(client))
    return g.budget


def spend(images: int) -> None:
    """Count `images` Workers AI calls against the key's RATE_LIMIT (a 429 if over it): called
    once a request is known to make a paid call, so task prompts and bad requests cost nothing.
    Counted once per request, however often called: a chat may be counted before the optimizer
    judges a follow-up (a paid call too), and again before its image."""
    limiter = services().rate_limiter
    if limiter is not None and not g.get("spent"):
        limiter.hit(g.api_key, images)
        g.spent = True


def may_spend(images: int) -> bool:
    """`spend`, answering False instead of the 429: for paid calls that have a free fallback."""
    try:
        spend(images)
    except APIError as exc:
        if exc.status != 429:
            raise
        return False
    return True


def json_body() -> dict:
    """The body as a JSON object, whatever its Content-Type says (clients differ)."""
    data = request.get_data(cache=False)
    g.body_size = len(data)
    if request.content_length is None and len(data) >= (request.max_content_length or 0):
        # A chunked body is cut at the limit without a word: reading on raises the 413.
        request.stream.read(1)
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested absurdly deep
        body = None
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.")
    for name, value in body.items():
        if not _encodable(value):
            raise invalid_request(
                f"`{name}` holds text that is not valid Unicode (a lone surrogate such as "
                "\\ud800); send UTF-8 text.",
                param=name,
            )
    return body


def _encodable(value: object) -> bool:
    """JSON allows escapes of lone UTF-16 surrogates, which no answer or upstream body can
    carry as UTF-8."""
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return False
    return True


def allow_uploads() -> None:
    """This request's body may reach MAX_UPLOAD_MB (it carries images), not MAX_BODY_KB."""
    limit = services().settings.max_upload_mb
    request.max_content_length = limit * 1024 * 1024
    g.body_limit = ("MAX_UPLOAD_MB", f"{limit} MB")


def text_body_limit() -> None:
    """The 413 for a body without images names MAX_BODY_KB again."""
    g.pop("body_limit", None)
