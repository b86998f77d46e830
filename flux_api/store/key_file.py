"""The key clients must use when API_KEY is not set: DATA_DIR/api_key, created once (mode 0600)
by whichever worker comes first, shared by all and kept across restarts."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from flux_api.config.settings import SettingsError

log = logging.getLogger(__name__)

KEY_FILE = "api_key"


# Key files this process has named in the log. gunicorn's master names it at each start and
# reload (gunicorn.conf.py) before it forks the workers, which inherit this: one line, not one
# per worker.
_named: set[Path] = set()


def key_file(data_dir: Path) -> Path:
    return (Path(data_dir) / KEY_FILE).absolute()


def name_key_file(path: Path) -> None:
    """Say once per process (and its forks) which file holds the key clients must use."""
    if path not in _named:
        _named.add(path)
        log.info("API_KEY is not set: clients must use the key stored in %s", path)


def load_or_create_key(data_dir: Path) -> str:
    """Read DATA_DIR/api_key, creating it (mode 0600) if no worker has yet."""
    path = key_file(data_dir)
    try:
        return _read_or_create(path)
    except OSError as exc:
        raise SettingsError(
            f"DATA_DIR: the key file {path} cannot be used ({exc.strerror})."
        ) from None


def _read_or_create(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"sk-flux-{secrets.token_urlsafe(32)}\n")
        try:
            os.link(draft, path)  # atomic: exactly one worker's draft becomes the key
            log.warning(
                "API_KEY is not set: created a key in %s (readable by its owner only)", path
            )
        except FileExistsError:
            pass
        finally:
            os.unlink(draft)
    key = path.read_text().strip()
    if not key:
        raise SettingsError(f"API_KEY is not set and {path} is empty: delete it or set API_KEY.")
    name_key_file(path)
    return key
