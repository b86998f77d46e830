"""OpenAI-style API errors: what a request did wrong, raised from any layer.

Nothing here knows Flask or any other module of the service; flux_api/wire/errors.py is the one
table that turns the upstreams' and the store's own failures into these.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class APIError(Exception):
    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None
    # False tells the openai SDK (header x-should-retry) that repeating the call cannot help.
    should_retry: bool | None = None
    extra_headers: dict | None = None  # e.g. Retry-After

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"

    def body(self) -> dict:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def headers(self) -> dict[str, str]:
        headers = dict(self.extra_headers or {})
        if self.should_retry is not None:
            headers["x-should-retry"] = "true" if self.should_retry else "false"
        return headers


def invalid_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, code=code, param=param, should_retry=False)
