"""The Cloudflare account pool: its policy and its shared state (disk or Redis)."""
