"""`python -m flux_api.mcp`: the MCP server over stdio (for Claude Desktop, Cursor, VS Code),
or with `--http` over streamable HTTP on MCP_HOST:MCP_PORT (uvicorn, one process)."""

from __future__ import annotations

import argparse
import sys

from ..config.environment import SettingsError
from .gateway import Gateway
from .settings import load_mcp_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flux_api.mcp", description=__doc__)
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP, not stdio")
    args = parser.parse_args(argv)
    try:
        settings = load_mcp_settings()
    except SettingsError as exc:
        print(f"flux-api MCP server cannot start: {exc}", file=sys.stderr)
        return 3
    gateway = Gateway(settings.api_url, settings.timeout)
    if args.http:
        import uvicorn

        if not settings.public_base_url:
            print(
                "flux-api MCP server: PUBLIC_BASE_URL is not set, so only loopback Host names "
                "are accepted (behind nginx, set it to the address clients use).",
                file=sys.stderr,
            )

        from .http_app import build_http_app

        app = build_http_app(settings, gateway)
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", access_log=False)
        return 0
    if not settings.api_key:
        print(
            "flux-api MCP server cannot start: FLUX_API_KEY is not set (the gateway's API key).",
            file=sys.stderr,
        )
        return 3
    from .server import build_server

    build_server(settings, gateway).run()  # stdio; logs go to stderr, never stdout
    return 0


if __name__ == "__main__":
    sys.exit(main())
