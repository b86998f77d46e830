"""The benchmark's baseline: an "ideal proxy" that only waits as long as Workers AI would.

Run under the same gunicorn settings as the app (`gunicorn -c gunicorn.conf.py bench.ideal:app`),
it shows what the machine, gunicorn and the load generator cost on their own.
"""

import os
import random
import time

from flask import Flask, jsonify

LATENCY = float(os.environ.get("BENCH_LATENCY", "3"))
JITTER = float(os.environ.get("BENCH_JITTER", "0.6"))

app = Flask(__name__)


@app.post("/v1/chat/completions")
def chat_completions():
    time.sleep(random.uniform(LATENCY - JITTER, LATENCY + JITTER))
    content = "🎨 Original Prompt: …\n📐 Image Specifications: 1024x1024\n![Generated image](…)"
    return jsonify(
        {
            "id": "chatcmpl-ideal",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": "ideal",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
        }
    )
