"""The small shared state in Redis, for several nodes (REDIS_URL): rate-limit windows and the
account pool's record. Each has a disk twin for one machine (ratelimit.DiskWindows,
states.FileAccountStates)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TypeVar

import redis

from flux_api.accounts.states import States, clean
from flux_api.store.images import StoreUnavailable
from flux_api.store.redis_link import PREFIX, REDIS

log = logging.getLogger(__name__)
T = TypeVar("T")

# KEYS: the counter. ARGV: amount, ceiling, seconds to keep it. Adds unless that passes the
# ceiling, in one step: two nodes can never both take the last place of a window. A value that
# is not a count we could have written (another program's, or a negative one that would lift
# the limit) is deleted first: INCRBY would refuse it, or count from it, until the window ends.
_ADD = """
local damaged = 0
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'none' then
  local value = kind == 'string' and redis.call('GET', KEYS[1])
  if not (value and string.len(value) <= 15 and string.match(value, '^%d+$')) then
    redis.call('DEL', KEYS[1])
    damaged = 1
  end
end
local count = redis.call('INCRBY', KEYS[1], ARGV[1])
if count == tonumber(ARGV[1]) then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
if count > tonumber(ARGV[2]) then redis.call('DECRBY', KEYS[1], ARGV[1]) end
return {count, damaged}
"""


class RedisWindows:
    def __init__(self, client: redis.Redis):
        self._add = client.register_script(_ADD)

    def add(self, counter: str, amount: int, ceiling: int, expire: int) -> int:
        try:
            count, damaged = self._add(
                keys=[f"{PREFIX}ratelimit:{counter}"], args=[amount, ceiling, expire]
            )
        except redis.RedisError as exc:
            raise StoreUnavailable(type(exc).__name__, REDIS) from exc
        if damaged:
            log.warning(
                "a rate-limit counter in Redis was damaged (not written by this service); "
                "it counts from 0 again"
            )
        return int(count)

    def warm(self) -> None:
        """Nothing to open per thread: the Redis client's connections are shared."""

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
            states = _decode(_get(self._redis, self._KEY))
        except _Damaged:  # replaced in a transaction, so only the node that does it warns
            return self.change(lambda states: states.copy())
        except redis.RedisError as exc:
            return self._without_redis(exc)
        self._back()
        return states

    def change(self, edit: Callable[[States], T]) -> T:
        result: list = []
        damaged: list[str] = []

        def apply(pipe: redis.client.Pipeline) -> None:
            damaged.clear()
            try:
                states = _decode(_get(pipe, self._KEY))
            except _Damaged as exc:
                states = {}
                damaged.append(str(exc))
            result[:] = [edit(states)]
            pipe.multi()
            pipe.set(self._KEY, json.dumps(states))

        try:
            self._redis.transaction(apply, self._KEY)
        except redis.RedisError as exc:
            return edit(self._without_redis(exc))
        self._back()
        if damaged:
            log.warning(
                "the account pool's record in Redis was damaged (%s, not written by this "
                "service); dropped and rebuilt",
                damaged[0],
            )
        return result[0]

    @property
    def in_memory(self) -> bool:
        return self._away

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


class _Damaged(Exception):
    """A value at our key that this service did not write: what it is."""


def _decode(value: bytes | None) -> States:
    try:
        return clean(json.loads(value)) if value else {}
    except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, or nested too deep
        raise _Damaged(type(exc).__name__) from exc


def _get(pipe_or_client, key: str) -> bytes | None:
    try:
        return pipe_or_client.get(key)
    except redis.ResponseError as exc:
        if str(exc).startswith("WRONGTYPE"):  # another program put a list, hash... there
            raise _Damaged("not a string") from exc
        raise
