"""Whether the settings load, read from where the service reads them (the settings file, then
the process environment: config/environment.py)."""

from __future__ import annotations

from flux_api.cli.checks import Check, fail, ok
from flux_api.config.environment import SettingsError, settings_file
from flux_api.config.settings import Settings, load_settings

NAME = "settings"


def load() -> tuple[Check, Settings | None]:
    """The check, and the settings when they load (nothing else can be checked without)."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        problems = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        return fail(
            NAME, problems, "correct the setting named; the service does not start with it"
        ), None
    path = settings_file()
    where = (
        f"{path} and the environment"
        if path.exists()
        else "the environment (no " + (f"settings file at {path})")
    )
    return ok(NAME, f"valid, read from {where}"), settings
