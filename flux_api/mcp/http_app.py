"""The streamable HTTP transport: the SDK's ASGI app, stateless (any node may answer any
request, so several can sit behind one nginx), behind a bearer check with the gateway's own API
keys. The MCP server holds no key list: it asks the gateway whether a key works (GET
/v1/models) and remembers a yes for a minute."""

from __future__ import annotations

import hashlib
import json
import time

from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from .gateway import Gateway
from .server import build_server
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


class BearerAuth:
    """ASGI middleware: HTTP requests need `Authorization: Bearer <an API key of the gateway>`;
    anything else (the lifespan that runs the SDK's session manager) passes through."""

    def __init__(self, app: ASGIApp, gateway: Gateway):
        self.app = app
        self.gateway = gateway
        self._known: dict[str, float] = {}  # sha256 of a key that worked -> until when

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not token.strip() or not await self._works(token.strip()):
            return await _refuse(send)
        return await self.app(scope, receive, send)

    async def _works(self, key: str) -> bool:
        digest = hashlib.sha256(key.encode()).hexdigest()
        now = time.monotonic()
        if self._known.get(digest, 0.0) > now:
            return True
        if not await self.gateway.key_works(key):
            return False
        if len(self._known) > 1000:  # keys come and go: forget the stale ones
            self._known = {k: t for k, t in self._known.items() if t > now}
        self._known[digest] = now + _REMEMBER_SECONDS
        return True


async def _refuse(send: Send) -> None:
    body = json.dumps(
        {
            "error": {
                "message": "Send this service's API key as 'Authorization: Bearer <key>'.",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"www-authenticate", b'Bearer realm="flux-api"'),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
