"""The objects built once per app from its settings, and how they are built."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Callable

from .account_pool import AccountPool
from .account_states import FileAccountStates
from .memory import ImageMemory
from .optimizer import OptimizerClient
from .pipeline import Pipeline
from .ratelimit import RateLimiter
from .settings import Settings, SettingsError
from .store import ImageStore
from .workers_ai import WorkersAIClient


@dataclass(frozen=True)
class Services:
    settings: Settings
    api_keys: tuple[str, ...]
    store: ImageStore
    pipeline: Pipeline
    image_memory: ImageMemory
    accounts: AccountPool
    rate_limiter: RateLimiter | None = None


def open_store(settings: Settings) -> ImageStore:
    directory = settings.data_dir / "images"
    try:
        return ImageStore(
            directory,
            ttl=settings.image_expiration,
            size_limit_bytes=settings.store_size_limit_mb * 1024 * 1024,
        )
    except (OSError, sqlite3.Error) as exc:
        raise SettingsError(
            f"DATA_DIR: the image store {directory} cannot be opened ({exc})."
        ) from None


def build_services(
    settings: Settings, api_keys: tuple[str, ...], clock: Callable[[], float] = time.time
) -> Services:
    """`clock`: wall-clock seconds for the account pool (tests move it past midnight)."""
    store = open_store(settings)
    pool = AccountPool(settings.accounts, FileAccountStates(settings.data_dir / "accounts"), clock)
    workers_ai = WorkersAIClient(
        settings.workers_ai_url if settings.cloudflare_configured else "",
        pool,
        timeout=settings.upstream_timeout,
        backoff=settings.upstream_retry_backoff,
        concurrency=settings.upstream_concurrency,
    )
    optimizer = None
    if settings.prompt_optimization:
        optimizer = OptimizerClient(
            settings.external_api_base,
            settings.external_model,
            settings.external_api_key,
            timeout=settings.optimizer_timeout,
            system_message=settings.system_message,
        )
    pipeline = Pipeline(settings, workers_ai, store, optimizer)
    limiter = None
    if settings.rate_limit is not None:
        limiter = RateLimiter(settings.data_dir / "ratelimit", settings.rate_limit)
    memory = ImageMemory(settings.image_memory_mb * 1024 * 1024)
    return Services(settings, api_keys, store, pipeline, memory, pool, limiter)
