"""The streamable HTTP transport: the SDK's ASGI app, stateless (any node may answer any
request, so several can sit behind one nginx), behind a bearer check with the gateway's own API
keys. The MCP server holds no key list: it asks the gateway whether a key works (GET
/v1/models) and remembers a yes for a minute."""

from __future__ import annotations

import hashlib
import json
import re
import time

import anyio
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from .gateway import Gateway
from .server import KEY_IN_SCOPE, build_server
from .settings import MCPSettings

_REMEMBER_SECONDS = 60.0


def build_http_app(settings: MCPSettings, gateway: Gateway) -> ASGIApp:
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=settings.allowed_hosts,
        allowed_origins=[f"http://{host}" for host in settings.allowed_hosts]
        + [f"https://{host}" for host in settings.allowed_hosts],
    )
    app = build_server(settings, gateway).streamable_http_app(
        stateless_http=True,
        transport_security=security,
        host=settings.host,
        max_request_body_size=24 * 1024 * 1024,  # edit_image's base64 images; as nginx's /mcp
    )
    return BearerAuth(app, gateway)


_TOKEN = re.compile(r"[!-~]{1,512}")  # printable ASCII: anything else no gateway key can be
_FORGET_WRONG_SECONDS = 5.0
_MOST_CHECKS_AT_ONCE = 4


class BearerAuth:
    """ASGI middleware: HTTP requests need exactly one `Authorization: Bearer <an API key of
    the gateway>`; the key checked is the key the tools use (handed on in the ASGI scope).
    Anything else (the lifespan that runs the SDK's session manager) passes through."""

    def __init__(self, app: ASGIApp, gateway: Gateway):
        self.app = app
        self.gateway = gateway
        self._known: dict[str, float] = {}  # sha256 of a key -> until when its answer holds
        self._wrong: dict[str, float] = {}
        self._checks = anyio.Semaphore(_MOST_CHECKS_AT_ONCE)  # wrong keys cost gateway calls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        values = [v for k, v in scope.get("headers") or [] if k == b"authorization"]
        scheme, _, token = (values[0] if len(values) == 1 else b"").decode("latin-1").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not _TOKEN.fullmatch(token):
            return await _answer(send, 401, _NO_KEY)
        verdict = await self._works(token)
        if verdict is None:
            return await _answer(send, 503, _GATEWAY_AWAY, [(b"retry-after", b"5")])
        if not verdict:
            return await _answer(send, 401, _WRONG_KEY)
        scope[KEY_IN_SCOPE] = token
        return await self.app(scope, receive, send)

    async def _works(self, key: str) -> bool | None:
        """True or False as the gateway says; None when it cannot say now (down, slow)."""
        digest = hashlib.sha256(key.encode()).hexdigest()
        now = time.monotonic()
        if self._known.get(digest, 0.0) > now:
            return True
        if self._wrong.get(digest, 0.0) > now:
            return False
        async with self._checks:
            verdict = await self.gateway.key_works(key)
        if verdict is not None:
            remembered = self._known if verdict else self._wrong
            if len(remembered) > 1000:  # keys come and go: forget the stale ones
                remembered.clear()
            seconds = _REMEMBER_SECONDS if verdict else _FORGET_WRONG_SECONDS
            remembered[digest] = time.monotonic() + seconds
        return verdict


def _error(message: str, code: str, kind: str) -> bytes:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return json.dumps(body).encode()


_NO_KEY = _error(
    "Send this service's API key once, as 'Authorization: Bearer <key>'.",
    "invalid_api_key",
    "invalid_request_error",
)
_WRONG_KEY = _error(
    "The gateway does not accept this API key.", "invalid_api_key", "invalid_request_error"
)
_GATEWAY_AWAY = _error(
    "The gateway cannot check the key right now; try again in a moment.",
    "gateway_unavailable",
    "api_error",
)


async def _answer(send: Send, status: int, body: bytes, headers: list | None = None) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *([(b"www-authenticate", b'Bearer realm="flux-api"')] if status == 401 else []),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
