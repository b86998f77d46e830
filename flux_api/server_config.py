"""gunicorn's settings, read from the same .env and environment as the app's (settings.py), and
checked the same way: a bad value stops the start with one line naming the variable."""

from __future__ import annotations

import math
import multiprocessing
import sys
from dataclasses import dataclass
from typing import Mapping

from .environment import (
    SettingsError,
    number,
    overridden_in_file,
    pin_environment,
    read_environment,
    settings_file,
    text,
)
from .settings import load_settings

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


@dataclass(frozen=True)
class ServerConfig:
    bind: str
    workers: int
    threads: int
    timeout: int
    graceful_timeout: int
    loglevel: str
    accesslog: str | None
    forwarded_allow_ips: str
    longest_request: float  # seconds: UPSTREAM_TIMEOUT (+ OPTIMIZER_TIMEOUT when on)


def longest_request(environ: Mapping[str, str]) -> float:
    """The most a generation may take: UPSTREAM_TIMEOUT, plus OPTIMIZER_TIMEOUT when the
    optimizer is on (its call has its own limit, outside the images' deadline)."""
    settings = load_settings(environ)
    optimizer = settings.optimizer_timeout if settings.prompt_optimization else 0.0
    return settings.upstream_timeout + optimizer


def load_server_config(environ: Mapping[str, str] | None = None) -> ServerConfig:
    env = read_environment(environ)
    bind = text(env, "BIND") or f"127.0.0.1:{number(env, 'PORT', 8000, int, 1)}"
    loglevel = text(env, "LOG_LEVEL", "info").lower()
    if loglevel not in LOG_LEVELS:
        raise SettingsError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {loglevel!r}.")
    # In-flight generations may finish on a restart: never cut one the service would still wait
    # for (a worker is killed after graceful_timeout).
    longest = longest_request(env)
    graceful = number(env, "GUNICORN_GRACEFUL_TIMEOUT", math.ceil(longest) + 10)
    return ServerConfig(
        bind=bind,
        workers=number(env, "WEB_CONCURRENCY", min(4, multiprocessing.cpu_count() * 2)),
        threads=number(env, "GUNICORN_THREADS", 128),
        timeout=number(env, "GUNICORN_TIMEOUT", max(180, graceful)),
        graceful_timeout=graceful,
        loglevel=loglevel,
        accesslog=text(env, "GUNICORN_ACCESS_LOG") or None,
        forwarded_allow_ips=text(env, "FORWARDED_ALLOW_IPS", "127.0.0.1,::1"),
        longest_request=longest,
    )


def load_server_config_or_exit() -> ServerConfig:
    """For gunicorn.conf.py, in the master at start and at each reload: read and pin the
    settings for the workers it forks; a bad one is one line naming it, and exit code 1."""
    try:
        pin_environment()
        config = load_server_config()
    except SettingsError as exc:
        print(f"flux-api cannot start: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    if config.graceful_timeout < config.longest_request:
        print(
            f"flux-api: GUNICORN_GRACEFUL_TIMEOUT ({config.graceful_timeout} s) is shorter than "
            f"the longest a request may take ({config.longest_request:g} s): a restart may cut "
            "generations already paid for.",
            file=sys.stderr,
            flush=True,
        )
    for name in overridden_in_file():
        print(
            f"flux-api: {name} in {settings_file()} is overridden by the process environment "
            "(the systemd unit sets it); that line has no effect.",
            file=sys.stderr,
            flush=True,
        )
    return config
