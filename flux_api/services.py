"""The objects built once per app from its settings, and how they are built."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

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


def build_services(settings: Settings, api_keys: tuple[str, ...]) -> Services:
    store = open_store(settings)
    workers_ai = WorkersAIClient(
        settings.workers_ai_url if settings.cloudflare_configured else "",
        settings.cf_api_token,
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
    return Services(settings, api_keys, store, pipeline, memory, limiter)
