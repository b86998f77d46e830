"""The container's HEALTHCHECK: GET /healthz on the port BIND names (the image's 0.0.0.0:8000
unless changed). Healthy on 200, which /healthz answers while this node can keep an image (no
usable Cloudflare account is "degraded" but 200: the accounts are shared by every node)."""

from __future__ import annotations

import os
import sys
import urllib.request

port = os.environ.get("BIND", "0.0.0.0:8000").rpartition(":")[2]
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=4) as answer:
        sys.exit(0 if answer.status == 200 else 1)
except Exception as exc:  # noqa: BLE001 (any failure is "unhealthy"; docker keeps the line)
    print(f"/healthz: {exc}")
    sys.exit(1)
