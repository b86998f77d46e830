"""The objects built once per app from its settings, and how they are built.

Shared state lives in one of two places, chosen here and nowhere else: under DATA_DIR for one
machine (diskcache and files, shared by its workers), or in Redis when REDIS_URL is set (shared
by every node; API_KEY is then required). Nothing above these objects knows which.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import redis

from flux_api.accounts.pool import AccountPool
from flux_api.accounts.redis_states import RedisAccountStates, RedisWindows
from flux_api.accounts.states import AccountStates, FileAccountStates
from flux_api.config.api_keys import ApiKey, bare_key
from flux_api.config.settings import Settings, SettingsError
from flux_api.events import Events
from flux_api.generation.memory import ImageMemory
from flux_api.generation.pipeline import Pipeline
from flux_api.observe import alerts, log_lines
from flux_api.observe.ledger import Ledger
from flux_api.observe.metrics import Metrics
from flux_api.store import redis_link
from flux_api.store.alert_claims import AlertClaims, DiskAlertClaims
from flux_api.store.disk import DiskImageStore
from flux_api.store.images import ImageStore
from flux_api.store.key_file import KEY_FILE, load_or_create_key
from flux_api.store.ratelimit import DiskWindows, RateLimiter
from flux_api.store.redis_alert_claims import RedisAlertClaims
from flux_api.store.redis_images import RedisImageStore
from flux_api.store.redis_usage import RedisUsageBook
from flux_api.store.usage import DiskUsageBook, UsageBook
from flux_api.threads import prestart
from flux_api.upstream.optimizer import OptimizerClient
from flux_api.upstream.workers_ai.client import WorkersAIClient


@dataclass(frozen=True)
class Services:
    settings: Settings
    api_keys: tuple[ApiKey, ...]
    store: ImageStore
    pipeline: Pipeline
    image_memory: ImageMemory
    accounts: AccountPool
    events: Events
    ledger: Ledger
    metrics: Metrics
    rate_limiter: RateLimiter | None = None
    # Where the key created when API_KEY is not set can be read (said in a 401), or None.
    created_key_at: str | None = None
    # Open a thread's own connections to what a generation reads before its first line
    # and its Workers AI call (see prestart_threads): in a request thread (the account record,
    # the rate limit's counters), in a stream's generation thread (the account record).
    warmers: tuple[Callable[[], None], ...] = ()
    generation_warmers: tuple[Callable[[], None], ...] = ()

    def prestart_threads(self, request_pool: ThreadPoolExecutor, threads: int) -> None:
        """Make gunicorn's worker's `threads` request threads and the streams' generation
        threads now, so a burst's first requests do not (flux_api/threads.py). Each also
        opens its own SQLite connections under DATA_DIR to what is read before a stream's
        first line and its Workers AI call: the account record, and the rate limit's counters.
        The rest (the image store, the ledger) are opened when first used, after the upstream
        has answered: at ~115 KiB each they would add ~0.4 GiB at rest with the defaults."""

        def run_all(warmers: tuple[Callable[[], None], ...]) -> Callable[[], None]:
            def warm() -> None:
                for open_connection in warmers:
                    open_connection()

            return warm

        prestart(request_pool, threads, run_all(self.warmers))
        self.pipeline.prestart(self.settings.generation_capacity, run_all(self.generation_warmers))

    def close(self) -> None:
        """Let go of files and connections (gunicorn's master, before it forks workers)."""
        self.store.close()
        self.accounts.close()
        self.ledger.book.close()
        if self.rate_limiter is not None:
            self.rate_limiter.close()


T = TypeVar("T")


@dataclass(frozen=True)
class _Shared:
    store: ImageStore
    account_states: AccountStates
    windows: Callable[[], DiskWindows | RedisWindows]
    usage: UsageBook
    api_keys: tuple[ApiKey, ...]
    created_key_at: str | None
    # The alerts' claims (who sends), opened in the thread that sends; with Redis, the node's
    # own under DATA_DIR come second (Redis away, each node still sends once).
    alert_claims: Callable[[], AlertClaims]
    node_alert_claims: Callable[[], AlertClaims] | None
    warmers: tuple[Callable[[], None], ...] = ()


def _opened(what: str, path: Path, make: Callable[[Path], T], note: str = "") -> T:
    """`make(path)`, or the one line that stops the start when it cannot be opened."""
    try:
        return make(path)
    except (OSError, sqlite3.Error) as exc:
        raise SettingsError(f"DATA_DIR: {what} {path} cannot be opened ({exc}){note}.") from None


def _on_disk(settings: Settings, events: Events) -> _Shared:
    keys, created_at = settings.api_keys, None
    if not keys:
        keys = (bare_key(load_or_create_key(settings.data_dir)),)
        created_at = str((settings.data_dir / KEY_FILE).absolute())
    store = _opened(
        "the image store",
        settings.data_dir / "images",
        lambda path: DiskImageStore(
            path,
            ttl=settings.image_expiration,
            size_limit_bytes=settings.store_size_limit_mb * 1024 * 1024,
            events=events,
        ),
    )
    account_states, usage = _records_on_disk(settings)
    return _Shared(
        store,
        account_states,
        lambda: DiskWindows(settings.data_dir / "ratelimit"),
        usage,
        keys,
        created_at,
        lambda: DiskAlertClaims(settings.data_dir / "alerts"),
        None,
        (account_states.warm,),
    )


def _records_on_disk(settings: Settings) -> tuple[FileAccountStates, DiskUsageBook]:
    account_states = _opened(
        "the account state",
        settings.data_dir / "accounts",
        FileAccountStates,
        "; it only records parked accounts, so it may be deleted",
    )
    usage = _opened(
        "the usage ledger",
        settings.data_dir / "usage",
        DiskUsageBook,
        "; it only holds usage counts, so it may be deleted",
    )
    return account_states, usage


def open_records(settings: Settings) -> tuple[AccountStates, UsageBook]:
    """The account pool's record and the usage ledger, opened where and as the service opens
    them (DATA_DIR or REDIS_URL), and nothing else: for the operator's commands, which run
    beside the service and must not touch its images. SettingsError when they cannot be."""
    if settings.redis_url:
        return _records_in_redis(redis_link.connect(settings.redis_url, check=True))
    return _records_on_disk(settings)


def _in_redis(settings: Settings, check: bool, events: Events) -> _Shared:
    if not settings.api_keys:
        # A key created in Redis would live only as long as Redis's data (the recipe keeps
        # none on disk): lost, every node would create another and lock every client out.
        raise SettingsError(
            "REDIS_URL is set, so API_KEY must be set too (the same on every node)."
        )
    client = redis_link.connect(settings.redis_url, check)
    store = RedisImageStore(
        client,
        ttl=settings.image_expiration,
        size_limit_bytes=settings.store_size_limit_mb * 1024 * 1024,
        events=events,
    )
    account_states, usage = _records_in_redis(client)
    return _Shared(
        store,
        account_states,
        lambda: RedisWindows(client),
        usage,
        settings.api_keys,
        None,
        lambda: RedisAlertClaims(client),
        lambda: DiskAlertClaims(settings.data_dir / "alerts"),
    )


def _records_in_redis(client: redis.Redis) -> tuple[RedisAccountStates, RedisUsageBook]:
    return RedisAccountStates(client), RedisUsageBook(client)


def build_services(
    settings: Settings, clock: Callable[[], float] = time.time, check: bool = True
) -> Services:
    """`clock`: wall-clock seconds for the account pool (tests move it past midnight).
    `check`: whether to make sure now that Redis answers (see factory.create_app)."""
    events = Events()
    log_lines.subscribe(events)
    if settings.redis_url:
        shared = _in_redis(settings, check, events)
    else:
        shared = _on_disk(settings, events)
    ledger = Ledger(shared.usage, clock, len(settings.accounts), settings.cf_daily_neurons)
    events.subscribe(ledger)
    pool = AccountPool(settings.accounts, shared.account_states, clock, events)
    metrics = Metrics(pool, shared.store, settings, ledger.neurons_today)
    events.subscribe(metrics.count)
    if settings.alert_webhook_url:
        events.subscribe(
            alerts.from_settings(settings, ledger, shared.alert_claims, shared.node_alert_claims)
        )
    workers_ai = WorkersAIClient(
        settings.workers_ai_url if settings.cloudflare_configured else "",
        pool,
        timeout=settings.upstream_timeout,
        backoff=settings.upstream_retry_backoff,
        concurrency=settings.upstream_concurrency,
        events=events,
    )
    optimizer = None
    if settings.prompt_optimization:
        optimizer = OptimizerClient(
            settings.external_api_base,
            settings.external_model,
            settings.external_api_key,
            timeout=settings.optimizer_timeout,
            system_message=settings.system_message,
            events=events,
        )
    pipeline = Pipeline(settings, workers_ai, shared.store, optimizer, events)
    limiter, warmers = None, shared.warmers
    if settings.rate_limit is not None or any(key.own_limit for key in shared.api_keys):
        limiter = RateLimiter(shared.windows(), settings.rate_limit, events)
        warmers += (limiter.warm,)
    memory = ImageMemory(settings.image_memory_mb * 1024 * 1024)
    return Services(
        settings,
        shared.api_keys,
        shared.store,
        pipeline,
        memory,
        pool,
        events,
        ledger,
        metrics,
        limiter,
        shared.created_key_at,
        warmers,
        shared.warmers,
    )
