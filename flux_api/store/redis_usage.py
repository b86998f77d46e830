"""The usage ledger in Redis: one hash per UTC day (`flux-api:usage:<day>`), shared by every
node. A generation's counts are one round trip: HINCRBYFLOAT each, then EXPIRE, in MULTI/EXEC."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import redis

from flux_api.store.redis_link import ERRORS
from flux_api.store.usage import KEEP_DAYS, UsageUnavailable

_PREFIX = "flux-api:usage:"
_EXPIRE = (KEEP_DAYS + 1) * 86400


class RedisUsageBook:
    def __init__(self, client: redis.Redis):
        self._redis = client

    def add(self, day: str, counts: Mapping[str, float]) -> None:
        key = _PREFIX + day
        pipe = self._redis.pipeline(transaction=True)  # all of a generation's counts, or none
        for name, amount in counts.items():
            pipe.hincrbyfloat(key, name, amount)
        pipe.expire(key, _EXPIRE)
        try:
            pipe.execute()
        except ERRORS as exc:
            raise UsageUnavailable(type(exc).__name__) from exc

    def days(self, days: Iterable[str]) -> dict[str, dict[str, float]]:
        wanted = list(days)
        pipe = self._redis.pipeline(transaction=False)
        for day in wanted:
            pipe.hgetall(_PREFIX + day)
        try:
            found = pipe.execute()
        except ERRORS as exc:
            raise UsageUnavailable(type(exc).__name__) from exc
        return {day: _numbers(value) for day, value in zip(wanted, found) if value}

    def close(self) -> None:
        """The connection is shared with the image store, which closes it."""


def _numbers(fields: dict) -> dict[str, float]:
    counters = {}
    for name, value in fields.items():
        try:
            counters[name.decode()] = float(value)
        except (UnicodeDecodeError, ValueError):  # not written by us: left out
            continue
    return counters
