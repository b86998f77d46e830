"""Cloudflare's REST API beside Workers AI's run endpoint: the two calls that cost nothing,
for `python -m flux_api doctor` (docs/workers-ai.md, "Free calls"): a token's verify endpoint
and an account's model search. Each answer is read into plain facts; a token never appears in
what this module returns or raises (Cloudflare's messages are scrubbed of it all the same).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from flux_api.config.accounts import Account
from flux_api.upstream.http import unreachable_reason

# What the REST API is called with when CF_API_BASE is an AI Gateway: the gateway proxies
# /ai/run only, and these two calls go to Cloudflare's API itself with the same token.
CLOUDFLARE_REST_ROOT = "https://api.cloudflare.com/client/v4"
_RUN_SUFFIX = re.compile(r"^(?P<root>.+)/accounts/[^/]+/ai/run$")
_GATEWAY_HOST = "gateway.ai.cloudflare.com"
_PAGE_SIZE = 100
# Cloudflare's error codes the doctor reads: 7003 "Could not route to …, perhaps your object
# identifier is invalid?" and 7000 "No route for that URI" (the account id in the path is not one
# it knows); 10000 "Authentication error" (this token may not use that account).
NO_ROUTE = frozenset({7000, 7003})
AUTHENTICATION = 10000
_MOST_PAGES = 10  # Cloudflare lists under 100 models: a loop that ends, whatever it answers


def rest_root(cf_api_base: str) -> tuple[str | None, str]:
    """The REST API's root (…/client/v4) for CF_API_BASE, and how it was found; None and why
    not when it cannot be known. The root is what comes before `/accounts/{account_id}/ai/run`
    (Cloudflare's own address, or a stand-in such as the tests' fake); an AI Gateway's is
    Cloudflare's API, as the gateway forwards only model runs."""
    base = cf_api_base.rstrip("/")
    matched = _RUN_SUFFIX.match(base)
    if matched:
        return matched["root"], "from CF_API_BASE"
    if urlsplit(base).hostname == _GATEWAY_HOST:
        return CLOUDFLARE_REST_ROOT, "Cloudflare's API (CF_API_BASE is an AI Gateway)"
    return None, (
        "CF_API_BASE ends neither in /accounts/{account_id}/ai/run nor is an AI Gateway, so "
        "the REST API's address is unknown"
    )


class RESTError(Exception):
    """A call that got no usable answer; its text names no token."""


class Unreachable(RESTError):
    """No HTTP answer at all: refused, no such host, timed out, TLS failed."""

    def __init__(self, host: str, reason: str):
        super().__init__(f"{host} cannot be reached ({reason})")
        self.host, self.reason = host, reason


class Refused(RESTError):
    """An HTTP answer that is not a success: its status, Cloudflare's error codes and first
    message (scrubbed of the token, cut short)."""

    def __init__(self, status: int, codes: tuple[int, ...], message: str):
        listed = ", ".join(str(code) for code in codes)
        super().__init__(f"HTTP {status}" + (f", code {listed}" if codes else "") + f": {message}")
        self.status, self.codes, self.message = status, codes, message


class NotCloudflare(RESTError):
    """An HTTP answer without Cloudflare's JSON envelope: an HTML page from a wrong address,
    a proxy or Cloudflare's edge. Its status and content type say which."""

    def __init__(self, status: int, content_type: str):
        kind = content_type.split(";")[0].strip() or "no content type"
        super().__init__(f"HTTP {status}, {kind}, not Cloudflare's JSON")
        self.status, self.content_type = status, kind


class Unverifiable(RESTError):
    """A token the user endpoint calls invalid whose account's endpoint cannot verify it (an
    account id it cannot route, or one the token may not use): the token or the account id is
    wrong, and nothing says which."""

    def __init__(self, user: Refused, account: Refused):
        super().__init__(f"user endpoint {user}; account endpoint {account}")
        self.user, self.account = user, account


@dataclass(frozen=True)
class TokenStatus:
    """What the verify endpoint said of a token that it knows: `active`, `disabled` or
    `expired`; `endpoint`: "user" or "account" (an account-owned token)."""

    status: str
    endpoint: str


class CloudflareREST:
    """The free calls, on one requests session with (connect, read) timeouts."""

    def __init__(self, root: str, timeout: tuple[float, float] = (5.0, 15.0)):
        self.root = root.rstrip("/")
        self.host = urlsplit(self.root).netloc
        self._timeout = timeout
        self._session = requests.Session()
        self._session.headers["User-Agent"] = "flux-api doctor"

    def close(self) -> None:
        self._session.close()

    def verify_token(self, account: Account) -> TokenStatus:
        """The token's status. A user token is verified at /user/tokens/verify; Cloudflare
        answers an account-owned token there with 401, code 1000 "Invalid API Token" (such
        tokens are verified only at /accounts/{id}/tokens/verify; one field report says 403),
        so that answer is asked again at the account's endpoint before the token is called
        invalid. The user endpoint goes first because it needs no account id: a token it
        accepts is good whatever CF_ACCOUNT_ID says, which keeps a wrong token and a wrong
        account id apart. When the account's endpoint cannot verify it either (an id it cannot
        route, or 403), either may be wrong: Unverifiable."""
        try:
            return TokenStatus(self._verify(account, "/user/tokens/verify"), "user")
        except Refused as refused:
            if refused.status not in (401, 403) and 1000 not in refused.codes:
                raise
            invalid = refused
        try:
            return TokenStatus(
                self._verify(account, f"/accounts/{account.id}/tokens/verify"), "account"
            )
        except Refused as refused:
            # An account id Cloudflare cannot route (7003, 7000), or one it will not let this
            # token use (403, 10000), cannot verify an account-owned token: either is wrong.
            if NO_ROUTE & set(refused.codes) or refused.status == 403:
                raise Unverifiable(invalid, refused) from None
            raise

    def _verify(self, account: Account, path: str) -> str:
        result = self._get(account, path)
        status = result.get("status") if isinstance(result, dict) else None
        if not isinstance(status, str):
            raise RESTError("the verify endpoint answered without a token status")
        return status

    def model_names(self, account: Account, wanted: set[str]) -> set[str]:
        """The names of the models the account's model search lists, page by page until every
        one of `wanted` is seen or the list ends (no filter by task: the list is short, and a
        filter would miss a model Cloudflare files under another task than Text-to-Image)."""
        found: set[str] = set()
        for page in range(1, _MOST_PAGES + 1):
            result = self._get(
                account,
                f"/accounts/{account.id}/ai/models/search",
                {"page": page, "per_page": _PAGE_SIZE},
            )
            if not isinstance(result, list):
                raise RESTError("the model search answered without a list of models")
            found |= {m["name"] for m in result if isinstance(m, dict) and "name" in m}
            if wanted <= found or len(result) < _PAGE_SIZE:
                break
        return found

    def _get(self, account: Account, path: str, params: dict | None = None) -> object:
        """The `result` of Cloudflare's envelope for one GET with the account's token."""
        try:
            response = self._session.get(
                self.root + path,
                params=params,
                headers={"Authorization": f"Bearer {account.token}"},
                timeout=self._timeout,
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise Unreachable(self.host, unreachable_reason(exc)) from None
        except requests.RequestException as exc:  # InvalidURL, too many redirects, …
            raise RESTError(f"the request failed ({type(exc).__name__})") from None
        # Apart from the call: an answer that is not JSON (requests.JSONDecodeError is a
        # RequestException too) is an answer, whose status says what answered.
        try:
            envelope = response.json()
        except ValueError:
            envelope = None
        if not isinstance(envelope, dict):
            raise NotCloudflare(response.status_code, response.headers.get("Content-Type", ""))
        if response.status_code == 200 and envelope.get("success") is True:
            return envelope.get("result")
        errors = [e for e in envelope.get("errors") or [] if isinstance(e, dict)]
        codes = tuple(e["code"] for e in errors if isinstance(e.get("code"), int))
        message = str(errors[0].get("message", "")) if errors else response.reason or ""
        raise Refused(response.status_code, codes, _scrubbed(message, account))


def _scrubbed(text: str, account: Account) -> str:
    """Cloudflare's message, cut short, its token blanked and its account id shortened as
    everywhere else (the label)."""
    if account.token:
        text = text.replace(account.token, "***")
    return text.replace(account.id, account.label)[:200]
