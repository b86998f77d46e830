"""Where settings come from, for the app and for gunicorn.conf.py alike: a settings file (./.env,
or FLUX_API_ENV_FILE) under the process environment; and typed readers of one value each, which
stop the start with one line naming the variable when a value is wrong."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlparse

from dotenv import dotenv_values


class SettingsError(ValueError):
    """A setting has a value the service cannot run with."""


def exit_cannot_start(exc: SettingsError, code: int = 1) -> NoReturn:
    """Stop the start with one line naming what is wrong (never a traceback)."""
    print(f"flux-api cannot start: {exc}", file=sys.stderr, flush=True)
    raise SystemExit(code) from None


def settings_file() -> Path:
    """FLUX_API_ENV_FILE (the systemd unit's /etc/flux-api/flux-api.env), else ./.env."""
    return Path(os.environ.get("FLUX_API_ENV_FILE") or Path.cwd() / ".env")


# What gunicorn's master read and checked at its start or last reload: the workers it forks
# use exactly that, so an edit of the file between reloads cannot stop a worker from booting
# (gunicorn halts when one fails to, taking the running ones down with it).
_pinned: dict[str, str] | None = None


def read_environment(environ: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The one place settings come from, for the app and for gunicorn.conf.py alike: `environ`
    if given, else what the master pinned, else the settings file under the process
    environment (which wins). The file is read at every start and reload, so `systemctl reload`
    applies an edit."""
    if environ is None:
        environ = _pinned if _pinned is not None else {**_file_values(), **os.environ}
    return {k: v for k, v in environ.items() if v is not None}


def pin_environment() -> None:
    """Read the settings now, for this process and the processes it forks from now on."""
    global _pinned
    _pinned = None
    _pinned = read_environment()


def _file_values() -> dict[str, str | None]:
    path = settings_file()
    if not path.exists():
        if os.environ.get("FLUX_API_ENV_FILE"):
            raise SettingsError(f"FLUX_API_ENV_FILE names {path}, which does not exist.")
        return {}  # ./.env is optional
    try:
        with path.open(encoding="utf-8") as stream:
            return dotenv_values(stream=stream)
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"the settings file {path} cannot be read ({exc}).") from None


def overridden_in_file() -> list[str]:
    """Names set in the settings file to a value the process environment replaces (such as
    the systemd unit's BIND and DATA_DIR), so that the start can say so instead of ignoring
    the file's line in silence."""
    in_file = _file_values()
    return sorted(
        name
        for name, value in in_file.items()
        if value is not None and name in os.environ and os.environ[name] != value
    )


def text(env: Mapping[str, str], name: str, default: str = "") -> str:
    return (env.get(name) or default).strip()


def flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = text(env, name).lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, not {raw!r}.")


def number(env: Mapping[str, str], name: str, default, kind=int, minimum=1):
    raw = text(env, name)
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, not {raw!r}.") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, not {raw}.")
    return value


def items(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text(env, name).split(",") if item.strip())


def url(env: Mapping[str, str], name: str, default: str = "") -> str:
    value = text(env, name, default)
    parsed = urlparse(value)
    if value and (parsed.scheme not in ("http", "https") or not parsed.netloc):
        raise SettingsError(f"{name} must be an http:// or https:// URL, not {value!r}.")
    return value.rstrip("/")
