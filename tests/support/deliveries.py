"""One request through each way a generation is delivered (chat, stream, Images API) and its
outcome, for the tests that try a fault or a secret through all three."""

from __future__ import annotations

import time
from dataclasses import dataclass

from tests.support.service import content_of, read_sse

DELIVERIES = ("chat", "stream", "images")


@dataclass
class Outcome:
    status: int  # a stream's is 200 once it has started; its error arrives in-band
    error: dict | None
    text: str  # the reply's markdown, or the Images API's JSON


def deliver(service, delivery: str, prompt: str = "a fox") -> Outcome:
    if delivery == "images":
        response = service.post("/v1/images/generations", {"prompt": prompt, "size": "512x512"})
        body = response.json()
        return Outcome(response.status_code, body.get("error"), response.text)
    if delivery == "chat":
        response = service.chat(prompt)
        body = response.json()
        text = body["choices"][0]["message"]["content"] if "choices" in body else ""
        return Outcome(response.status_code, body.get("error"), text)
    response = service.chat(prompt, stream=True)
    if response.headers.get("Content-Type", "").startswith("application/json"):
        # refused before the stream began (a bad request, every account parked): plain JSON
        return Outcome(response.status_code, response.json().get("error"), response.text)
    events = [e for e in read_sse(response, time.monotonic()) if e.data]
    assert events[-1].data == "[DONE]", "every stream ends with [DONE], failed or not"
    errors = [e.json["error"] for e in events[:-1] if "error" in e.json]
    return Outcome(response.status_code, errors[0] if errors else None, content_of(events))
