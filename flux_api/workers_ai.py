"""Client for the Cloudflare Workers AI REST API (`POST {base}/{model}`), one per app.

It encodes each request the way the model's schema wants (models.py), decodes the answer into
image bytes, retries what a retry can fix, and raises its own exceptions for the rest; errors.py
maps those to HTTP.
"""

from __future__ import annotations

import binascii
import json
import logging
import os
import threading
import time

import pybase64
import requests
from requests.adapters import HTTPAdapter
from requests.models import PreparedRequest
from urllib3.exceptions import HTTPError, ProtocolError

from .budget import Budget
from .imaging import is_complete, sniff_type
from .models import EditInput, Encoding, ModelProfile, ResponseForm
from .upstream_http import DeadlineAdapter, fetch, never_sent, tls_reason
from .workers_ai_errors import (
    BadResponse,
    NotConfigured,
    TLSFailed,
    Unavailable,
    UpstreamFailed,
    UpstreamTimeout,
    WorkersAIError,
    classify,
    parse_retry_after,
)

log = logging.getLogger(__name__)


class WorkersAIClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float,
        connect_timeout: float = 10.0,
        max_tries: int = 3,
        backoff: float = 0.5,
        concurrency: int = 0,
    ):
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = (connect_timeout, timeout)
        self._max_tries = max_tries
        self._backoff = backoff
        self._local = threading.local()
        self._headers = {"Authorization": f"Bearer {token}", "User-Agent": "flux-api"}
        self._proxies = requests.utils.get_environ_proxies(self.base_url) if self.base_url else {}
        self._verify = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        )
        # UPSTREAM_CONCURRENCY: calls in flight at once from this process (0: no cap).
        self._slots = threading.BoundedSemaphore(concurrency) if concurrency else None
        # Seconds a successful call of each model took lately: a retry that could not finish
        # before the request's deadline is not started (it would be billed, then abandoned).
        self._typical_seconds: dict[str, float] = {}

    @property
    def configured(self) -> bool:
        return bool(self.base_url and self._token)

    def _adapter(self) -> HTTPAdapter:
        """This thread's connection pool (requests advises against sharing one across threads).

        Requests go straight to requests' HTTPAdapter: a Session would add cookie jars, hooks,
        redirects and settings merging that a single-endpoint API client never uses, and cost
        0.6 ms of CPU per call here (measured with bench/run.py)."""
        adapter = getattr(self._local, "adapter", None)
        if adapter is None:
            adapter = self._local.adapter = DeadlineAdapter(pool_connections=1, pool_maxsize=1)
        return adapter

    def _post(
        self, url: str, fields: dict, multipart: bool, read_timeout: float
    ) -> requests.Response:
        request = PreparedRequest()
        request.prepare_method("POST")
        request.prepare_url(url, None)
        request.prepare_headers(self._headers)
        if multipart:
            request.prepare_body(None, {k: _part(k, v) for k, v in fields.items()})
        else:
            request.prepare_body(None, None, json=fields)
        return self._adapter().send(
            request,
            stream=True,
            timeout=(min(self._timeout[0], read_timeout), read_timeout),
            verify=self._verify,
            proxies=self._proxies,
        )

    def generate(
        self,
        model: ModelProfile,
        prompt: str,
        size: tuple[int, int] | None = None,
        steps: int | None = None,
        extras: dict | None = None,
        budget: Budget | None = None,
        images: tuple[bytes, ...] = (),
        mask: bytes | None = None,
    ) -> bytes:
        """Run one text-to-image call and return the image bytes (type checked from the bytes).

        `budget` bounds the whole call, queueing and retries included, and stops it before any
        try once the client has left."""
        if not self.configured:
            raise NotConfigured(
                "Cloudflare credentials are missing: set CF_ACCOUNT_ID and CF_API_TOKEN."
            )
        budget = budget or Budget.unlimited()
        fields = build_fields(model, prompt, size, steps, extras)
        fields.update(image_fields(model, images, mask))
        attempt = 1
        while True:
            try:
                if self._slots is None:
                    return self._try(model, fields, budget)
                budget.wait_for(self._slots, "waiting for a free upstream slot")
                try:
                    return self._try(model, fields, budget)
                finally:
                    self._slots.release()
            except WorkersAIError as exc:
                # Cloudflare's Retry-After, when it gives one, is the least wait.
                delay = max(self._backoff * 2 ** (attempt - 1), exc.retry_after or 0)
                if not self._worth_retrying(exc, attempt, model, budget, delay):
                    raise
                log.warning(
                    "workers_ai retry model=%s attempt=%d reason=%r wait=%.1fs",
                    model.short_name,
                    attempt,
                    exc.detail,
                    delay,
                )
                time.sleep(delay)
                attempt += 1

    def _worth_retrying(
        self, exc: WorkersAIError, attempt: int, model: ModelProfile, budget: Budget, delay: float
    ) -> bool:
        if not exc.retryable or attempt >= self._max_tries:
            return False
        needed = delay + self._typical_seconds.get(model.id, 0.0)
        if budget.remaining() < needed:
            log.info(
                "workers_ai no retry model=%s: %.1f s left, a try takes about %.1f s",
                model.short_name,
                budget.remaining(),
                needed,
            )
            return False
        return True

    def _try(self, model: ModelProfile, fields: dict, budget: Budget) -> bytes:
        budget.check("before calling Workers AI")
        started = time.monotonic()
        image = self._call_once(model, fields, budget)
        took = time.monotonic() - started
        previous = self._typical_seconds.get(model.id, took)
        self._typical_seconds[model.id] = 0.7 * previous + 0.3 * took  # recent calls weigh most
        return image

    def _call_once(self, model: ModelProfile, fields: dict, budget: Budget) -> bytes:
        url = f"{self.base_url}/{model.id}"
        read_timeout = max(0.001, min(self._timeout[1], budget.remaining()))
        deadline = time.monotonic() + read_timeout
        multipart = model.encoding is Encoding.MULTIPART
        try:
            response, content = fetch(
                lambda: self._post(url, fields, multipart, read_timeout), deadline
            )
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{read_timeout:.1f} s (UPSTREAM_TIMEOUT)") from exc
        except requests.exceptions.SSLError as exc:
            log.warning("workers_ai tls_failed host=%s", requests.utils.urlparse(url).hostname)
            raise TLSFailed(f"TLS handshake failed: {tls_reason(exc)}") from exc
        except requests.ConnectionError as exc:
            if never_sent(exc):
                raise Unavailable("could not connect to Workers AI") from exc
            raise UpstreamFailed("the connection broke while waiting for the answer") from exc
        except ProtocolError as exc:  # reset or closed part-way through the answer
            raise UpstreamFailed("the connection broke while the answer was arriving") from exc
        except (requests.RequestException, HTTPError) as exc:
            raise UpstreamFailed(f"the answer could not be read ({type(exc).__name__})") from exc
        if response.status_code != 200:
            log.info("workers_ai model=%s status=%d", model.short_name, response.status_code)
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return self._decode(model, response.status_code, content, retry_after)

    def _decode(
        self, model: ModelProfile, status: int, content: bytes, retry_after: int | None = None
    ) -> bytes:
        if status == 200 and model.response is ResponseForm.RAW and sniff_type(content):
            return _whole(content)
        envelope = _json_or_none(content)
        if status != 200 or (envelope is not None and envelope.get("success") is False):
            raise self._error_from(status, envelope, retry_after)
        if envelope is None:
            raise BadResponse(f"HTTP 200 with an unreadable {len(content)}-byte body")
        image_b64 = (envelope.get("result") or {}).get("image")
        if not isinstance(image_b64, str):
            raise BadResponse("the answer holds no image")
        try:
            image = pybase64.b64decode(image_b64, validate=True)  # SIMD: ~50x the stdlib's speed
        except (binascii.Error, ValueError) as exc:
            raise BadResponse("the image is not valid base64") from exc
        if not sniff_type(image):
            raise BadResponse("the decoded bytes are not a JPEG, PNG or WebP image")
        return _whole(image)

    def _error_from(
        self, status: int, envelope: dict | None, retry_after: int | None
    ) -> WorkersAIError:
        errors = (envelope or {}).get("errors") or []
        first = errors[0] if errors and isinstance(errors[0], dict) else {}
        code = first.get("code") if isinstance(first.get("code"), int) else None
        message = self._scrub(str(first.get("message") or "no error message"))
        return classify(status, code, message, retry_after)

    def _scrub(self, text: str) -> str:
        """Upstream text goes to clients and logs: cut it short and make sure no token is in it."""
        if self._token:
            text = text.replace(self._token, "***")
        return text[:300]


def build_fields(
    model: ModelProfile,
    prompt: str,
    size: tuple[int, int] | None,
    steps: int | None,
    extras: dict | None,
) -> dict:
    """The request fields this model's schema accepts, and nothing else."""
    fields: dict = {"prompt": prompt}
    if model.steps_field and steps is not None:
        fields[model.steps_field] = model.clamp_steps(steps)
    if size and model.native_sizes:
        fields["width"], fields["height"] = size
    for name, value in (extras or {}).items():
        if name in model.extras and value is not None:
            fields[name] = value
    return fields


def image_fields(model: ModelProfile, images: tuple[bytes, ...], mask: bytes | None) -> dict:
    """The images an edit sends, as the model takes them (docs/workers-ai.md, "Editing")."""
    if not images:
        return {}
    if model.edit_input is EditInput.REFERENCES:  # binary multipart parts, named exactly so
        return {f"input_image_{index}": data for index, data in enumerate(images)}
    fields: dict = {"image_b64": pybase64.b64encode(images[0]).decode()}
    if mask is not None and model.edit_input is EditInput.IMAGE_AND_MASK:
        fields["mask"] = list(mask)  # the mask file's bytes, as an array of 0-255
    return fields


def _part(name: str, value) -> tuple:
    """A multipart part: a file for image bytes (type from the bytes), else a text field."""
    if isinstance(value, bytes):
        mime = sniff_type(value) or "application/octet-stream"
        return (f"{name}.{mime.rsplit('/', 1)[-1]}", value, mime)
    return (None, str(value))


def _whole(image: bytes) -> bytes:
    """The image, if it is complete: a cut-off one would be stored and served as a success."""
    if not is_complete(image):
        raise BadResponse(f"the image is cut off ({len(image)} bytes arrived)")
    return image


def _json_or_none(content: bytes) -> dict | None:
    try:
        data = json.loads(content)
    except (ValueError, RecursionError):  # RecursionError: an envelope nested absurdly deep
        return None
    return data if isinstance(data, dict) else None
