"""Generated images in Redis, for several nodes sharing one store (REDIS_URL).

The same interface as the disk store (store.ImageStore), and the same rules: each image is kept
for IMAGE_EXPIRATION (Redis's own TTL drops it), and STORE_SIZE_LIMIT_MB is kept to the byte by
evicting the oldest images first, all of a request's images fitting together. The size is the
service's own accounting (an index of keys by age and their sizes, changed by one Lua script per
request, so nodes never race), not Redis's `maxmemory`: a `maxmemory` policy would evict by its
own sampling, rate-limit windows and account state included. Should Redis still run out of
memory (its `maxmemory` below STORE_SIZE_LIMIT_MB), the oldest images are dropped and the write
tried once more; failing that, the answer is 503 `store_unavailable`, never a 500.
"""

from __future__ import annotations

import io
import logging
import time

import redis

from .probes import CachedProbe
from .redis_link import ERRORS, PREFIX, REDIS
from .store import KEY_PATTERN, OpenedImage, StoreUnavailable, check_fits, new_keys

log = logging.getLogger(__name__)
_IMAGE = PREFIX + "image:"
_INDEX = PREFIX + "images:by-expiry"  # sorted set: key -> when it expires (ms, Redis clock)
_SIZES = PREFIX + "images:sizes"  # hash: key -> bytes
_TOTAL = PREFIX + "images:bytes"
_PROBE = PREFIX + "write-probe"
_HEALTH_SECONDS = 1.0  # a PING per second per worker at most, however many health checks

# KEYS: index, sizes, total. ARGV: ttl (ms), limit (bytes), image prefix, then a key and its
# bytes for each image. Forgets what has expired (Redis dropped the images themselves), evicts
# the images closest to their end (the oldest, with one IMAGE_EXPIRATION) until the new ones
# fit, then stores them: one atomic step, whatever the other nodes do meanwhile. Time is Redis's
# own clock, and each image carries its expiry, so nodes whose clocks (or IMAGE_EXPIRATION)
# differ still agree on what has expired.
_PUT = """
local index, sizes, total = KEYS[1], KEYS[2], KEYS[3]
local ttl, limit, prefix = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local function forget(key)
  redis.call('DECRBY', total, tonumber(redis.call('HGET', sizes, key) or '0'))
  redis.call('HDEL', sizes, key)
  redis.call('ZREM', index, key)
end
for _, key in ipairs(redis.call('ZRANGEBYSCORE', index, '-inf', now)) do forget(key) end
local incoming = 0
for i = 5, #ARGV, 2 do incoming = incoming + #ARGV[i] end
while tonumber(redis.call('GET', total) or '0') + incoming > limit do
  local first = redis.call('ZRANGE', index, 0, 0)
  if #first == 0 then break end
  redis.call('DEL', prefix .. first[1])
  forget(first[1])
end
for i = 4, #ARGV, 2 do
  local key, data = ARGV[i], ARGV[i + 1]
  redis.call('SET', prefix .. key, tostring(now + ttl) .. ':' .. data, 'PX', ttl)
  redis.call('ZADD', index, now + ttl, key)
  redis.call('HSET', sizes, key, #data)
  redis.call('INCRBY', total, #data)
end
return 1
"""


class RedisImageStore:
    UNHEALTHY = "unreachable"

    def __init__(self, client: redis.Redis, *, ttl: int, size_limit_bytes: int):
        self.ttl = ttl
        self.size_limit = size_limit_bytes
        self._redis = client
        self._put = client.register_script(_PUT)
        self._writable = CachedProbe(self._ping, _HEALTH_SECONDS)
        self._failing = False

    def put(self, data: bytes) -> str:
        return self.put_many([data])[0]

    def put_many(self, images: list[bytes]) -> list[str]:
        total = check_fits(images, self.size_limit)
        keys = new_keys(len(images))
        pairs = [item for key, data in zip(keys, images) for item in (key, data)]
        args = [self.ttl * 1000, self.size_limit, _IMAGE, *pairs]
        try:
            self._store(args, total)
        except ERRORS as exc:
            self._writable.failed()
            raise StoreUnavailable(type(exc).__name__, REDIS) from exc
        return keys

    def _store(self, args: list, incoming: int) -> None:
        try:
            self._put(keys=[_INDEX, _SIZES, _TOTAL], args=args)
        except redis.exceptions.OutOfMemoryError:
            self._drop_oldest(incoming)  # Redis's maxmemory is below STORE_SIZE_LIMIT_MB
            self._put(keys=[_INDEX, _SIZES, _TOTAL], args=args)

    def _drop_oldest(self, needed: int) -> None:
        """Free a little more than `needed` bytes of the oldest images, with commands Redis
        allows when it is out of memory (deletions)."""
        freed = 0
        while freed < needed * 5 // 4:
            oldest = self._redis.zpopmin(_INDEX)
            if not oldest:
                return
            key = oldest[0][0].decode()
            size = int(self._redis.hget(_SIZES, key) or 0)
            self._redis.delete(_IMAGE + key)
            self._redis.hdel(_SIZES, key)
            self._redis.decrby(_TOTAL, size)
            freed += size

    def get(self, key: str) -> bytes | None:
        opened = self.open(key)
        return None if opened is None else opened.file.read()

    def open(self, key: str) -> OpenedImage | None:
        """The image as an in-memory file, or None when unknown, expired or malformed. Redis has
        no file to send, so it is served from memory (bench/README.md gives the cost)."""
        if not KEY_PATTERN.fullmatch(key):
            return None
        try:
            value = self._redis.get(_IMAGE + key)
        except ERRORS as exc:
            raise StoreUnavailable(type(exc).__name__, REDIS) from exc
        if value is None:
            return None
        stamp, _, data = value.partition(b":")
        try:
            expires_at = int(stamp) / 1000
        except ValueError:  # not written by this service
            return None
        if expires_at <= time.time():
            return None
        return OpenedImage(io.BytesIO(data), len(data), expires_at, data[:16])

    def ensure_writable(self) -> None:
        """A tiny write before every generation that will be stored, so that no Workers AI
        call is paid for an image that could not be kept: Redis gone, or turned read-only (a
        replica after a failover), which a PING would not notice. Out of memory is no failure
        here: storing makes room."""
        try:
            self._redis.set(_PROBE, b"1", px=10_000)
        except redis.exceptions.OutOfMemoryError:
            return
        except ERRORS as exc:
            self._writable.failed()
            if not self._failing:  # once per outage: each refused request has its access line
                log.warning(
                    "Redis cannot be written (%s): generations that store images answer 503 "
                    "until it can",
                    type(exc).__name__,
                )
            self._failing = True
            raise StoreUnavailable("Redis unreachable or read-only", REDIS) from exc
        if self._failing:
            log.warning("Redis can be written again")
        self._failing = False

    def writable(self) -> bool:
        """A PING at most every second per worker; meanwhile, and while one thread waits on
        a Redis that hangs, the others give the last answer instead of queueing behind it."""
        return self._writable()

    def _ping(self) -> bool:
        try:
            return bool(self._redis.ping())
        except ERRORS:
            return False

    def __len__(self) -> int:
        try:
            return int(self._redis.zcard(_INDEX))
        except ERRORS as exc:
            raise StoreUnavailable(type(exc).__name__, REDIS) from exc

    def close(self) -> None:
        self._redis.close()
