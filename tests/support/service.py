"""The service as the system tests talk to it: its API key, a client for it on a real port, and
the server-sent events of its streams."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import requests

from tests.support.fakes.optimizer import OPTIMIZER_KEY
from tests.support.fakes.workers_ai import TOKEN, FakeWorkersAI

API_KEY = "sk-test-SECRET-key-one"
SECRETS = (API_KEY, TOKEN, OPTIMIZER_KEY)


@dataclass
class Service:
    url: str
    app: object = None

    def get(self, path: str, key: str | None = API_KEY, **kwargs) -> requests.Response:
        return requests.get(
            self.url + path, headers=_auth(key, kwargs.pop("headers", {})), timeout=30, **kwargs
        )

    def post(self, path: str, body=None, key: str | None = API_KEY, **kwargs) -> requests.Response:
        headers = _auth(key, kwargs.pop("headers", {}))
        return requests.post(self.url + path, json=body, headers=headers, timeout=30, **kwargs)

    def chat(
        self, content, key: str | None = API_KEY, headers: dict | None = None, **body
    ) -> requests.Response:
        messages = [{"role": "user", "content": content}]
        return self.post(
            "/v1/chat/completions",
            {"messages": messages, **body},
            key=key,
            headers=headers or {},
            stream=body.get("stream", False),
        )


def _auth(key: str | None, headers: dict) -> dict:
    return {**headers, "Authorization": f"Bearer {key}"} if key else headers


@dataclass
class SSEEvent:
    at: float  # seconds since the request was sent
    comment: str | None = None
    data: str | None = None

    @property
    def json(self) -> dict:
        return json.loads(self.data)


def read_sse(response: requests.Response, started: float) -> list[SSEEvent]:
    """Every frame of a stream with the time it arrived, comments (keep-alives) included."""
    events = []
    for line in response.iter_lines(decode_unicode=True):
        if not line:
            continue
        now = time.monotonic() - started
        if line.startswith(":"):
            events.append(SSEEvent(now, comment=line[1:].strip()))
        elif line.startswith("data: "):
            events.append(SSEEvent(now, data=line[len("data: ") :]))
    return events


def content_of(events: list[SSEEvent]) -> str:
    return "".join(
        e.json["choices"][0]["delta"].get("content", "")
        for e in events
        if e.data and e.data != "[DONE]" and e.json.get("choices")
    )


def cf_api_base(fake: FakeWorkersAI) -> str:
    return f"{fake.url}/client/v4/accounts/{{account_id}}/ai/run"
