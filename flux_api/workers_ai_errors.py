"""What can go wrong with a Workers AI call: one exception per failure class, and `classify`,
which reads Cloudflare's error envelope (DESIGN §3). errors.py maps these to HTTP."""

from __future__ import annotations


class WorkersAIError(Exception):
    """A failed generation; `detail` is a short, secret-free description of why."""

    retryable = False

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class NotConfigured(WorkersAIError):
    """CF_ACCOUNT_ID or CF_API_TOKEN is not set."""


class QuotaExceeded(WorkersAIError):
    """The daily free allocation is used up (4006, documented as 3036)."""


class ContentFlagged(WorkersAIError):
    """The content filter flagged the output."""


class Misconfigured(WorkersAIError):
    """Bad token, account or model: `setting` names what to check."""

    def __init__(self, detail: str, setting: str):
        super().__init__(detail)
        self.setting = setting


class InputRejected(WorkersAIError):
    """The model's schema rejected what we sent (5006): a bug on our side."""


class RequestTooLarge(WorkersAIError):
    """3006 / HTTP 413."""


class UpstreamTimeout(WorkersAIError):
    """No answer in time; never retried, as the generation may still run and be billed."""


class RateLimited(WorkersAIError):
    """A 429 that is not about the daily quota."""

    retryable = True


class Unavailable(WorkersAIError):
    """Out of capacity (3040), 502/503/504, or no connection: worth another try."""

    retryable = True


class BadResponse(WorkersAIError):
    """HTTP 200, but no image in it."""


class UpstreamFailed(WorkersAIError):
    """Any other failure."""


_SETTING_FOR_CODE = {
    10000: "CF_API_TOKEN",
    7000: "CF_ACCOUNT_ID (and CF_API_BASE)",
    5007: "FLUX_MODEL",
}


def classify(status: int, code: int | None, message: str) -> WorkersAIError:
    """Turn one error answer (HTTP status, Cloudflare error code, message) into an exception."""
    detail = f"code {code}: {message}" if code is not None else f"HTTP {status}: {message}"
    if "flagged" in message.lower():
        return ContentFlagged(detail)
    if code in (4006, 3036):
        return QuotaExceeded(detail)
    if code == 3040:
        return Unavailable(f"out of capacity, {detail}")
    if code in _SETTING_FOR_CODE:
        return Misconfigured(detail, _SETTING_FOR_CODE[code])
    if code == 5006:
        return InputRejected(detail)
    if code == 3006 or status == 413:
        return RequestTooLarge(detail)
    if code == 3007 or status == 408:
        return UpstreamTimeout(detail)
    if status == 429:
        return RateLimited(detail)
    if status in (502, 503, 504):
        return Unavailable(detail)
    if status in (401, 403):
        return Misconfigured(detail, "CF_API_TOKEN")
    if status == 404:
        return Misconfigured(detail, "CF_ACCOUNT_ID, CF_API_BASE and FLUX_MODEL")
    return UpstreamFailed(detail)
