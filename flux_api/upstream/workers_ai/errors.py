"""What can go wrong with a Workers AI call: one exception per failure class, and `classify`,
which reads Cloudflare's error envelope (`{"success": false, "errors": [{"code": …, "message": …}]}`
with an HTTP status). errors.py maps these to HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class WorkersAIError(Exception):
    """A failed generation; `detail` is a short, secret-free description of why."""

    retryable = False

    def __init__(self, detail: str, retry_after: int | None = None):
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after  # seconds, when Cloudflare or the quota's reset says


class NotConfigured(WorkersAIError):
    """CF_ACCOUNT_ID or CF_API_TOKEN is not set."""

    def __init__(self, detail: str = ""):
        super().__init__(
            detail
            or "Cloudflare credentials are missing: set CF_ACCOUNT_ID and CF_API_TOKEN "
            "(or CF_ACCOUNTS)."
        )


class QuotaExceeded(WorkersAIError):
    """The daily free allocation is used up (4006, documented as 3036)."""


class ContentFlagged(WorkersAIError):
    """The content filter flagged the output."""


class Misconfigured(WorkersAIError):
    """Bad token, account or model: `setting` names what to check. `account_problem`: the
    refusal is about the account called (its token or id), so another account may work."""

    def __init__(self, detail: str, setting: str, account_problem: bool = False):
        super().__init__(detail)
        self.setting = setting
        self.account_problem = account_problem


class InputRejected(WorkersAIError):
    """The model's schema rejected what we sent (5006): a bug on our side."""


class RequestTooLarge(WorkersAIError):
    """3006 / HTTP 413."""


class UpstreamTimeout(WorkersAIError):
    """No answer in time (ours, 3007, 408, or a bare 504 from a proxy on the way); never
    retried, as the generation may still run and be billed."""


class TLSFailed(WorkersAIError):
    """The TLS handshake with CF_API_BASE failed: a certificate or proxy problem, not a
    transient one, and nothing was sent."""


class RateLimited(WorkersAIError):
    """A 429 that is not about the daily quota."""

    retryable = True


class Unavailable(WorkersAIError):
    """502/503, no connection, or out of capacity: worth another try."""

    retryable = True


class OutOfCapacity(Unavailable):
    """3040: no capacity for this account at this moment (another account may have some)."""


class BadResponse(WorkersAIError):
    """HTTP 200, but no image in it."""


class UpstreamFailed(WorkersAIError):
    """Any other failure."""


_SETTING_FOR_CODE = {
    10000: "CF_API_TOKEN (or CF_ACCOUNTS)",
    7000: "CF_ACCOUNT_ID or CF_ACCOUNTS (and CF_API_BASE)",
    5007: "FLUX_MODEL",
}
_ACCOUNT_CODES = (10000, 7000)


def seconds_until_quota_reset(now: datetime | None = None) -> int:
    """Seconds to the next 00:00 UTC, when Cloudflare resets the daily free allocation."""
    now = now or datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((midnight - now).total_seconds() + 0.999))


def parse_retry_after(value: str | None) -> int | None:
    """Cloudflare's Retry-After in whole seconds; a date or junk is ignored (never echoed)."""
    if value and value.strip().isdigit():
        return min(int(value.strip()), 86400)
    return None


def classify(
    status: int, code: int | None, message: str, retry_after: int | None = None
) -> WorkersAIError:
    """Turn one error answer (HTTP status, Cloudflare error code, message, Retry-After) into
    an exception."""
    error = _classify(status, code, message)
    if isinstance(error, QuotaExceeded):
        error.retry_after = retry_after or seconds_until_quota_reset()
    elif retry_after is not None:
        error.retry_after = retry_after
    return error


def _classify(status: int, code: int | None, message: str) -> WorkersAIError:
    detail = f"code {code}: {message}" if code is not None else f"HTTP {status}: {message}"
    if "flagged" in message.lower():
        return ContentFlagged(detail)
    if code in (4006, 3036) or (status == 429 and "daily free allocation" in message.lower()):
        return QuotaExceeded(detail)
    if code == 3040:
        return OutOfCapacity(f"out of capacity, {detail}")
    if code in _SETTING_FOR_CODE:
        return Misconfigured(detail, _SETTING_FOR_CODE[code], code in _ACCOUNT_CODES)
    # 5006: the schema refused a field; 5004: bad base64; 3030 "Model input is not valid": a
    # required input (an edit's image or mask) missing. Each is a bug in what we sent.
    if code in (5006, 5004) or (code == 3030 and "input is not valid" in message.lower()):
        return InputRejected(detail)
    if code == 3006 or status == 413:
        return RequestTooLarge(detail)
    # 504 (and Cloudflare's 524) come from a proxy that gave up waiting: like 3007, the
    # generation may still be running and billed, so it is not retried.
    if code == 3007 or status in (408, 504, 524):
        return UpstreamTimeout(detail)
    if status == 429:
        return RateLimited(detail)
    if status in (502, 503):
        return Unavailable(detail)
    if status in (401, 403):
        return Misconfigured(detail, "CF_API_TOKEN (or CF_ACCOUNTS)", account_problem=True)
    if status == 404:
        return Misconfigured(detail, "CF_ACCOUNT_ID, CF_API_BASE and FLUX_MODEL")
    return UpstreamFailed(detail)


def call_outcome(exc: WorkersAIError) -> str:
    """What a failed try was, in the words of events.UpstreamCall."""
    if isinstance(exc, QuotaExceeded):
        return "quota"
    if isinstance(exc, Misconfigured):
        return "refused"
    if isinstance(exc, OutOfCapacity):
        return "capacity"
    if isinstance(exc, RateLimited):
        return "rate_limited"
    if isinstance(exc, (ContentFlagged, InputRejected, RequestTooLarge)):
        return "rejected"
    return "error"
