"""Whether the shared state can be written: a file written and deleted under DATA_DIR, or with
REDIS_URL a key set (with a short expiry, under the service's prefix) and deleted in Redis."""

from __future__ import annotations

import errno
import os
import tempfile
import uuid
from pathlib import Path

import redis

from flux_api.cli.checks import Check, fail, ok
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
    try:
        existed = path.is_dir()
        path.mkdir(parents=True, exist_ok=True)  # as the service does at its start
        with tempfile.NamedTemporaryFile(dir=path, prefix=".doctor-") as probe:
            probe.write(b"flux-api doctor")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        fix = _DISK_FIXES.get(exc.errno or 0, "point DATA_DIR at a directory the service can write")
        return fail(NAME, f"DATA_DIR {where} cannot be written ({reason.lower()})", fix)
    made = "" if existed else " (created now, as the service would)"
    return ok(NAME, f"DATA_DIR {where} is writable{made}")


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
