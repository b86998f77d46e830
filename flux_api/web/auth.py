"""Bearer-key authentication for the API; the page, images and health checks stay open.

With no API_KEY the service never runs open: flux_api/store/key_file.py creates one strong key
in DATA_DIR/api_key, once, shared by every worker and kept across restarts.
"""

from __future__ import annotations

import hmac
import logging

from flask import Flask, g, request

from flux_api.config.api_keys import ApiKey
from flux_api.errors import APIError
from flux_api.events import Caller, current_caller
from flux_api.web.logs import route_of

log = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset({"/", "/usage", "/healthz", "/openapi.json", "/favicon.ico"})
# What METRICS_KEY opens (and nothing else); with it, usage shows every key's.
READER_PATHS = frozenset({"/metrics", "/v1/usage", "/v1/usage/view"})
METRICS_READER = ApiKey("@metrics", "")  # a name no API_KEY entry can have
PUBLIC_PREFIXES = ("/static/", "/image/")


def _is_public(method: str, path: str) -> bool:
    """Open paths are open to read: deleting an image (DELETE /image/<key>) takes a key."""
    if method not in ("GET", "HEAD"):
        return path in PUBLIC_PATHS
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def matching_key(token: str, keys: tuple[ApiKey, ...]) -> ApiKey | None:
    """The key `token` is, compared against every key in constant time, so timing reveals
    neither a key nor its position."""
    matched = None
    for key in keys:
        if hmac.compare_digest(token.encode(), key.secret.encode()):
            matched = key
    return matched


def bearer_token(authorization: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None without one."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def presents_key(keys: tuple[ApiKey, ...]) -> bool:
    """Whether this request carries a valid key (for open paths that show more to the operator)."""
    token = bearer_token(request.headers.get("Authorization", ""))
    return token is not None and matching_key(token, keys) is not None


def sees_everyone() -> bool:
    """Whether this request may read every key's usage and the metrics: it carries
    METRICS_KEY, or METRICS_KEY is not set (then every API key may)."""
    return bool(g.get("sees_everyone"))


def init_app(
    app: Flask,
    keys: tuple[ApiKey, ...],
    created_key_at: str | None = None,
    metrics_key: str = "",
) -> None:
    """`created_key_at`: where the key is when API_KEY is not set; a 401 then says where to
    look (never the key, and not the server's path: a stranger learns nothing of its disk),
    since the person at the keyboard is often the operator. `metrics_key`: METRICS_KEY."""
    where = (
        " API_KEY is not set, so the service created a key: it is in the file `api_key` "
        "under DATA_DIR on the server."
        if created_key_at
        else ""
    )

    @app.before_request
    def require_api_key():
        # Preflight, open paths and unrouted requests (404/405 answer those) need no key.
        method = request.method
        if method == "OPTIONS" or request.endpoint is None or _is_public(method, request.path):
            return None
        token = bearer_token(request.headers.get("Authorization", ""))
        if token is None:
            raise APIError(
                401,
                "Missing API key: send the header `Authorization: Bearer <API_KEY>`." + where,
                code="invalid_api_key",
                should_retry=False,
            )
        key = matching_key(token, keys)
        reader = bool(metrics_key) and hmac.compare_digest(token.encode(), metrics_key.encode())
        if reader and request.path in READER_PATHS:
            key = METRICS_READER
        if key is None:
            raise APIError(
                401,
                "Incorrect API key: check the key your client sends against the service's "
                "API_KEY." + where,
                code="invalid_api_key",
                should_retry=False,
            )
        g.api_key = key
        g.sees_everyone = key is METRICS_READER or not metrics_key
        route = route_of(request.url_rule.rule) if request.url_rule is not None else "other"
        g.caller_token = current_caller.set(Caller(key.name, route))
        return None

    @app.teardown_request
    def forget_caller(_exc):
        # Threads are reused: the next request on this one starts with no caller.
        token = g.pop("caller_token", None)
        if token is not None:
            current_caller.reset(token)
