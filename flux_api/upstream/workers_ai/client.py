"""Client for the Cloudflare Workers AI REST API (`POST {base}/{model}`), one per app.

It encodes each request the way the model's schema wants (fields.py), sends each try to an
account of the pool (accounts/pool.py), retries what a retry can fix, and raises its own
exceptions for the rest (errors.py here); wire/errors.py maps those to HTTP.

Which failure goes where:

| answer | this account | the request |
|---|---|---|
| daily quota used up (4006/3036) | parked until 00:00 UTC | at once on another account; not a try |
| token or account refused (10000, 7000, 401, 403) | set aside | at once elsewhere; not a try |
| out of capacity (3040), rate limited | busy for a while | next try on another account, no wait |
| no connection, 502/503 | - | next try, another account if any, after the backoff |
| flagged, input rejected, timeout, broken after sending | - | fails: it may be billed |

Tries (the last four rows) are at most 3 and all fit the request's deadline.
"""

from __future__ import annotations

import logging
import threading
import time

from flux_api.accounts.pool import AccountPool, Choice
from flux_api.budget import Budget
from flux_api.config.models import Encoding, ModelProfile
from flux_api.events import Events, UpstreamCall
from flux_api.upstream.workers_ai.errors import (
    InputRejected,
    Misconfigured,
    NotConfigured,
    OutOfCapacity,
    QuotaExceeded,
    RateLimited,
    WorkersAIError,
    call_outcome,
)
from flux_api.upstream.workers_ai.fields import build_fields, image_fields
from flux_api.upstream.workers_ai.transport import Transport

log = logging.getLogger(__name__)

# Sent with a JSON body when another account could take the call: a busy account answers at once
# (as 3040) instead of holding the request in Cloudflare's capacity queue.
_REJECT_IF_BUSY = {"rejectIfBusy": True}


class WorkersAIClient:
    def __init__(
        self,
        base_url: str,
        pool: AccountPool,
        *,
        timeout: float,
        connect_timeout: float = 10.0,
        max_tries: int = 3,
        backoff: float = 0.5,
        concurrency: int = 0,
        events: Events | None = None,
    ):
        self.base_url = base_url.rstrip("/")  # may hold {account_id}, filled per account
        self.pool = pool
        self._transport = Transport(self.base_url, pool.tokens, (connect_timeout, timeout))
        self._max_tries = max_tries
        self._backoff = backoff
        # UPSTREAM_CONCURRENCY: calls in flight at once from this process (0: no cap).
        self._slots = threading.BoundedSemaphore(concurrency) if concurrency else None
        # Seconds a successful call of each model took lately: a retry that could not finish
        # before the request's deadline is not started (it would be billed, then abandoned).
        self._typical_seconds: dict[str, float] = {}
        # Models whose schema turned `options` down: they are called without rejectIfBusy.
        self._no_options: set[str] = set()
        self._events = events or Events()  # each try's outcome

    @property
    def configured(self) -> bool:
        return bool(self.base_url and len(self.pool))

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
            raise NotConfigured()
        budget = budget or Budget.unlimited()
        fields = build_fields(model, prompt, size, steps, extras)
        fields.update(image_fields(model, images, mask))
        avoid: set[str] = set()  # failed this request; another account may do better
        spent: set[str] = set()  # parked or refused during this request: not called again
        refusal: Misconfigured | None = None
        tries = 0
        while True:
            choice = self.pool.choose(frozenset(avoid), frozenset(spent))
            if choice is None:
                raise refusal if refusal and not self._any_parked() else self._none_usable()
            try:
                return self._slotted_try(choice, model, fields, budget)
            except QuotaExceeded:
                self.pool.exhausted(choice.account)  # answered at once and not billed
                spent.add(choice.account.id)
            except Misconfigured as exc:
                if not exc.account_problem:
                    raise
                self.pool.refused(choice.account, exc.setting)
                spent.add(choice.account.id)
                refusal = exc
            except InputRejected as exc:
                if not self._options_refused(exc, model, fields):
                    raise
            except WorkersAIError as exc:
                avoid.add(choice.account.id)
                if isinstance(exc, (OutOfCapacity, RateLimited)):
                    self.pool.busy(choice.account, exc.retry_after)
                if isinstance(exc, OutOfCapacity) and "options" in fields:
                    continue  # refused at once by rejectIfBusy, unbilled: the next account now
                tries += 1
                if not self._retry_after_failure(exc, tries, choice, model, budget):
                    raise

    def _retry_after_failure(
        self, exc: WorkersAIError, tries: int, choice: Choice, model: ModelProfile, budget: Budget
    ) -> bool:
        """Wait before the next try and say True, or say False when none should be made."""
        delay = self._wait_before_retry(exc, tries, choice)
        if not self._worth_retrying(exc, tries, model, budget, delay):
            return False
        log.warning(
            "workers_ai retry model=%s attempt=%d account=%s reason=%r wait=%.1fs",
            model.short_name,
            tries,
            choice.account.label,
            exc.detail,
            delay,
        )
        time.sleep(delay)
        return True

    def _wait_before_retry(self, exc: WorkersAIError, tries: int, choice: Choice) -> float:
        """No wait when the next try goes to another account that may have capacity; else the
        backoff, or Cloudflare's Retry-After when longer."""
        if choice.others and isinstance(exc, (OutOfCapacity, RateLimited)):
            return 0.0
        return max(self._backoff * 2 ** (tries - 1), exc.retry_after or 0)

    def _any_parked(self) -> bool:
        return any(entry["state"] == "quota_exhausted" for entry in self.pool.report())

    def _none_usable(self) -> QuotaExceeded:
        detail, retry_after = self.pool.exhausted_error_detail()
        return QuotaExceeded(detail, retry_after)

    def _options_refused(self, exc: InputRejected, model: ModelProfile, fields: dict) -> bool:
        """Whether the schema turned down our `options` (rejectIfBusy): then the model is called
        without it from now on, and this request tries again at once (a refusal bills nothing)."""
        if "options" not in fields or "'options'" not in exc.detail:
            return False
        log.warning("workers_ai model=%s refuses options.rejectIfBusy; not sent again", model.id)
        self._no_options.add(model.id)
        del fields["options"]
        return True

    def _slotted_try(
        self, choice: Choice, model: ModelProfile, fields: dict, budget: Budget
    ) -> bytes:
        if choice.others and model.encoding is Encoding.JSON and model.id not in self._no_options:
            fields["options"] = _REJECT_IF_BUSY
        else:
            fields.pop("options", None)
        if self._slots is None:
            return self._try(choice, model, fields, budget)
        budget.wait_for(self._slots, "waiting for a free upstream slot")
        try:
            return self._try(choice, model, fields, budget)
        finally:
            self._slots.release()

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

    def _try(self, choice: Choice, model: ModelProfile, fields: dict, budget: Budget) -> bytes:
        budget.check("before calling Workers AI")
        started = time.monotonic()
        try:
            image, neurons = self._transport.call_once(choice.account, model, fields, budget)
        except WorkersAIError as exc:
            self._announce(choice, model, call_outcome(exc), None, started)
            raise
        took = time.monotonic() - started
        self._announce(choice, model, "ok", neurons, started)
        previous = self._typical_seconds.get(model.id, took)
        self._typical_seconds[model.id] = 0.7 * previous + 0.3 * took  # recent calls weigh most
        self.pool.succeeded(choice, neurons)
        return image

    def _announce(
        self,
        choice: Choice,
        model: ModelProfile,
        outcome: str,
        neurons: float | None,
        started: float,
    ) -> None:
        took = time.monotonic() - started
        call = UpstreamCall(choice.account.label, model.short_name, outcome, neurons, took)
        self._events.announce(call)
