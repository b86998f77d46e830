"""The OpenAPI 3.1 description of every endpoint, served at GET /openapi.json.

This module is its one source of truth: tests check that every route Flask knows is described
here, and schemathesis fuzzes the running service against it. Bodies are described as leniently
as the service reads them (unknown fields are accepted and ignored, as OpenAI clients send many).
"""

from __future__ import annotations

import copy
import functools

from flux_api.config.settings import Settings

JSON = "application/json"
_REF = "#/components/schemas/"


def _ref(name: str) -> dict:
    return {"$ref": _REF + name}


def _json(schema: dict, description: str, headers: dict | None = None) -> dict:
    response: dict = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _error(description: str, headers: dict | None = None) -> dict:
    return _json(_ref("Error"), description, headers)


_REQUEST_ID = {
    "X-Request-ID": {
        "description": "The client's X-Request-ID when it is a plain token, else a new id.",
        "schema": {"type": "string"},
    }
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds until a request may pass.",
        "schema": {"type": "string"},
    }
}
_SHOULD_RETRY = {
    "x-should-retry": {
        "description": "false when repeating the request cannot help (read by the openai SDK).",
        "schema": {"type": "string", "enum": ["true", "false"]},
    }
}

# The errors any generation may end with; each one's message says what to do.
_GENERATION_ERRORS = {
    "400": _error(
        "The request is invalid (the `param` field names the culprit), the ratio is out of "
        "1:4–4:1, the prompt is too long, or Cloudflare's content filter blocked the image.",
        _SHOULD_RETRY,
    ),
    "401": _error("The API key is missing or wrong.", _SHOULD_RETRY),
    "413": _error("The request body is larger than MAX_BODY_KB.", _SHOULD_RETRY),
    "429": _error(
        "RATE_LIMIT was reached (rate_limit_exceeded, with Retry-After), Workers AI is rate "
        "limiting, or the Cloudflare account is out of quota (insufficient_quota).",
        {**_RETRY_AFTER, **_SHOULD_RETRY},
    ),
    "502": _error("Workers AI failed or answered something that is not an image."),
    "503": _error(
        "Workers AI is unreachable or over capacity after retries, Cloudflare credentials are "
        "not configured, or the image store cannot be written."
    ),
    "504": _error("Workers AI did not answer within UPSTREAM_TIMEOUT.", _SHOULD_RETRY),
}

_EDIT_ERRORS = {
    **_GENERATION_ERRORS,
    "400": _error(
        "An image that is not a JPEG, PNG or WebP, too large or with too many pixels, a mask "
        "of another size, more images than the model takes, a remote image URL, or any other "
        "invalid field (`param` names it).",
        _SHOULD_RETRY,
    ),
    "413": _error("The upload is larger than MAX_UPLOAD_MB.", _SHOULD_RETRY),
}

_TEXT = {"type": "string", "pattern": r"\S"}  # at least one character that is not a space
# The prompt is the last `user` message: a string, or parts whose `text` parts are joined.
_USER_MESSAGE = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {
        "role": {"const": "user"},
        "content": {
            "anyOf": [
                _TEXT,
                {
                    "type": "array",
                    "contains": {
                        "type": "object",
                        "required": ["type", "text"],
                        "properties": {"type": {"const": "text"}, "text": _TEXT},
                    },
                },
            ]
        },
    },
}
# Sides from 256 to 2048 (the parser takes up to five digits, so leading zeros too).
_SIDE = "(?:0{0,2}(?:25[6-9]|2[6-9][0-9]|[3-9][0-9]{2})|0?(?:1[0-9]{3}|20[0-3][0-9]|204[0-8]))"
_SIZE_PATTERN = rf"^(?:auto|\s*{_SIDE}\s*[xX×]\s*{_SIDE}\s*)$"


def _nullable(schema: dict) -> dict:
    """Optional fields may also be null: the service reads null as absent, as OpenAI does."""
    return {"anyOf": [schema, {"type": "null"}]}


_SCHEMAS: dict = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type", "param", "code"],
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "param": {"type": ["string", "null"]},
                    "code": {"type": ["string", "null"]},
                },
            }
        },
    },
    "Model": {
        "type": "object",
        "required": ["id", "object", "created", "owned_by"],
        "properties": {
            "id": {"type": "string", "enum": []},  # the models offered: see document()
            "object": {"const": "model"},
            "created": {"type": "integer"},
            "owned_by": {"type": "string"},
        },
    },
    "ModelList": {
        "type": "object",
        "required": ["object", "data"],
        "properties": {
            "object": {"const": "list"},
            "data": {"type": "array", "items": _ref("Model")},
        },
    },
    "Health": {
        "type": "object",
        "required": [
            "status",
            "store",
            "cloudflare",
            "accounts",
            "usable_accounts",
            "prompt_optimization",
            "default_model",
        ],
        "properties": {
            "status": {
                "enum": ["ok", "degraded", "unavailable"],
                "description": "degraded: no Cloudflare credentials, or no account usable now "
                "(still 200).",
            },
            "reason": {
                "type": "string",
                "description": "Why status is degraded (no Cloudflare credentials, or no "
                "usable account).",
            },
            "store": {"enum": ["writable", "not writable", "unreachable", "full"]},
            "cloudflare": {"enum": ["configured", "missing"]},
            "accounts": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "state"],
                    "properties": {
                        "id": {
                            "type": "string",
                            "description": "The account id shortened: first 6 and last 4 "
                            "characters.",
                        },
                        "state": {
                            "enum": ["ok", "busy", "quota_exhausted", "rejected_token", "unknown"],
                            "description": "unknown: the shared state cannot be read now.",
                        },
                        "until": {
                            "type": "string",
                            "format": "date-time",
                            "description": "quota_exhausted: when the daily allocation resets.",
                        },
                        "neurons_today": {
                            "type": "number",
                            "description": "Neurons spent today (UTC), as Cloudflare reported.",
                        },
                    },
                },
            },
            "usable_accounts": {"type": "integer", "minimum": 0},
            "prompt_optimization": {"enum": ["on", "off"]},
            "default_model": {"type": "string"},
            "images_stored": {
                "type": "integer",
                "description": "Only for a caller that sends a valid API key.",
            },
        },
    },
    "ChatCompletionRequest": {
        "type": "object",
        "required": ["messages"],
        "description": "The last `user` message is the prompt; a ratio such as 16:9 (or "
        "`--ar 16:9`) at its end sets the image's shape. Other OpenAI fields are accepted and "
        "ignored.",
        "properties": {
            "model": _nullable(
                {
                    "type": "string",
                    "description": "A listed model (id or last segment); any other name "
                    "(gpt-4o, dall-e-3…) means FLUX_MODEL.",
                }
            ),
            "messages": {
                "type": "array",
                "description": "Chat messages; the last one with role `user` is the prompt. "
                "Others (system, assistant, tool) are ignored.",
                "contains": _USER_MESSAGE,
            },
            "stream": _nullable({"type": "boolean"}),
            "stream_options": _nullable(
                {
                    "type": "object",
                    "properties": {"include_usage": _nullable({"type": "boolean"})},
                }
            ),
        },
    },
    "Usage": {
        "type": "object",
        "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
        "properties": {
            name: {"type": "integer", "minimum": 0}
            for name in ("prompt_tokens", "completion_tokens", "total_tokens")
        },
    },
    "ChatCompletion": {
        "type": "object",
        "required": ["id", "object", "created", "model", "choices"],
        "properties": {
            "id": {"type": "string"},
            "object": {"const": "chat.completion"},
            "created": {"type": "integer"},
            "model": {"type": "string"},
            "choices": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["index", "message", "finish_reason"],
                    "properties": {
                        "index": {"type": "integer"},
                        "message": {
                            "type": "object",
                            "required": ["role", "content"],
                            "properties": {
                                "role": {"const": "assistant"},
                                "content": {
                                    "type": "string",
                                    "description": "Markdown: the progress lines, then "
                                    "![Generated image](<base>/image/<key>).",
                                },
                            },
                        },
                        "finish_reason": {"type": "string"},
                    },
                },
            },
            "usage": _ref("Usage"),
            "flux_api": _ref("ReplyFacts"),
        },
    },
    "ReplyFacts": {
        "type": "object",
        "description": "The reply's facts as data (an extension OpenAI clients ignore); a "
        "stream's last chunk (the one with finish_reason) carries them too.",
        "properties": {
            "original_prompt": {"type": "string"},
            "prompt": {"type": "string", "description": "the prompt sent to Workers AI"},
            "prompt_model": {"type": "string"},
            "size": {"type": "string", "examples": ["1024x576"]},
            "image_url": {"type": "string"},
        },
    },
    "ImagesRequest": {
        "type": "object",
        "required": ["prompt"],
        "description": "OpenAI's Images API body. quality, style, user, background, "
        "output_compression and moderation are accepted and ignored; `output_format` converts "
        "the image when given.",
        "properties": {
            "prompt": _TEXT,
            "model": _nullable({"type": "string"}),
            "n": _nullable({"type": "integer", "minimum": 1, "maximum": 4}),  # IMAGES_MAX_N
            "size": _nullable(
                {
                    "type": "string",
                    "pattern": _SIZE_PATTERN,
                    "description": "WxH with each side from 256 to 2048, or auto.",
                    "examples": ["1024x1024", "1024x576", "auto"],
                }
            ),
            "response_format": _nullable({"enum": ["url", "b64_json"]}),
            "seed": _nullable({"type": "integer", "minimum": 0, "maximum": 4294967295}),
            "negative_prompt": _nullable({"type": "string"}),
            "steps": _nullable({"type": "integer", "minimum": 1}),
        },
    },
    "EditForm": {
        "type": "object",
        "required": ["prompt"],
        "properties": {
            "image": {"type": "string", "format": "binary"},
            "image[]": {
                "description": "One part per image (the openai SDK, Open WebUI, LibreChat).",
                "anyOf": [
                    {"type": "string", "format": "binary"},
                    {"type": "array", "items": {"type": "string", "format": "binary"}},
                ],
            },
            "mask": {
                "type": "string",
                "format": "binary",
                "description": "PNG, the size of the first image; transparent where to edit.",
            },
            "prompt": {"type": "string", "pattern": "\\S"},
            "model": _nullable({"type": "string"}),
            "n": _nullable({"type": "integer", "minimum": 1}),
            "size": _nullable({"type": "string"}),
            "response_format": _nullable({"enum": ["url", "b64_json"]}),
            "strength": {"type": "number", "minimum": 0, "maximum": 1},
            "seed": {"type": "integer", "minimum": 0},
        },
    },
    "EditJSON": {
        "type": "object",
        "required": ["prompt", "images"],
        "properties": {
            "prompt": {"type": "string"},
            "images": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"image_url": {"type": "string", "description": "data: URL"}},
                },
            },
            "mask": {"type": "object", "properties": {"image_url": {"type": "string"}}},
            "model": _nullable({"type": "string"}),
            "n": _nullable({"type": "integer", "minimum": 1}),
            "size": _nullable({"type": "string"}),
            "response_format": _nullable({"enum": ["url", "b64_json"]}),
        },
    },
    "VariationForm": {
        "type": "object",
        "required": ["image"],
        "properties": {
            "image": {"type": "string", "format": "binary"},
            "model": _nullable({"type": "string"}),
            "n": _nullable({"type": "integer", "minimum": 1}),
            "size": _nullable({"type": "string"}),
            "response_format": _nullable({"enum": ["url", "b64_json"]}),
        },
    },
    "ImagesResponse": {
        "type": "object",
        "required": ["created", "data"],
        "properties": {
            "created": {"type": "integer"},
            "data": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "url": {"type": "string"},
                        "b64_json": {"type": "string"},
                        "revised_prompt": {"type": "string"},
                    },
                },
            },
            "size": {"type": "string"},
            "output_format": {"enum": ["jpeg", "png", "webp"]},
        },
    },
}

# OpenAPI 3.1 has the schema of an event stream describe one event (comments are not events).
_SSE_EVENT = {
    "type": "object",
    "required": ["data"],
    "description": "One server-sent event. In order: the role, each line of the reply as it is "
    "ready (`: keep-alive` comments while the image is made), a chunk with finish_reason, a "
    "usage chunk when stream_options.include_usage, then `[DONE]`. An error after the first "
    'byte arrives as `{"error": {...}}` before `[DONE]`.',
    "properties": {
        "data": {
            "type": "string",
            "description": "A chat.completion.chunk or an error as JSON, or [DONE].",
        },
        "event": {"type": "string"},
    },
}

_IMAGE_KEY = {
    "name": "key",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{16,64}$"},
    "description": "The key from an image URL (32 URL-safe characters).",
}

_PATHS: dict = {
    "/": {
        "get": {
            "summary": "The welcome page: service state, never a secret",
            "security": [],
            "responses": {
                "200": {
                    "description": "HTML",
                    "content": {"text/html": {"schema": {"type": "string"}}},
                }
            },
        }
    },
    "/favicon.ico": {
        "get": {
            "summary": "The page's icon",
            "security": [],
            "responses": {
                "200": {
                    "description": "ICO",
                    "content": {"image/vnd.microsoft.icon": {"schema": {"type": "string"}}},
                }
            },
        }
    },
    "/healthz": {
        "get": {
            "summary": "Health for load balancers: 200 while this node can keep images",
            "security": [],
            "responses": {
                "200": _json(_ref("Health"), "Ready."),
                "503": _json(
                    _ref("Health"),
                    "The image store cannot be written or reached.",
                ),
            },
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This document",
            "security": [],
            "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")},
        }
    },
    "/v1/models": {
        "get": {
            "summary": "The image models this service offers",
            "responses": {
                "200": _json(_ref("ModelList"), "The models."),
                "401": _GENERATION_ERRORS["401"],
            },
        }
    },
    "/v1/models/{model_id}": {
        "get": {
            "summary": "One model, by id or by its last segment",
            "parameters": [
                {
                    "name": "model_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[A-Za-z0-9@/._-]{1,100}$"},
                    "examples": {"schnell": {"value": "flux-1-schnell"}},
                }
            ],
            "responses": {
                "200": _json(_ref("Model"), "The model."),
                "401": _GENERATION_ERRORS["401"],
                "404": _error("No such model."),
            },
        }
    },
    "/v1/chat/completions": {
        "post": {
            "summary": "Generate an image from the last user message; reply in markdown",
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": _ref("ChatCompletionRequest")}},
            },
            "responses": {
                "200": {
                    "description": "A chat.completion, or with `stream: true` an SSE stream.",
                    "headers": _REQUEST_ID,
                    "content": {
                        JSON: {"schema": _ref("ChatCompletion")},
                        "text/event-stream": {"schema": _SSE_EVENT},
                    },
                },
                **_GENERATION_ERRORS,
            },
        }
    },
    "/v1/images/generations": {
        "post": {
            "summary": "OpenAI's Images API: n images at an exact size, as URLs or base64",
            "requestBody": {"required": True, "content": {JSON: {"schema": _ref("ImagesRequest")}}},
            "responses": {
                "200": _json(_ref("ImagesResponse"), "The images.", _REQUEST_ID),
                **_GENERATION_ERRORS,
            },
        }
    },
    "/v1/images/edits": {
        "post": {
            "summary": "Edit 1–4 images with a prompt (a mask: inpainting); OpenAI's edits API",
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {"schema": _ref("EditForm")},
                    JSON: {"schema": _ref("EditJSON")},
                },
            },
            "responses": {
                "200": _json(_ref("ImagesResponse"), "The images.", _REQUEST_ID),
                **_EDIT_ERRORS,
            },
        }
    },
    "/v1/images/variations": {
        "post": {
            "summary": "Variations of one image (an edit with a neutral prompt)",
            "requestBody": {
                "required": True,
                "content": {"multipart/form-data": {"schema": _ref("VariationForm")}},
            },
            "responses": {
                "200": _json(_ref("ImagesResponse"), "The images.", _REQUEST_ID),
                **_EDIT_ERRORS,
            },
        }
    },
    "/image/{key}": {
        "get": {
            "summary": "A stored image until it expires (ETag, Cache-Control: max-age = time left)",
            "security": [],
            "parameters": [
                _IMAGE_KEY,
                {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}},
            ],
            "responses": {
                "200": {
                    "description": "The image.",
                    "content": {
                        mime: {"schema": {"type": "string", "contentMediaType": mime}}
                        for mime in ("image/jpeg", "image/png", "image/webp")
                    },
                },
                "304": {"description": "Not modified (If-None-Match matched)."},
                "404": _error("Unknown or expired."),
                "503": _error("The image store cannot be read."),
            },
        },
        "delete": {
            "summary": "Remove an image before it expires (anyone with its link sees it until "
            "then)",
            "parameters": [_IMAGE_KEY],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["id", "object", "deleted"],
                        "properties": {
                            "id": {"type": "string"},
                            "object": {"const": "image"},
                            "deleted": {"const": True},
                        },
                    },
                    "Deleted.",
                ),
                "401": _GENERATION_ERRORS["401"],
                "404": _error("Unknown, expired or deleted already."),
                "503": _error("The image store cannot be written."),
            },
        },
    },
}
_PATHS["/static/{filename}"] = {
    "get": {
        "summary": "The page's own files (CSS, JavaScript)",
        "security": [],
        "parameters": [
            {"name": "filename", "in": "path", "required": True, "schema": {"type": "string"}}
        ],
        "responses": {
            "200": {"description": "The file.", "content": {"*/*": {"schema": {}}}},
            "304": {"description": "Not modified."},
            "404": _error("No such file."),
        },
    }
}


def _head(get: dict) -> dict:
    """Flask answers HEAD wherever it answers GET: the same statuses and headers, no body."""
    responses = {
        code: {key: value for key, value in response.items() if key != "content"}
        for code, response in get["responses"].items()
    }
    return {**get, "summary": f"{get['summary']} (headers only)", "responses": responses}


for _operations in _PATHS.values():
    if "get" in _operations:
        _operations["head"] = _head(_operations["get"])


VERSION = "1.0.0"


@functools.lru_cache(maxsize=4)
def document(settings: Settings) -> dict:
    """The document for this configuration: its models and its IMAGES_MAX_N. Built once per
    configuration and shared, so callers must not change it."""
    schemas = copy.deepcopy(_SCHEMAS)
    schemas["Model"]["properties"]["id"]["enum"] = [model.id for model in settings.models]
    schemas["ImagesRequest"]["properties"]["n"]["anyOf"][0]["maximum"] = settings.images_max_n
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "flux-api",
            "version": VERSION,
            "description": "OpenAI-compatible image generation with Cloudflare Workers AI.",
        },
        "paths": _PATHS,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
