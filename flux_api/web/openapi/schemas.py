"""The OpenAPI document's components/schemas: the bodies the service reads and answers.

Bodies are described as leniently as the service reads them (unknown fields are accepted and
ignored, as OpenAI clients send many). document() fills in the models and IMAGES_MAX_N.
"""

from __future__ import annotations

_REF = "#/components/schemas/"


def ref(name: str) -> dict:
    return {"$ref": _REF + name}


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


SCHEMAS: dict = {
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
            "data": {"type": "array", "items": ref("Model")},
        },
    },
    "UsageCounts": {
        "type": "object",
        "description": "Counts by name (an outcome, endpoint, model or error code).",
        "additionalProperties": {"type": "integer", "minimum": 0},
    },
    "UsageHours": {
        "type": "object",
        "description": "Today only: images per UTC hour, all 24 (`00` to `23`).",
        "additionalProperties": {"type": "integer", "minimum": 0},
    },
    "UsageAccount": {
        "type": "object",
        "required": ["id", "calls", "neurons", "neurons_estimated"],
        "properties": {
            "id": {"type": "string", "description": "The account id shortened."},
            "state": {"type": "string", "description": "Today only: as /healthz says."},
            "until": {"type": "string", "format": "date-time"},
            "calls": {
                **ref("UsageCounts"),
                "description": "Workers AI tries by outcome: ok, quota, refused, capacity, "
                "rate_limited, rejected, error.",
            },
            "neurons": {"type": "number", "description": "Reported and estimated together."},
            "neurons_estimated": {
                "type": "number",
                "description": "The part of `neurons` estimated from Cloudflare's published "
                "prices (for calls it did not report).",
            },
            "share": {"type": ["number", "null"], "description": "Of CF_DAILY_NEURONS (today)."},
            "runs_out": {
                "type": ["string", "null"],
                "description": 'Today only: a UTC time at today\'s rate, "not today" or '
                '"used up"; null without a cap.',
            },
        },
    },
    "UsageKey": {
        "type": "object",
        "required": [
            "name",
            "images",
            "by_endpoint",
            "by_model",
            "failed",
            "refused",
            "client_left",
        ],
        "properties": {
            "name": {"type": "string", "description": "The API key's name, never the key."},
            "images": {"type": "integer", "minimum": 0},
            "by_endpoint": ref("UsageCounts"),
            "by_model": ref("UsageCounts"),
            "failed": {**ref("UsageCounts"), "description": "Generations that failed."},
            "refused": {**ref("UsageCounts"), "description": "Requests refused, by code."},
            "client_left": {
                "type": "integer",
                "minimum": 0,
                "description": "Generations stopped, or made and not kept, as their client left.",
            },
            "hours": ref("UsageHours"),
        },
    },
    "UsageDay": {
        "type": "object",
        "required": ["date", "keys", "images"],
        "properties": {
            "date": {"type": "string", "format": "date"},
            "accounts": {"type": "array", "items": ref("UsageAccount")},
            "neurons": {"type": "number"},
            "neurons_estimated": {"type": "number"},
            "pool": {
                "type": "object",
                "description": "Today only: the whole pool's neurons, share and run-out time.",
            },
            "keys": {"type": "array", "items": ref("UsageKey")},
            "images": {"type": "integer", "minimum": 0},
            "hours": ref("UsageHours"),
        },
    },
    "UsageReport": {
        "type": "object",
        "required": ["object", "now", "today", "days"],
        "properties": {
            "object": {"const": "usage"},
            "now": {"type": "string", "format": "date-time"},
            "daily_neurons": {"type": ["integer", "null"], "description": "CF_DAILY_NEURONS."},
            "today": ref("UsageDay"),
            "days": {
                "type": "array",
                "items": ref("UsageDay"),
                "description": "Today and the 30 days before it, newest first.",
            },
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
            "pool_share_today": {
                "type": "number",
                "minimum": 0,
                "description": "The share of the pool's daily allocation (CF_DAILY_NEURONS per "
                "account) used today, estimates included; absent with no cap.",
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
            "usage": ref("Usage"),
            "flux_api": ref("ReplyFacts"),
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
