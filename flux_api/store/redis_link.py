"""The connection to Redis (REDIS_URL), shared by everything the nodes share: images, rate-limit
windows and the account pool's state. Not an API key: the one created when API_KEY is unset is a
file in DATA_DIR (store/key_file.py), one machine's, so REDIS_URL requires API_KEY instead.

redis-py keeps a pool of connections per worker process and reconnects by itself, so a Redis
that comes back is used again at the next command; the short timeouts make a Redis that is gone
an immediate error (a 503) instead of a request that hangs.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import redis

from flux_api.config.environment import SettingsError

# Every key this service writes starts so: one Redis (or database) may serve other programs.
PREFIX = "flux-api:"
REDIS = "REDIS_URL and the Redis it names"  # what to check when the store fails
# A command waits this long at most: Redis answers in well under a millisecond when it is well.
_TIMEOUT = 2.0

# The oldest Redis whose scripts may carry flags: the store's writes run as scripts flagged
# `allow-oom` (store/redis_scripts.py), which an older Redis refuses as a syntax error on
# every write, so an older one stops the start instead.
OLDEST = (7, 0)

# What a Redis that is gone, slow or out of memory raises.
ERRORS = (redis.ConnectionError, redis.TimeoutError, redis.ResponseError, OSError)


def without_password(url: str) -> str:
    """REDIS_URL as it may appear in a message: scheme, host, port and database only (a
    password may sit before the host or in the query, as `?password=`)."""
    parts = urlsplit(url)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ":?"
    where = parts.path if parts.scheme == "unix" else f"{parts.hostname or ''}{port}{parts.path}"
    return f"{parts.scheme}://{where}"


def connect(url: str, check: bool = True) -> redis.Redis:
    """A client for `url` (its pool connects when first used). With `check`, a PING now:
    Redis that cannot be reached (or refuses the password), or older than OLDEST, stops the
    start with one line naming REDIS_URL."""
    try:
        client = redis.Redis.from_url(
            url,
            socket_timeout=_TIMEOUT,
            socket_connect_timeout=_TIMEOUT,
            health_check_interval=30,
            retry_on_timeout=False,
        )
        if check:
            client.ping()
            too_old = version_refusal(client, url)
    except (ValueError, *ERRORS, redis.RedisError) as exc:
        raise SettingsError(
            f"REDIS_URL: Redis at {without_password(url)} cannot be used ({_reason(exc)})."
        ) from None
    if check and too_old:
        raise SettingsError(too_old)
    return client


def version_refusal(client: redis.Redis, url: str) -> str | None:
    """The one line that stops the start when Redis is older than OLDEST, else None (also
    when it does not say its version). Redis's own errors pass through."""
    version = _version(client)
    if version is None or version >= OLDEST:
        return None
    return (
        f"REDIS_URL: Redis at {without_password(url)} is version "
        f"{'.'.join(map(str, version))}; flux-api needs {'.'.join(map(str, OLDEST))} or "
        "later (its writes are scripts with flags)."
    )


def _version(client: redis.Redis) -> tuple[int, ...] | None:
    """Redis's version from INFO, or None when it does not say (a managed Redis may rename or
    forbid INFO: then the first write says what is wrong)."""
    try:
        text = client.info("server").get("redis_version", "")
    except redis.ResponseError:
        return None
    numbers = str(text).split(".")[:2]
    return tuple(int(n) for n in numbers) if all(n.isdigit() for n in numbers) else None


def _reason(exc: BaseException) -> str:
    """The error's kind and, when it cannot carry the URL, its text (a password never)."""
    if "NOAUTH" in str(exc) or "authentication required" in str(exc).lower():
        return "it needs a password"
    if isinstance(exc, redis.AuthenticationError):
        return "wrong password"
    if isinstance(exc, ValueError):
        return "not a redis://, rediss:// or unix:// URL"
    if isinstance(exc, redis.ConnectionError):
        return "no connection"
    return type(exc).__name__
