"""gunicorn's settings, read from the same .env and environment as the app's (settings.py), and
checked the same way: a bad value stops the start with one line naming the variable."""

from __future__ import annotations

import ipaddress
import math
import multiprocessing
import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from flux_api.config.environment import (
    SettingsError,
    exit_cannot_start,
    number,
    overridden_in_file,
    pin_environment,
    read_environment,
    settings_file,
    text,
)
from flux_api.config.settings import load_settings

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


def _port(value: str, name: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise SettingsError(f"{name} needs a port from 1 to 65535, not {value!r}.")
    return int(value)


def _bind(env: Mapping[str, str]) -> str:
    """BIND as host:port, [ipv6]:port or unix:/path; else 127.0.0.1:PORT."""
    bind = text(env, "BIND")
    if not bind:
        return f"127.0.0.1:{_port(text(env, 'PORT', '8000'), 'PORT')}"
    if bind.startswith("unix:"):
        if len(bind) == len("unix:"):
            raise SettingsError("BIND=unix: needs a socket path, such as unix:/run/flux-api.sock.")
        return bind
    host, colon, port = bind.rpartition(":")
    if not colon or not host:
        raise SettingsError(
            f"BIND must look like 127.0.0.1:8000, [::1]:8000 or unix:/path, not {bind!r}."
        )
    _port(port, "BIND")
    return bind


def _forwarded_allow_ips(env: Mapping[str, str]) -> str:
    value = text(env, "FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
    if value != "*":
        for item in (part.strip() for part in value.split(",")):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise SettingsError(
                    f"FORWARDED_ALLOW_IPS lists {item!r}, which is not an IP address or network "
                    "(use * for any)."
                ) from None
    return value


def _access_log(env: Mapping[str, str]) -> str | None:
    path = text(env, "GUNICORN_ACCESS_LOG")
    if path and path != "-":
        directory = Path(path).parent
        if not directory.is_dir() or not os.access(directory, os.W_OK):
            raise SettingsError(f"GUNICORN_ACCESS_LOG: cannot write a log file in {directory}.")
    return path or None


def check_can_listen(bind: str) -> None:
    """Listen on `bind` for a moment: a reload that moves to an address in use (or not this
    machine's) would stop gunicorn instead of moving it."""
    if bind.startswith("unix:"):
        return
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, int(port)))
    except OSError as exc:
        raise SettingsError(f"BIND {bind} cannot be listened on ({exc.strerror}).") from None


def load_server_config(environ: Mapping[str, str] | None = None) -> ServerConfig:
    env = read_environment(environ)
    bind = _bind(env)
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
        threads=load_settings(env).threads,  # checked there against GENERATION_RESERVE
        timeout=number(env, "GUNICORN_TIMEOUT", max(180, graceful)),
        graceful_timeout=graceful,
        loglevel=loglevel,
        accesslog=_access_log(env),
        forwarded_allow_ips=_forwarded_allow_ips(env),
        longest_request=longest,
    )


def load_server_config_or_exit() -> ServerConfig:
    """For gunicorn.conf.py, in the master at start and at each reload: read and pin the
    settings for the workers it forks; a bad one is one line naming it, and exit code 1."""
    try:
        pin_environment()
        config = load_server_config()
    except SettingsError as exc:
        exit_cannot_start(exc)
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
