"""Bearer-key authentication for the API; the page, images and health checks stay open.

With no API_KEY the service never runs open: it creates one strong key in DATA_DIR/api_key,
once, shared by every worker and kept across restarts.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from pathlib import Path

from flask import Flask, g, request

from .errors import APIError
from .settings import SettingsError

log = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset({"/", "/healthz", "/openapi.json", "/favicon.ico"})
PUBLIC_PREFIXES = ("/static/", "/image/")
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


def _is_public(method: str, path: str) -> bool:
    """Open paths are open to read: deleting an image (DELETE /image/<key>) takes a key."""
    if method not in ("GET", "HEAD"):
        return path in PUBLIC_PATHS
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def key_matches(token: str, keys: tuple[str, ...]) -> bool:
    """Compare against every key in constant time, so timing reveals neither key nor position."""
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(token.encode(), key.encode())
    return matched


def presents_key(keys: tuple[str, ...]) -> bool:
    """Whether this request carries a valid key (for open paths that show more to the operator)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip()) and key_matches(token.strip(), keys)


def init_app(app: Flask, keys: tuple[str, ...], created_key_at: str | None = None) -> None:
    """`created_key_at`: where the key is when API_KEY is not set; a 401 then says where to
    look (never the key, and not the server's path: a stranger learns nothing of its disk),
    since the person at the keyboard is often the operator."""
    where = (
        " API_KEY is not set, so the service created a key: it is in the file `api_key` "
        "under DATA_DIR on the server."
        if created_key_at
        else ""
    )

    @app.before_request
    def require_api_key():
        # Preflight, open paths and unrouted requests (404/405 answer those) need no key.
        method = request.method
        if method == "OPTIONS" or request.endpoint is None or _is_public(method, request.path):
            return None
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise APIError(
                401,
                "Missing API key: send the header `Authorization: Bearer <API_KEY>`." + where,
                code="invalid_api_key",
                should_retry=False,
            )
        token = token.strip()
        if not key_matches(token, keys):
            raise APIError(
                401,
                "Incorrect API key: check the key your client sends against the service's "
                "API_KEY." + where,
                code="invalid_api_key",
                should_retry=False,
            )
        g.api_key = token
        return None
