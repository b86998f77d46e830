"""The OpenAPI 3.1 description of every endpoint, served at GET /openapi.json.

This package is its one source of truth: tests check that every route Flask knows is described
in paths.py, and schemathesis fuzzes the running service against it. The bodies are in
schemas.py; document() puts the two together for one configuration.
"""

from __future__ import annotations

import copy
import functools

from flux_api.config.settings import Settings
from flux_api.web.openapi.paths import PATHS
from flux_api.web.openapi.schemas import SCHEMAS

VERSION = "1.0.0"


@functools.lru_cache(maxsize=4)
def document(settings: Settings) -> dict:
    """The document for this configuration: its models and its IMAGES_MAX_N. Built once per
    configuration and shared, so callers must not change it."""
    schemas = copy.deepcopy(SCHEMAS)
    schemas["Model"]["properties"]["id"]["enum"] = [model.id for model in settings.models]
    schemas["ImagesRequest"]["properties"]["n"]["anyOf"][0]["maximum"] = settings.images_max_n
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "flux-api",
            "version": VERSION,
            "description": "OpenAI-compatible image generation with Cloudflare Workers AI.",
        },
        "paths": PATHS,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
