"""Alert claims in Redis: `SET flux-api:alert:<name> <time> NX EX <seconds>`, one atomic
command, so one node of all that share the Redis sends each alert."""

from __future__ import annotations

import time

import redis

from flux_api.store.alert_claims import ClaimsUnavailable
from flux_api.store.redis_link import ERRORS, PREFIX

_PREFIX = PREFIX + "alert:"


class RedisAlertClaims:
    def __init__(self, client: redis.Redis):
        self._redis = client

    def claim(self, name: str, seconds: int) -> bool:
        try:
            return bool(self._redis.set(_PREFIX + name, int(time.time()), nx=True, ex=seconds))
        except ERRORS as exc:
            raise ClaimsUnavailable(type(exc).__name__) from exc

    def hold(self, name: str, seconds: int) -> None:
        try:
            self._redis.set(_PREFIX + name, int(time.time()), ex=seconds)
        except ERRORS as exc:
            raise ClaimsUnavailable(type(exc).__name__) from exc

    def close(self) -> None:
        pass  # the client is the service's own (services.py), closed with the store
