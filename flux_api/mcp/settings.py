"""The MCP server's settings, read like the gateway's (./.env or FLUX_API_ENV_FILE, under the
process environment), checked at start with one line naming what is wrong."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlparse

from ..config.environment import number, read_environment, text, url


@dataclass(frozen=True)
class MCPSettings:
    api_url: str = "http://127.0.0.1:8000"  # FLUX_API_URL: the gateway
    api_key: str = field(default="", repr=False)  # FLUX_API_KEY: for stdio (HTTP: the caller's)
    host: str = "127.0.0.1"  # MCP_HOST, for --http
    port: int = 8001  # MCP_PORT, for --http
    public_base_url: str = ""  # PUBLIC_BASE_URL: its host is the one HTTP clients may name
    max_n: int = 4  # IMAGES_MAX_N, as the gateway's (it checks n itself too)
    timeout: float = 300.0  # MCP_GATEWAY_TIMEOUT: the longest a gateway call may take

    @property
    def allowed_hosts(self) -> list[str]:
        """Host headers the HTTP transport accepts (the SDK refuses others, against DNS
        rebinding): loopback on its port, and PUBLIC_BASE_URL's host behind nginx."""
        hosts = [f"127.0.0.1:{self.port}", f"localhost:{self.port}", f"[::1]:{self.port}"]
        hosts.append(f"{self.host}:{self.port}")  # probed directly on a node's own address
        if self.public_base_url:
            parsed = urlparse(self.public_base_url)
            hosts += [parsed.netloc, parsed.hostname or ""]
        return [h for h in dict.fromkeys(hosts) if h]


def load_mcp_settings(environ: Mapping[str, str] | None = None) -> MCPSettings:
    env = read_environment(environ)
    return MCPSettings(
        api_url=url(env, "FLUX_API_URL", "http://127.0.0.1:8000").rstrip("/"),
        api_key=text(env, "FLUX_API_KEY"),
        host=text(env, "MCP_HOST", "127.0.0.1"),
        port=number(env, "MCP_PORT", 8001),
        public_base_url=url(env, "PUBLIC_BASE_URL"),
        max_n=number(env, "IMAGES_MAX_N", 4),
        timeout=number(env, "MCP_GATEWAY_TIMEOUT", 300.0, float, 1),
    )
