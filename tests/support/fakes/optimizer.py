"""A local fake of an OpenAI-compatible chat-completions server, used as the prompt optimizer."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from flask import Flask, Response, request

OPTIMIZER_KEY = "sk-optimizer-SECRET-77aa"
OPTIMIZER_MODEL = "gpt-4o-mini"


@dataclass
class FakeOptimizer:
    # "ok", "error" (HTTP 500), "hang", "empty", "garbage" (not a completion), "enormous",
    # "trickle" (a good answer, one byte every 0.3 s after its headers), "surrogate" (a
    # lone UTF-16 surrogate at the end, valid JSON)
    mode: str = "ok"
    latency: float = 0.0  # seconds before answering
    answer: str | None = None  # in mode "ok": the message content to send, instead of a prompt
    calls: list = field(default_factory=list)
    # The models it serves; another is answered as OpenAI does (404, model_not_found). None: any.
    known_models: set | None = None
    # As OpenAI's reasoning models: max_tokens refused (400), max_completion_tokens taken, and
    # a budget that small spent on reasoning (an empty message, finish_reason "length").
    completion_tokens_only: bool = False

    def reset(self) -> None:
        self.mode = "ok"
        self.latency = 0.0
        self.answer = None
        self.known_models = None
        self.completion_tokens_only = False
        self.calls.clear()

    def app(self) -> Flask:
        app = Flask("fake_optimizer")

        @app.post("/v1/chat/completions")
        def complete():
            return self.handle()

        return app

    def handle(self) -> Response:
        body = request.get_json(silent=True) or {}
        self.calls.append({"body": body, "headers": dict(request.headers)})
        if request.headers.get("Authorization") != f"Bearer {OPTIMIZER_KEY}":
            error = {
                "error": {
                    "message": "Incorrect API key provided",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                }
            }
            return Response(json.dumps(error), status=401, mimetype="application/json")
        if self.known_models is not None and body.get("model") not in self.known_models:
            error = {
                "error": {
                    "message": f"The model `{body.get('model')}` does not exist or you do not "
                    "have access to it.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "model_not_found",
                }
            }
            return Response(json.dumps(error), status=404, mimetype="application/json")
        if self.completion_tokens_only and "max_tokens" in body:
            error = {
                "error": {
                    "message": "Unsupported parameter: 'max_tokens' is not supported with this "
                    "model. Use 'max_completion_tokens' instead.",
                    "type": "invalid_request_error",
                    "param": "max_tokens",
                    "code": "unsupported_parameter",
                }
            }
            return Response(json.dumps(error), status=400, mimetype="application/json")
        if self.completion_tokens_only and body.get("max_completion_tokens", 1000) < 100:
            return Response(
                json.dumps(_completion(body, "", "length")), mimetype="application/json"
            )
        if self.mode == "error":
            return Response(
                '{"error": {"message": "boom", "type": "server_error"}}',
                status=500,
                mimetype="application/json",
            )
        time.sleep(self.latency)
        if self.mode == "hang":
            time.sleep(3600)
        if self.mode == "garbage":
            return Response("<html>nope</html>", mimetype="text/html")
        idea = body["messages"][-1]["content"].split("Idea: ", 1)[-1]
        content = {
            "ok": f'Prompt: "A cinematic, detailed rendering of {idea}, soft golden light, calm mood"',
            "trickle": f"A rendering of {idea}",
            "surrogate": f"A rendering of {idea} \ud83e",  # a model cut off mid-emoji
            "empty": "   ",
            "enormous": "word " * 5000,
        }[self.mode]
        if self.mode == "ok" and self.answer is not None:
            content = self.answer
        body = json.dumps(_completion(body, content)).encode()
        if self.mode == "trickle":
            return Response(_one_byte_at_a_time(body, 0.3), mimetype="application/json")
        return Response(body, mimetype="application/json")


def _completion(request_body: dict, content: str, finish_reason: str = "stop") -> dict:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request_body.get("model"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


def _one_byte_at_a_time(body: bytes, every: float):
    for i in range(len(body)):
        yield body[i : i + 1]
        time.sleep(every)
