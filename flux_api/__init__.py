"""flux-api: an OpenAI-compatible image-generation gateway to Cloudflare Workers AI.

`create_app` and `create_app_or_exit` (flux_api/factory.py) are imported when first used, so
that `python -m flux_api.mcp`, a plain HTTP client of the gateway, loads neither Flask nor the
store.
"""

from __future__ import annotations

__all__ = ["create_app", "create_app_or_exit"]


def __getattr__(name: str):
    if name in __all__:
        from flux_api import factory

        return getattr(factory, name)
    raise AttributeError(f"module 'flux_api' has no attribute {name!r}")
