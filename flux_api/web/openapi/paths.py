"""The OpenAPI document's paths: every route Flask serves, its parameters and its answers."""

from __future__ import annotations

from flux_api.web.openapi.schemas import ref

JSON = "application/json"


def _json(schema: dict, description: str, headers: dict | None = None) -> dict:
    response: dict = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _error(description: str, headers: dict | None = None) -> dict:
    return _json(ref("Error"), description, headers)


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

PATHS: dict = {
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
    "/usage": {
        "get": {
            "summary": "The usage page: an empty shell, never a number; its script asks "
            "/v1/usage/view with the key saved in this browser",
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
                "200": _json(ref("Health"), "Ready."),
                "503": _json(
                    ref("Health"),
                    "The image store cannot be written or reached.",
                ),
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Metrics in Prometheus's text format, for METRICS_KEY (any API key "
            "while it is not set); docs/metrics.md lists them",
            "responses": {
                "200": {
                    "description": "Every worker's counts and the shared state now, in the text "
                    "format 0.0.4.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                "401": _GENERATION_ERRORS["401"],
                "403": _error("METRICS_KEY is set, and this is another key.", _SHOULD_RETRY),
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
                "200": _json(ref("ModelList"), "The models."),
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
                "200": _json(ref("Model"), "The model."),
                "401": _GENERATION_ERRORS["401"],
                "404": _error("No such model."),
            },
        }
    },
    "/v1/usage": {
        "get": {
            "summary": "Usage per account and per key name, today and the 30 days before",
            "description": "METRICS_KEY (or any API key when it is not set) sees every account "
            "and key; another key sees only its own images and refusals.",
            "responses": {
                "200": _json(ref("UsageReport"), "The usage."),
                "401": _GENERATION_ERRORS["401"],
                "503": _error("The usage ledger cannot be read now."),
            },
        }
    },
    "/v1/usage/view": {
        "get": {
            "summary": "/v1/usage drawn: an HTML fragment with inline SVG charts, for the usage "
            "page",
            "description": "Who sees what is as for /v1/usage.",
            "responses": {
                "200": {
                    "description": "HTML (a fragment, to insert into /usage)",
                    "content": {"text/html": {"schema": {"type": "string"}}},
                },
                "401": _GENERATION_ERRORS["401"],
                "503": _error("The usage ledger cannot be read now."),
            },
        }
    },
    "/v1/chat/completions": {
        "post": {
            "summary": "Generate an image from the last user message; reply in markdown",
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": ref("ChatCompletionRequest")}},
            },
            "responses": {
                "200": {
                    "description": "A chat.completion, or with `stream: true` an SSE stream.",
                    "headers": _REQUEST_ID,
                    "content": {
                        JSON: {"schema": ref("ChatCompletion")},
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
            "requestBody": {"required": True, "content": {JSON: {"schema": ref("ImagesRequest")}}},
            "responses": {
                "200": _json(ref("ImagesResponse"), "The images.", _REQUEST_ID),
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
                    "multipart/form-data": {"schema": ref("EditForm")},
                    JSON: {"schema": ref("EditJSON")},
                },
            },
            "responses": {
                "200": _json(ref("ImagesResponse"), "The images.", _REQUEST_ID),
                **_EDIT_ERRORS,
            },
        }
    },
    "/v1/images/variations": {
        "post": {
            "summary": "Variations of one image (an edit with a neutral prompt)",
            "requestBody": {
                "required": True,
                "content": {"multipart/form-data": {"schema": ref("VariationForm")}},
            },
            "responses": {
                "200": _json(ref("ImagesResponse"), "The images.", _REQUEST_ID),
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
    "/static/{filename}": {
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
    },
}


def _head(get: dict) -> dict:
    """Flask answers HEAD wherever it answers GET: the same statuses and headers, no body."""
    responses = {
        code: {key: value for key, value in response.items() if key != "content"}
        for code, response in get["responses"].items()
    }
    return {**get, "summary": f"{get['summary']} (headers only)", "responses": responses}


for _operations in PATHS.values():
    if "get" in _operations:
        _operations["head"] = _head(_operations["get"])
