"""The small shared state in Redis, for several nodes (REDIS_URL): rate-limit windows, the
account pool's record and the created API key. Each has a disk twin for one machine
(ratelimit.DiskWindows, account_states.FileAccountStates, auth.load_or_create_key)."""

from __future__ import annotations

import json
import logging
import secrets
from typing import Callable, TypeVar

import redis

from .account_states import States, clean
from .redis_link import PREFIX
from .store import StoreUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

# KEYS: the counter. ARGV: amount, ceiling, seconds to keep it. Adds unless that passes the
# ceiling, in one step: two nodes can never both take the last place of a window.
_ADD = """
local count = redis.call('INCRBY', KEYS[1], ARGV[1])
if count == tonumber(ARGV[1]) then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
if count > tonumber(ARGV[2]) then redis.call('DECRBY', KEYS[1], ARGV[1]) end
return count
"""


class RedisWindows:
    def __init__(self, client: redis.Redis):
        self._add = client.register_script(_ADD)

    def add(self, counter: str, amount: int, ceiling: int, expire: int) -> int:
        try:
            return int(
                self._add(keys=[f"{PREFIX}ratelimit:{counter}"], args=[amount, ceiling, expire])
            )
        except redis.RedisError as exc:
            raise StoreUnavailable(type(exc).__name__) from exc

    def close(self) -> None:
        pass


class RedisAccountStates:
    """The pool's record as one JSON value, changed with WATCH/MULTI: a change made by another
    node in between makes this one start again from the new value."""

    _KEY = PREFIX + "accounts"

    def __init__(self, client: redis.Redis):
        self._redis = client

    def read(self) -> States:
        try:
            value = self._redis.get(self._KEY)
        except redis.RedisError as exc:
            raise StoreUnavailable(type(exc).__name__) from exc
        return _decode(value)

    def change(self, edit: Callable[[States], T]) -> T:
        result: list = []

        def apply(pipe: redis.client.Pipeline) -> None:
            states = _decode(pipe.get(self._KEY))
            result[:] = [edit(states)]
            pipe.multi()
            pipe.set(self._KEY, json.dumps(states))

        try:
            self._redis.transaction(apply, self._KEY)
        except redis.RedisError as exc:
            raise StoreUnavailable(type(exc).__name__) from exc
        return result[0]

    def close(self) -> None:
        pass


def _decode(value: bytes | None) -> States:
    try:
        return clean(json.loads(value)) if value else {}
    except ValueError:
        log.warning("the account pool's record in Redis was unreadable; starting afresh")
        return {}


def load_or_create_key_in(client: redis.Redis) -> str:
    """The API key every node uses when API_KEY is not set: created once, by whichever node
    asks first (SET NX), then read by all."""
    key = PREFIX + "api-key"
    try:
        if client.set(key, f"sk-flux-{secrets.token_urlsafe(32)}", nx=True):
            log.warning("API_KEY is not set: created a key in Redis (%s)", key)
        stored = client.get(key)
    except redis.RedisError as exc:
        raise StoreUnavailable(type(exc).__name__) from exc
    log.info("API_KEY is not set: clients must use the key stored in Redis under %s", key)
    return stored.decode()
