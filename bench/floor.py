"""The floor: one chat generation made with the project's fixed parts and nothing else, to
see how much of the app's CPU per generation any rewrite of ours could remove.

    gunicorn -c gunicorn.conf.py bench.floor:app       (or, interleaved with the app:)
    python bench/compare.py ideal=. floor=.:bench.floor:app app=.

Under the same gunicorn settings and worker as the app: Flask parses the JSON body, the
service's own Workers AI transport (requests, the deadline, the envelope's decoding) makes the
call, the service's image store writes the image (its file and SQLite row), and Flask answers
with JSON. No authentication, admission, chat reading, account pool, events, log lines, usage
ledger or metrics. Bench only. Reads the app's CF_API_BASE, CF_ACCOUNT_ID, CF_API_TOKEN and
DATA_DIR.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from flask import Flask, jsonify, request

from flux_api.budget import Budget
from flux_api.config.accounts import Account
from flux_api.config.models import find_model
from flux_api.store.disk import DiskImageStore
from flux_api.upstream.workers_ai.fields import build_fields
from flux_api.upstream.workers_ai.transport import Transport

MODEL = find_model("flux-1-schnell")
ACCOUNT = Account(os.environ["CF_ACCOUNT_ID"], os.environ["CF_API_TOKEN"])
transport = Transport(os.environ["CF_API_BASE"], (ACCOUNT.token,), (5.0, 120.0))
store = DiskImageStore(Path(os.environ["DATA_DIR"]) / "images", ttl=1800, size_limit_bytes=4 << 30)

app = Flask(__name__)


@app.post("/v1/chat/completions")
def chat_completions():
    prompt = request.get_json()["messages"][-1]["content"]
    assert MODEL is not None
    fields = build_fields(MODEL, prompt, None, 4, None)
    image, _ = transport.call_once(ACCOUNT, MODEL, fields, Budget(time.monotonic() + 120))
    key = store.put(image)
    content = f"![Generated image]({request.host_url}image/{key})"
    return jsonify(
        {
            "id": "chatcmpl-floor",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": MODEL.id,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
        }
    )
