"""One call to the Workers AI REST API (`POST {base}/{model}`) on one account: the HTTP request,
its deadline, and what went wrong on the wire, as this package's exceptions. Which account to
call, and whether to try again, is client.py's business."""

from __future__ import annotations

import logging
import os
import threading
import time
from urllib.parse import urlparse

import requests
from requests.adapters import HTTPAdapter
from requests.models import PreparedRequest
from urllib3.exceptions import HTTPError, ProtocolError

from flux_api.budget import Budget
from flux_api.config.accounts import Account
from flux_api.config.models import Encoding, ModelProfile
from flux_api.upstream.http import DeadlineAdapter, fetch, never_sent, tls_reason
from flux_api.upstream.workers_ai.answers import decode, neurons_spent
from flux_api.upstream.workers_ai.errors import (
    TLSFailed,
    Unavailable,
    UpstreamFailed,
    UpstreamTimeout,
    parse_retry_after,
)
from flux_api.upstream.workers_ai.fields import multipart_parts

log = logging.getLogger(__name__)


class Transport:
    def __init__(self, base_url: str, tokens: tuple[str, ...], timeout: tuple[float, float]):
        """`base_url` may hold {account_id}; `tokens` are scrubbed from any upstream text;
        `timeout`: (connect, read) seconds, the read one cut to what a request has left."""
        self.base_url = base_url
        self._tokens = tokens
        self._timeout = timeout
        self._local = threading.local()
        self._proxies = requests.utils.get_environ_proxies(base_url) if base_url else {}
        self._verify = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        )

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
        self, account: Account, model: ModelProfile, fields: dict, read_timeout: float
    ) -> requests.Response:
        request = PreparedRequest()
        request.prepare_method("POST")
        request.prepare_url(f"{self.base_url.replace('{account_id}', account.id)}/{model.id}", None)
        request.prepare_headers(
            {"Authorization": f"Bearer {account.token}", "User-Agent": "flux-api"}
        )
        if model.encoding is Encoding.MULTIPART:
            request.prepare_body(None, multipart_parts(fields))
        else:
            request.prepare_body(None, None, json=fields)
        return self._adapter().send(
            request,
            stream=True,
            timeout=(min(self._timeout[0], read_timeout), read_timeout),
            verify=self._verify,
            proxies=self._proxies,
        )

    def call_once(
        self, account: Account, model: ModelProfile, fields: dict, budget: Budget
    ) -> tuple[bytes, float | None]:
        """The image of one call, and the neurons Cloudflare says it cost (when it says)."""
        read_timeout = max(0.001, min(self._timeout[1], budget.remaining()))
        deadline = time.monotonic() + read_timeout
        try:
            response, content = fetch(
                lambda: self._post(account, model, fields, read_timeout), deadline
            )
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{read_timeout:.1f} s (UPSTREAM_TIMEOUT)") from exc
        except requests.exceptions.SSLError as exc:
            host = urlparse(self.base_url).hostname
            log.warning("workers_ai tls_failed host=%s", host)
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
            log.info(
                "workers_ai model=%s account=%s status=%d",
                model.short_name,
                account.label,
                response.status_code,
            )
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        image = decode(model, response.status_code, content, retry_after, self._scrub)
        return image, neurons_spent(response.headers.get("cf-ai-neurons"))

    def _scrub(self, text: str) -> str:
        """Upstream text goes to clients and logs: cut it short and make sure no token is in it."""
        for token in self._tokens:
            text = text.replace(token, "***")
        return text[:300]
