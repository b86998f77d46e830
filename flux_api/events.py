"""What happened, announced to whoever listens: the seam for logs, metrics and usage.

The pipeline, the account pool, the Workers AI client, the prompt optimizer, the image store, the
rate limiter, the chat stream and the request log announce events here; subscribers registered in
services.py turn them into what operators read (observe/log_lines.py writes the log lines,
observe/metrics.py keeps the metrics, observe/alerts.py sends alerts). Subscribers run in the thread
that announces, so they must be quick; one that raises is logged once and never fails the
work that announced.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import KW_ONLY, dataclass, field

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Caller:
    """Who a request's work is for: set by web/auth.py once a request's key is known, read by
    the events announced on its behalf (the context follows it into background threads)."""

    key: str = "-"  # the API key's name, never the key ("-": no key, an open path)
    endpoint: str = "-"  # the route that answers it, e.g. /v1/chat/completions


current_caller: ContextVar[Caller] = ContextVar("current_caller", default=Caller())  # noqa: B039 (frozen)


@dataclass(frozen=True)
class GenerationDone:
    """One generation (1 to n images), ended. `outcome`: "ok", "client_left" (it stopped, or
    its images were not kept, because nobody was there to receive them) or "failed"."""

    model: str  # the model's short name
    size: tuple[int, int]  # of the images served
    count: int
    outcome: str
    error: str | None  # the exception's class name when it did not end "ok"
    optimizer_seconds: float
    upstream_seconds: float
    store_seconds: float
    total_seconds: float
    _: KW_ONLY  # what follows is named, so a field added later cannot take another's place
    tries: tuple[UpstreamCall, ...] = ()  # its Workers AI tries, whatever their outcome
    caller: Caller = field(default_factory=current_caller.get)


@dataclass(frozen=True)
class UpstreamCall:
    """One try sent to Workers AI. `outcome`: "ok", "quota" (daily allocation used up),
    "refused" (token or account id), "capacity", "rate_limited", "rejected" (the input or the
    output was refused) or "error" (no connection, a timeout, a broken or 5xx answer)."""

    account: str  # the account's label (first6…last4), never its token
    model: str
    outcome: str
    neurons: float | None  # as Cloudflare reported them, when it did
    seconds: float
    _: KW_ONLY
    size: tuple[int, int] | None = None  # asked of Workers AI
    steps: int | None = None  # asked of Workers AI (None: the model's own)
    inputs: int = 0  # input images sent with it (edits, follow-ups)
    caller: Caller = field(default_factory=current_caller.get)


@dataclass(frozen=True)
class OptimizerCall:
    """One call to the prompt optimizer's LLM. `purpose`: "prompt" (a generation's prompt),
    "follow_up" (is a chat message an edit of the previous image?), "title" or "summary" (of a
    chat, for its client). `outcome`: "ok", or "fallback" (it failed, and what does without it
    was used: the prompt as written, the follow-up cues, words made from the prompts)."""

    purpose: str
    outcome: str
    seconds: float
    caller: Caller = field(default_factory=current_caller.get)


@dataclass(frozen=True)
class AccountChanged:
    """An account left or rejoined the usable pool. `state`: "parked" (until `until`, epoch
    seconds), "refused" (its `setting` is wrong) or "works" (refused before, fine again)."""

    account: str
    state: str
    until: float | None = None
    setting: str | None = None


@dataclass(frozen=True)
class ImagesEvicted:
    """Stored images dropped before their expiry to make room under STORE_SIZE_LIMIT_MB (or
    Redis's maxmemory)."""

    images: int
    bytes: int


@dataclass(frozen=True)
class StoreFailed:
    """A request on its way to a generation met a store that cannot be used: the rate
    limiter's counters, or the images' (it answered 503). Announced by
    store.images.failures_announced. `setting`: what the operator should check (DATA_DIR, or
    REDIS_URL and its Redis); `detail`: what failed."""

    setting: str
    detail: str


@dataclass(frozen=True)
class RateLimited:
    """A request refused by RATE_LIMIT before any paid call."""

    key: str  # the API key's name, never the key
    asked: int  # images the request asked for
    retry_after: int


@dataclass(frozen=True)
class Shed:
    """A generation refused at admission (web/admission.py), before anything was read or paid:
    503 with Retry-After. `reason`: "capacity" (every generation thread of this worker is
    held), "key_share" (its key holds its share of them while other keys are configured) or
    "waited" (it waited more than ADMISSION_WAIT for a thread: the worker is too busy)."""

    reason: str
    key: str  # the API key's name, never the key
    in_flight: int  # generations this worker held when it refused
    capacity: int  # the most it holds (GUNICORN_THREADS - GENERATION_RESERVE)
    retry_after: int


@dataclass(frozen=True)
class GenerationsInFlight:
    """A worker's count of generations in flight changed (one admitted, or one released:
    answered, failed, or its client gone)."""

    in_flight: int
    capacity: int


@dataclass(frozen=True)
class StreamOpened:
    """A chat reply began to stream (its first frame is going out) while its image is made."""

    caller: Caller = field(default_factory=current_caller.get)


@dataclass(frozen=True)
class StreamClosed:
    """A stream that StreamOpened announced ended: finished, failed in-band, or its client left
    (`finished` False: the server closed it because its client had gone)."""

    finished: bool
    caller: Caller = field(default_factory=current_caller.get)


@dataclass(frozen=True)
class RequestDone:
    """A request answered, its body sent. `client_left`: it went before the end (status 499)."""

    method: str
    path: str
    status: int
    seconds: float
    model: str
    request_id: str
    client_left: bool
    _: KW_ONLY
    key: str = "-"  # the API key's name, never the key
    error: str | None = None  # the OpenAI error code of an error answer
    generated: bool = False  # it ran a generation (whatever became of it)
    # The route that answered, as the OpenAPI document writes it (/image/{key}); "" when none
    # did (an unknown path, a method the path does not take).
    route: str = ""


Event = (
    GenerationDone
    | UpstreamCall
    | OptimizerCall
    | AccountChanged
    | ImagesEvicted
    | StoreFailed
    | RateLimited
    | Shed
    | GenerationsInFlight
    | StreamOpened
    | StreamClosed
    | RequestDone
)
Subscriber = Callable[[Event], None]


class Events:
    """Subscribers, called with each announced event in the order they subscribed."""

    def __init__(self) -> None:
        self._subscribers: tuple[Subscriber, ...] = ()
        self._failed: set[Subscriber] = set()

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers = (*self._subscribers, subscriber)

    def announce(self, event: Event) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:  # a bug of the subscriber's: the work it watches goes on
                if subscriber not in self._failed:
                    self._failed.add(subscriber)
                    log.exception(
                        "event subscriber %r failed; later failures not logged", subscriber
                    )
