"""OpenAI wire shapes: completions, chunks, SSE frames, model lists. Pure functions."""

from __future__ import annotations

import json
import math
import secrets
import time
from dataclasses import dataclass

DONE = "data: [DONE]\n\n"


@dataclass(frozen=True)
class SSEFrame:
    """One Server-Sent Event; a frame with only a comment is a keep-alive."""

    data: str | None = None
    event: str | None = None
    comment: str | None = None

    def encode(self) -> str:
        lines = []
        if self.comment is not None:
            lines.append(f": {self.comment}")
        if self.event is not None:
            lines.append(f"event: {self.event}")
        if self.data is not None:
            lines.extend(f"data: {line}" for line in self.data.split("\n"))
        return "\n".join(lines) + "\n\n"


def sse_json(payload: dict) -> str:
    return SSEFrame(data=json.dumps(payload, ensure_ascii=False, separators=(",", ":"))).encode()


def keep_alive() -> str:
    return SSEFrame(comment="keep-alive").encode()


def completion_id() -> str:
    return f"chatcmpl-{secrets.token_hex(12)}"


def estimate_tokens(text: str) -> int:
    """A rough token count (about four characters a token); images have no real tokens."""
    return math.ceil(len(text) / 4)


def usage(prompt: str, content: str) -> dict:
    prompt_tokens, completion_tokens = estimate_tokens(prompt), estimate_tokens(content)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion(cid: str, model: str, content: str, usage_: dict) -> dict:
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": usage_,
    }


def chunk(cid: str, model: str, delta: dict, finish_reason: str | None = None) -> dict:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def usage_chunk(cid: str, model: str, usage_: dict) -> dict:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [],
        "usage": usage_,
    }


def model_object(model_id: str, owned_by: str, created: int) -> dict:
    return {"id": model_id, "object": "model", "created": created, "owned_by": owned_by}


def model_list(models: list[dict]) -> dict:
    return {"object": "list", "data": models}
