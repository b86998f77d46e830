"""The small shared state in Redis, for several nodes (REDIS_URL): rate-limit windows and the
account pool's record. Each has a disk twin for one machine (ratelimit.DiskWindows,
account_states.FileAccountStates)."""

from __future__ import annotations

import json
import logging
from typing import Callable, TypeVar

import redis

from .account_states import States, clean
from .redis_link import PREFIX, REDIS
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
            raise StoreUnavailable(type(exc).__name__, REDIS) from exc

    def close(self) -> None:
        pass


class RedisAccountStates:
    """The pool's record as one JSON value, changed with WATCH/MULTI: a change made by another
    node in between makes this one start again from the new value.

    Like its disk twin, it only advises which account to call, so it never stops a generation:
    while Redis cannot be reached, this worker keeps the record in memory (one warning), and
    goes back to Redis as soon as it answers."""

    _KEY = PREFIX + "accounts"

    def __init__(self, client: redis.Redis):
        self._redis = client
        self._memory: States = {}
        self._away = False  # whether the last attempt failed (warn once per outage)

    def read(self) -> States:
        try:
            states = _decode(self._redis.get(self._KEY))
        except redis.RedisError as exc:
            return self._without_redis(exc)
        self._back()
        return states

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
            return edit(self._without_redis(exc))
        self._back()
        return result[0]

    def _without_redis(self, exc: BaseException) -> States:
        if not self._away:
            log.warning(
                "Redis cannot be reached (%s): this worker keeps the account states in memory "
                "until it can",
                type(exc).__name__,
            )
        self._away = True
        return self._memory

    def _back(self) -> None:
        if self._away:
            log.warning("Redis answers again: the account states are shared again")
        self._away = False

    def close(self) -> None:
        pass


def _decode(value: bytes | None) -> States:
    try:
        return clean(json.loads(value)) if value else {}
    except ValueError:
        log.warning("the account pool's record in Redis was unreadable; starting afresh")
        return {}
