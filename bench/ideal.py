"""The benchmark's baseline: an "ideal proxy" that only waits as long as Workers AI would.

Run under the same gunicorn settings as the app (`gunicorn -c gunicorn.conf.py bench.ideal:app`),
it shows what the machine, gunicorn and the load generator cost on their own. Asked to stream
(bench/burst.py), it sends its first line at once, then waits, like the app's progress lines.
"""

import json
import os
import random
import time

from flask import Flask, Response, jsonify, request

LATENCY = float(os.environ.get("BENCH_LATENCY", "3"))
JITTER = float(os.environ.get("BENCH_JITTER", "0.6"))
CONTENT = "🎨 Original Prompt: …\n📐 Image Specifications: 1024x1024\n![Generated image](…)"

app = Flask(__name__)


def _chunk(delta: dict, finish: str | None = None) -> str:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    body = {"id": "chatcmpl-ideal", "object": "chat.completion.chunk", "choices": [choice]}
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def _stream(wait: float):
    yield _chunk({"role": "assistant", "content": ""})
    yield _chunk({"content": "🎨 Original Prompt: …\n"})
    time.sleep(wait)
    yield _chunk({"content": CONTENT}, finish="stop")
    yield "data: [DONE]\n\n"


@app.post("/v1/chat/completions")
def chat_completions():
    wait = random.uniform(LATENCY - JITTER, LATENCY + JITTER)
    if (request.get_json(silent=True) or {}).get("stream") is True:
        return Response(_stream(wait), mimetype="text/event-stream")
    time.sleep(wait)
    return jsonify(
        {
            "id": "chatcmpl-ideal",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": "ideal",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": CONTENT}}],
        }
    )
