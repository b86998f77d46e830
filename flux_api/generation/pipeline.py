"""One generation, shared by every endpoint: prompt → optimise → size → Workers AI → fit → store.

`plan` checks everything that can be checked before any work starts, so a bad request fails
before a stream's first byte. `run` then yields each stage's result as soon as it is done, which
is what lets the chat stream report progress as it happens.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from math import gcd

from PIL import Image

from flux_api.budget import Budget, ClientLeft
from flux_api.config.models import ModelProfile
from flux_api.config.settings import Settings
from flux_api.errors import invalid_request
from flux_api.events import Events
from flux_api.generation import model_choice
from flux_api.generation.prompts import with_context
from flux_api.generation.sizes import parse_ratio, size_for_ratio, upstream_size
from flux_api.generation.stages import StageClock
from flux_api.imaging.pictures import convert, fit, image_bytes, image_size
from flux_api.store.images import ImageStore, failures_announced
from flux_api.threads import prestart
from flux_api.upstream.optimizer import OptimizerClient, OptimizerError
from flux_api.upstream.workers_ai.client import WorkersAIClient
from flux_api.upstream.workers_ai.errors import BadResponse, NotConfigured, QuotaExceeded

log = logging.getLogger(__name__)

ORIGINAL_PROMPT = "Original Prompt"
# Streams run their generation on a thread of their own: at most this many at once per worker
# (GUNICORN_THREADS less GENERATION_RESERVE is far below it by default).
BACKGROUND_THREADS = 256


@dataclass(frozen=True)
class Plan:
    original_prompt: str  # as the person wrote it, ratio included
    prompt: str  # without the ratio
    size: tuple[int, int]  # of the image served
    model: ModelProfile
    base_url: str  # where /image/<key> is served from
    steps: int | None = None  # overrides the default steps (Images API `steps`)
    # Optional fields (seed, negative_prompt); only those the model's schema takes are sent.
    extras: dict = field(default_factory=dict)
    # An edit's input images, prepared for the model (references.py), and its mask.
    images: tuple[bytes, ...] = ()
    mask: bytes | None = None
    output_format: str | None = None  # "png", "jpeg", "webp": what the client asked to get
    # Who already wrote `prompt` (the optimizer, judging a follow-up): it is used as it is.
    prompt_source: str | None = None

    @property
    def aspect_ratio(self) -> str:
        width, height = self.size
        divisor = gcd(width, height)
        return f"{width // divisor}:{height // divisor}"


@dataclass(frozen=True)
class PromptChoice:
    prompt: str  # what is sent to Workers AI
    source: str  # the optimizer's model, or "Original Prompt"


@dataclass(frozen=True)
class StoredImageRef:
    key: str
    url: str


@dataclass(frozen=True)
class Generated:
    images: list[bytes]  # at exactly the plan's size
    stored: list[StoredImageRef]  # empty unless kept


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        workers_ai: WorkersAIClient,
        store: ImageStore,
        optimizer: OptimizerClient | None = None,
        events: Events | None = None,
    ):
        self.settings = settings
        self.workers_ai = workers_ai
        self.store = store
        self.optimizer = optimizer
        self.events = events or Events()
        # Streams run their generation here so the request thread can send keep-alives. A pool
        # (threads made on demand, then reused) keeps each thread's upstream sessions warm.
        # The default pool size (cores + 4) would queue streams, so allow many more.
        self._background = ThreadPoolExecutor(
            max_workers=BACKGROUND_THREADS, thread_name_prefix="generation"
        )

    def prestart(self, threads: int, warm: Callable[[], None]) -> None:
        """Make `threads` of the streams' generation threads now, each running `warm`
        (flux_api/threads.py)."""
        prestart(self._background, min(threads, BACKGROUND_THREADS), warm)

    def _submit(self, fn, *args):
        """Run `fn` on the pool with this thread's context (the request id goes along)."""
        return self._background.submit(contextvars.copy_context().run, fn, *args)

    def resolve_model(self, name: object) -> ModelProfile:
        return model_choice.text_model(self.settings, name)

    def plan(
        self,
        text: str,
        model_name: object,
        base_url: str,
        *,
        size: tuple[int, int] | None = None,
        steps: int | None = None,
        extras: dict | None = None,
        param: str = "messages",
        context: str = "",
    ) -> Plan:
        """Validate a request and work out what to make. Without `size` (chat, or the Images
        API's "auto") a ratio at the end of the prompt picks it. `param` names the field that
        holds the prompt, for error messages; `context` (a file's text attached to a chat) goes
        after the prompt, cut to fit the model."""
        original = text.strip()
        prompt, ratio = parse_ratio(original) if size is None else (original, None)
        model = self.resolve_model(model_name)
        if prompt:
            prompt = with_context(prompt, context, model.prompt_limit)
        self.check(prompt, model, param)
        return Plan(
            original,
            prompt,
            size or size_for_ratio(ratio),
            model,
            base_url.rstrip("/"),
            steps=steps,
            extras=dict(extras or {}),
        )

    def check(self, prompt: str, model: ModelProfile, param: str) -> None:
        """What is wrong with the request itself (a 400), before a stream's first byte."""
        if not prompt:
            raise invalid_request(
                "The prompt is empty: describe the image you want, optionally ending with a "
                "ratio such as 16:9.",
                param=param,
            )
        if len(prompt) > model.prompt_limit:
            raise invalid_request(
                f"The prompt is {len(prompt)} characters long; {model.short_name} accepts at "
                f"most {model.prompt_limit}. Shorten it.",
                param=param,
                code="prompt_too_long",
            )

    def admit(self, plan: Plan, count: int = 1, keep: bool = True) -> None:
        """What a valid request, counted against RATE_LIMIT, may still meet before any paid
        call, in the order the README's errors section gives: no Cloudflare credentials (503),
        a store that could not keep the images (503; Redis reserves their worst case here),
        every account parked (429). Called by every endpoint before `run`, and before a
        stream's first byte, so each is an ordinary HTTP error."""
        self._check_configured()
        if keep:  # nothing paid for an image that could not be kept (Redis gone or full)
            with failures_announced(self.events):
                self.store.ensure_writable(image_bytes(plan.size, count))
        self._check_not_all_parked()

    def check_upstream(self) -> None:
        """Whether Workers AI can be called at all: its credentials (503), an account not
        parked (429). Also asked before the optimizer judges a follow-up, whose answer would be
        wasted without them."""
        self._check_configured()
        self._check_not_all_parked()

    def _check_configured(self) -> None:
        if not self.workers_ai.configured:
            raise NotConfigured()

    def _check_not_all_parked(self) -> None:
        if self.workers_ai.pool.all_parked():
            detail, retry_after = self.workers_ai.pool.exhausted_error_detail()
            raise QuotaExceeded(detail, retry_after)

    def run(
        self, plan: Plan, count: int = 1, keep: bool = True, budget: Budget | None = None
    ) -> Iterator[PromptChoice | Generated]:
        """Yield the prompt choice, then the `count` images (stored when `keep`), once `admit`
        has let the request in. Upstream errors propagate; if one image fails, none is stored.
        `budget` stops the work before each paid step once the client has left or the deadline
        has passed. The generation is announced (events.GenerationDone) however it ends."""
        budget = budget or Budget.unlimited()
        clock = StageClock(first_try=len(budget.tries))
        budget.generations += 1
        try:
            yield from self._generate(plan, count, keep, budget, clock)
        except BaseException as exc:  # failed, or its client left: the reservation goes back
            if keep:
                self.store.release()
            if not clock.reported:
                self._announce(plan, count, clock, budget, exc)
            raise

    def _generate(
        self, plan: Plan, count: int, keep: bool, budget: Budget, clock: StageClock
    ) -> Iterator[PromptChoice | Generated]:
        choice = self.choose_prompt(plan, budget)
        budget.extend(clock.mark("optimizer"))  # the optimizer has its own OPTIMIZER_TIMEOUT
        yield choice
        images = self.render_many(plan, choice.prompt, count, budget)
        clock.mark("upstream")
        if budget.client_left:  # paid for, but nobody will fetch it: do not keep it
            raise ClientLeft("after the images were made")
        stored = self.store_images(plan, images) if keep else []
        clock.mark("store")
        self._announce(plan, count, clock, budget, None)
        yield Generated(images, stored)

    def _announce(
        self,
        plan: Plan,
        count: int,
        clock: StageClock,
        budget: Budget,
        error: BaseException | None,
    ) -> None:
        tries = tuple(budget.tries[clock.first_try :])
        done = clock.report(plan.model.short_name, plan.size, count, error, tries)
        self.events.announce(done)

    def run_in_background(
        self, plan: Plan, budget: Budget, done: Callable[[], None] = lambda: None
    ) -> queue.Queue:
        """Start `run` on a pool thread; its events, or the exception that ended it, arrive on
        the returned queue. `done` is called once the run has ended, however it ended (its
        client may have left long before: a Workers AI call under way is not cut)."""
        events: queue.Queue = queue.Queue()
        try:
            self._submit(self._run_into, plan, budget, events, done)
        except BaseException:
            done()
            raise
        return events

    def _run_into(
        self, plan: Plan, budget: Budget, events: queue.Queue, done: Callable[[], None]
    ) -> None:
        try:
            for event in self.run(plan, budget=budget):
                events.put(event)
        except Exception as exc:  # noqa: BLE001 (reported in-band by the stream, which logs bugs)
            events.put(exc)
        finally:
            done()

    def choose_prompt(self, plan: Plan, budget: Budget) -> PromptChoice:
        if plan.prompt_source is not None:
            return PromptChoice(plan.prompt, plan.prompt_source)
        if self.optimizer is None:
            return PromptChoice(plan.prompt, ORIGINAL_PROMPT)
        budget.check("before the prompt optimizer")
        try:
            better = self.optimizer.optimize(
                plan.prompt, plan.aspect_ratio, plan.model.prompt_limit
            )
        except OptimizerError as exc:
            log.warning("optimizer failed (%s); using the prompt as written", exc)
            return PromptChoice(
                plan.prompt,
                f"{ORIGINAL_PROMPT} (the optimizer {exc}; your prompt was used as written)",
            )
        return PromptChoice(better, self.optimizer.model)

    def render(self, plan: Plan, prompt: str, budget: Budget) -> bytes:
        """One image at exactly `plan.size`: generated, then cropped and resized if need be."""
        model = plan.model
        steps = plan.steps
        if steps is None and model.uses_flux_steps:
            steps = self.settings.flux_num_steps
        started = time.monotonic()
        data = self.workers_ai.generate(
            model,
            prompt,
            size=upstream_size(plan.size, model.size_range),
            steps=steps,
            extras=plan.extras,
            budget=budget,
            images=plan.images,
            mask=plan.mask,
        )
        generated_at = time.monotonic()
        try:
            if image_size(data) != plan.size:
                data = fit(data, plan.size)
            if plan.output_format:
                data = convert(data, plan.output_format)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise BadResponse("the image could not be decoded") from exc
        log.debug(
            "render model=%s upstream_s=%.2f fit_s=%.3f bytes=%d",
            model.short_name,
            generated_at - started,
            time.monotonic() - generated_at,
            len(data),
        )
        return data

    def render_many(self, plan: Plan, prompt: str, count: int, budget: Budget) -> list[bytes]:
        """`count` images from concurrent upstream calls; the first failure fails them all."""
        if count == 1:
            return [self.render(plan, prompt, budget)]
        futures = [self._submit(self.render, plan, prompt, budget) for _ in range(count)]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        error = next(filter(None, (future.exception() for future in done)), None)
        if error is None:
            return [future.result() for future in futures]
        # The request has failed: the other images stop before their next paid step (a try,
        # a retry, a wait for a slot). Calls already under way are paid for; they are waited
        # for, so that no work of this request outlives its answer (nor its memory reservation).
        budget.stop()
        for future in futures:
            future.cancel()
        wait(futures)
        raise error

    def store_images(self, plan: Plan, images: list[bytes]) -> list[StoredImageRef]:
        with failures_announced(self.events):
            keys = self.store.put_many(images)
        return [StoredImageRef(key, f"{plan.base_url}/image/{key}") for key in keys]
