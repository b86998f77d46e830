"""OpenAI-style API errors, and the one table that turns upstream failures into them.

Nothing here knows Flask: views raise `APIError`, the client modules raise their own exceptions,
and `api_error_for` is the single place where either becomes a status, a type and a message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from . import workers_ai as wai

_log = logging.getLogger(__name__)


@dataclass
class APIError(Exception):
    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None
    # False tells the openai SDK (header x-should-retry) that repeating the call cannot help.
    should_retry: bool | None = None

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
        if self.should_retry is None:
            return {}
        return {"x-should-retry": "true" if self.should_retry else "false"}


def invalid_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, code=code, param=param, should_retry=False)


def _upstream(status: int, code: str, message: str, retry: bool | None = False) -> APIError:
    error_type = "api_error" if status >= 500 else "invalid_request_error"
    return APIError(status, message, type=error_type, code=code, should_retry=retry)


def api_error_for(exc: Exception) -> APIError:
    """Map any failure to the error a client sees; unknown exceptions become a bare 500."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, wai.NotConfigured):
        return _upstream(503, "cloudflare_not_configured", str(exc))
    if isinstance(exc, wai.QuotaExceeded):
        return APIError(
            429,
            "Cloudflare Workers AI's daily free allocation is used up "
            f"({exc.detail}). Try again after 00:00 UTC or move the account to a paid plan.",
            type="insufficient_quota",
            code="insufficient_quota",
            should_retry=False,
        )
    if isinstance(exc, wai.ContentFlagged):
        return APIError(
            400,
            "The image was blocked by Cloudflare's content filter. Rephrase the prompt and try again.",
            code="content_policy_violation",
            should_retry=False,
        )
    if isinstance(exc, wai.Misconfigured):
        return _upstream(
            502,
            "upstream_configuration",
            f"Cloudflare refused the request ({exc.detail}). Check {exc.setting}.",
        )
    if isinstance(exc, wai.InputRejected):
        return _upstream(
            502,
            "upstream_rejected_input",
            f"Workers AI rejected the request this service sent ({exc.detail}). "
            "Please report this to the service's operator.",
        )
    if isinstance(exc, wai.RequestTooLarge):
        return APIError(
            400,
            f"The request is too large for Workers AI ({exc.detail}). Shorten the prompt.",
            code="request_too_large",
            should_retry=False,
        )
    if isinstance(exc, wai.UpstreamTimeout):
        # Not retried by us, and the SDK is told not to: the generation may still run and be billed.
        return _upstream(
            504,
            "upstream_timeout",
            f"Workers AI did not answer within {exc.detail}. Try again in a moment.",
        )
    if isinstance(exc, wai.RateLimited):
        return APIError(
            429,
            f"Workers AI is rate limiting this account ({exc.detail}). Wait a little and try again.",
            type="rate_limit_exceeded",
            code="rate_limit_exceeded",
        )
    if isinstance(exc, wai.Unavailable):
        return _upstream(
            503,
            "upstream_unavailable",
            f"Workers AI is unavailable ({exc.detail}). Try again in a moment.",
            retry=None,
        )
    if isinstance(exc, wai.BadResponse):
        return _upstream(
            502,
            "upstream_bad_response",
            f"Workers AI answered with something that is not an image ({exc.detail}). Try again.",
            retry=None,
        )
    if isinstance(exc, wai.WorkersAIError):
        return _upstream(502, "upstream_error", f"Workers AI failed ({exc.detail}). Try again.", None)
    return APIError(500, "Internal server error.", type="server_error", code="internal_error")


def log_unexpected(exc: BaseException) -> None:
    """Log a bug without its traceback or message (either could carry request data or secrets):
    the exception's class and where it was raised are enough to find it."""
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    where = f"{frame.tb_frame.f_code.co_filename}:{frame.tb_lineno}" if frame else "unknown"
    _log.error("unexpected %s at %s", type(exc).__name__, where)
