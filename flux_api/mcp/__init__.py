"""flux-api's MCP server: the gateway's image tools for agent clients (Claude Desktop, Cursor,
VS Code, Open WebUI), on the official `mcp` SDK (2.x, whose `MCPServer` was `FastMCP` in 1.x).

It is only an HTTP client of the gateway (FLUX_API_URL): it imports no Flask, no store, nothing
of the service but how settings are read, so it runs next to the gateway or on a laptop against a
remote one. Its dependencies are in requirements-mcp.txt. Run it with `python -m flux_api.mcp`
(stdio) or `python -m flux_api.mcp --http` (streamable HTTP, stateless).
"""
