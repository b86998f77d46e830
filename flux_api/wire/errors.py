"""The one table that turns failures into OpenAI-style errors: the upstreams' own exceptions, the
store's, a request's deadline, and bugs (a 500, logged without request data).

Views raise `APIError` (flux_api/errors.py); the client modules raise their own exceptions;
`api_error_for` is the single place where either becomes a status, a type and a message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flux_api.budget import ClientLeft, DeadlineExceeded, Stopped
from flux_api.errors import APIError
from flux_api.store.images import StoreFull, StoreUnavailable
from flux_api.upstream.workers_ai import errors as wai

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Rule:
    status: int
    type: str
    code: str
    message: str  # formatted with the exception's `detail` (and `setting`, where it has one)


# The one table from failures of a generation to what a client sees; the message says what to
# do. Every one of these answers says `x-should-retry: false`: either the service has already
# retried what a retry can fix, or a repeat could bill the operator twice (the call may have
# run), or it cannot help. Without it the openai SDK repeats each failed call twice more.
_UPSTREAM_RULES: dict[type, _Rule] = {
    wai.NotConfigured: _Rule(503, "api_error", "cloudflare_not_configured", "{detail}"),
    StoreUnavailable: _Rule(
        503,
        "api_error",
        "store_unavailable",
        "The image store cannot be used ({detail}); the operator should check {setting}.",
    ),
    StoreFull: _Rule(
        507,
        "api_error",
        "insufficient_storage",
        "The images were made but cannot be kept: {detail} (STORE_SIZE_LIMIT_MB). Ask for "
        "fewer or smaller images, or use response_format b64_json.",
    ),
    # Never a request's own answer: it fails with the failure that stopped it. Mapped all the
    # same, so that no path can turn it into a 500.
    Stopped: _Rule(502, "api_error", "upstream_error", "Workers AI failed ({detail}). Try again."),
    ClientLeft: _Rule(
        499, "invalid_request_error", "client_closed_request", "The client closed the request."
    ),
    DeadlineExceeded: _Rule(
        504,
        "api_error",
        "upstream_timeout",
        "The image was not ready within the service's deadline ({detail}; UPSTREAM_TIMEOUT "
        "sets it). Try again in a moment.",
    ),
    wai.QuotaExceeded: _Rule(
        429,
        "insufficient_quota",
        "insufficient_quota",
        "Workers AI cannot make more images now: {detail}. Try again then, or the operator "
        "can move an account to Cloudflare's paid plan.",
    ),
    wai.ContentFlagged: _Rule(
        400,
        "invalid_request_error",
        "content_policy_violation",
        "The image was blocked by Cloudflare's content filter. Rephrase the prompt and try again.",
    ),
    wai.Misconfigured: _Rule(
        502,
        "api_error",
        "upstream_configuration",
        "Cloudflare refused the request ({detail}). Check {setting}.",
    ),
    wai.InputRejected: _Rule(
        502,
        "api_error",
        "upstream_rejected_input",
        "Workers AI rejected the request this service sent ({detail}). "
        "Please report this to the service's operator.",
    ),
    wai.RequestTooLarge: _Rule(
        400,
        "invalid_request_error",
        "request_too_large",
        "The request is too large for Workers AI ({detail}). Shorten the prompt.",
    ),
    # Not retried by us, and the SDK is told not to: the generation may still run and be billed.
    wai.UpstreamTimeout: _Rule(
        504,
        "api_error",
        "upstream_timeout",
        "Workers AI did not answer within {detail}. Try again in a moment.",
    ),
    wai.TLSFailed: _Rule(
        502,
        "api_error",
        "upstream_tls_error",
        "The TLS connection to Workers AI failed ({detail}). The operator should check "
        "CF_API_BASE and the CA certificates (REQUESTS_CA_BUNDLE).",
    ),
    wai.RateLimited: _Rule(
        429,
        "rate_limit_exceeded",
        "rate_limit_exceeded",
        "Workers AI is rate limiting this account ({detail}). Wait a little and try again.",
    ),
    wai.Unavailable: _Rule(
        503,
        "api_error",
        "upstream_unavailable",
        "Workers AI is unavailable ({detail}). Try again in a moment.",
    ),
    wai.BadResponse: _Rule(
        502,
        "api_error",
        "upstream_bad_response",
        "Workers AI answered with something that is not an image ({detail}). Try again.",
    ),
    wai.WorkersAIError: _Rule(
        502,
        "api_error",
        "upstream_error",
        "Workers AI failed ({detail}). Try again.",
    ),
}


def api_error_for(exc: BaseException) -> APIError:
    """Map any failure to the error a client sees; unknown exceptions become a bare 500."""
    if isinstance(exc, APIError):
        return exc
    for cls in type(exc).__mro__:
        rule = _UPSTREAM_RULES.get(cls)
        if rule is not None:
            detail = getattr(exc, "detail", str(exc))
            message = rule.message.format(detail=detail, setting=getattr(exc, "setting", ""))
            retry_after = getattr(exc, "retry_after", None)
            return APIError(
                rule.status,
                message,
                rule.type,
                rule.code,
                should_retry=False,
                extra_headers={"Retry-After": str(retry_after)} if retry_after else None,
            )
    # A bug may strike after Workers AI has run (and billed): a repeat could bill again.
    return APIError(
        500,
        "Internal server error.",
        type="server_error",
        code="internal_error",
        should_retry=False,
    )


def log_unexpected(exc: BaseException) -> None:
    """Log a bug without its traceback or message (either could carry request data or secrets):
    the exception's class and where it was raised are enough to find it."""
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    where = f"{frame.tb_frame.f_code.co_filename}:{frame.tb_lineno}" if frame else "unknown"
    _log.error("unexpected %s at %s", type(exc).__name__, where)
