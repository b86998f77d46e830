"""Whether the shared state can be written: a file written and deleted under DATA_DIR (one that
does not exist yet is left so: a warning, when the service could create it), or with REDIS_URL
a key set (with a short expiry, under the service's prefix) and deleted in Redis, once Redis's
version is one the service starts with."""

from __future__ import annotations

import errno
import os
import tempfile
import uuid
from pathlib import Path

import redis

from flux_api.cli.checks import Check, fail, ok, warn
from flux_api.config.environment import SettingsError
from flux_api.config.settings import Settings
from flux_api.store import redis_link

NAME = "store"

_DISK_FIXES = {
    errno.EACCES: "give the service's user write access to it (chown), or point DATA_DIR elsewhere",
    errno.EPERM: "give the service's user write access to it (chown), or point DATA_DIR elsewhere",
    errno.EROFS: "it is on a read-only file system: point DATA_DIR at a writable one",
    errno.ENOTDIR: "part of that path is a file, not a directory: point DATA_DIR at a directory",
    errno.ENOSPC: "its disk is full: free some space (or lower STORE_SIZE_LIMIT_MB)",
    errno.EDQUOT: "the user's disk quota is used up: free some space",
}


def store_check(settings: Settings) -> Check:
    return _redis(settings) if settings.redis_url else _data_dir(settings.data_dir)


def _data_dir(path: Path) -> Check:
    where = path.absolute()
    if not path.exists() and not path.is_symlink():
        return _no_data_dir_yet(where)
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".doctor-") as probe:
            probe.write(b"flux-api doctor")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        return _unwritable(where, exc.errno or 0, exc.strerror or type(exc).__name__)
    return ok(NAME, f"DATA_DIR {where} is writable")


def _no_data_dir_yet(where: Path) -> Check:
    """A DATA_DIR that does not exist: nothing is created (the doctor may run in another
    directory, or as root, than the service), but the service must be able to create it."""
    parent = next(p for p in where.parents if p.exists())  # "/" exists at worst
    if not parent.is_dir():
        return _unwritable(where, errno.ENOTDIR, "not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        return fail(
            NAME,
            f"DATA_DIR {where} does not exist, and {parent} is not writable, so the service "
            "cannot create it",
            "create it and give the service's user write access to it (chown), or point "
            "DATA_DIR elsewhere (the systemd unit's /var/lib/flux-api is created by systemd)",
        )
    return warn(
        NAME,
        f"DATA_DIR {where} does not exist yet (the service creates it at its first start)",
        "if the service runs with another DATA_DIR (the systemd unit sets "
        "DATA_DIR=/var/lib/flux-api), give that one",
    )


def _unwritable(where: Path, number: int, reason: str) -> Check:
    fix = _DISK_FIXES.get(number, "point DATA_DIR at a directory the service can write")
    return fail(NAME, f"DATA_DIR {where} cannot be written ({reason.lower()})", fix)


def _redis(settings: Settings) -> Check:
    where = redis_link.without_password(settings.redis_url)
    if not settings.api_keys:
        return fail(
            NAME,
            "REDIS_URL is set but API_KEY is not, so the service does not start",
            "set API_KEY, the same on every node",
        )
    key = f"{redis_link.PREFIX}doctor:{uuid.uuid4().hex}"
    try:
        client = redis_link.connect(settings.redis_url, check=False)
        too_old = redis_link.version_refusal(client, settings.redis_url)
        if too_old:  # the service's start says the same and stops
            return fail(
                NAME, too_old.rstrip("."), "upgrade Redis, or point REDIS_URL at a newer one"
            )
        client.set(key, b"1", ex=30)  # gone by itself if the delete never comes
        client.delete(key)
    except SettingsError:
        return fail(NAME, f"REDIS_URL {where} is not a usable Redis URL", "correct REDIS_URL")
    except redis.ReadOnlyError:
        return fail(
            NAME,
            f"Redis at {where} is a read-only replica: it refused a write",
            "point REDIS_URL at the primary",
        )
    except redis.AuthenticationError as exc:
        if "NOAUTH" in str(exc) or "authentication required" in str(exc).lower():
            return fail(
                NAME, f"Redis at {where} needs a password", "put it in REDIS_URL (redis://:pw@…)"
            )
        return fail(NAME, f"Redis at {where} refused the password", "correct it in REDIS_URL")
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        return fail(
            NAME,
            f"Redis at {where} cannot be reached ({_connection_reason(exc)})",
            "start Redis, or correct the host and port in REDIS_URL",
        )
    except redis.ResponseError as exc:
        if str(exc).startswith("OOM"):
            return fail(
                NAME,
                f"Redis at {where} is full: it refused a write (maxmemory)",
                "raise its maxmemory, or lower STORE_SIZE_LIMIT_MB",
            )
        return fail(NAME, f"Redis at {where} refused a write ({str(exc)[:100]})", "see Redis' log")
    except redis.RedisError as exc:  # anything else: its kind, never a traceback
        return fail(
            NAME, f"Redis at {where} cannot be used ({type(exc).__name__})", "see Redis' log"
        )
    return ok(NAME, f"Redis at {where} accepts writes")


def _connection_reason(exc: BaseException) -> str:
    text = str(exc).lower()
    if isinstance(exc, redis.TimeoutError) or "timeout" in text or "timed out" in text:
        return "timed out"
    if "refused" in text:
        return "connection refused"
    if "name or service not known" in text or "name resolution" in text or "nodename" in text:
        return "no such host (DNS)"
    return "no connection"
