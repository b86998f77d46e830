"""Generated images in Redis, for several nodes sharing one store (REDIS_URL). Needs Redis >= 7.

The same interface as the disk store (the ImageStore Protocol, store/images.py), and the same rules:
each image is kept for IMAGE_EXPIRATION (Redis's own TTL drops it), and STORE_SIZE_LIMIT_MB is kept
to the byte by evicting the oldest images first, all of a request's images fitting together. The
size is the service's own accounting (an index of keys by age and their sizes, changed by one Lua
script per request, store/redis_scripts.py, so nodes never race), not Redis's `maxmemory`: a
`maxmemory` policy would evict by its own sampling, rate-limit windows and account state included.

Redis's `maxmemory` (other programs' data may fill it) is respected too, and nothing is billed
for an image that cannot be kept: before its paid call each generation reserves its worst case
(its decoded RGB size, imaging.pictures.image_bytes) against what Redis could still hold once
every image of ours is evicted, less what the generations in flight on every node have
reserved; otherwise it is refused (503, `/healthz` says "full"). Storing then evicts the oldest
images until the new ones fit under `maxmemory` and gives the reservation back. Eviction, the
counters and the writes are one script flagged `allow-oom`, which Redis runs at `maxmemory`
(Redis 7's script flags): the counter can never disagree with what is stored, and our images
never push Redis past it.

Races left, each answered 503 `store_unavailable` after the images were paid for: other programs
fill Redis while a generation runs; an image larger than its reservation (a PNG with alpha); a
generation outliving its lease (_LEASE_SECONDS). A failed generation's reservation is not given
back: it holds its room until its lease ends, or until the same thread's next generation.
"""

from __future__ import annotations

import contextvars
import io
import logging
import secrets
import time

import redis

from flux_api.config.models import DEFAULT_SIZE
from flux_api.events import Events, ImagesEvicted
from flux_api.imaging.pictures import image_bytes
from flux_api.store.images import (
    KEY_PATTERN,
    WRITABLE,
    OpenedImage,
    StoreUnavailable,
    StoreUsage,
    check_fits,
    new_keys,
)
from flux_api.store.probes import CachedProbe
from flux_api.store.redis_link import ERRORS, PREFIX, REDIS
from flux_api.store.redis_scripts import DELETE, PUT, RESERVE, ROOM, USAGE

log = logging.getLogger(__name__)
_IMAGE = PREFIX + "image:"
_INDEX = PREFIX + "images:by-expiry"  # sorted set: key -> when it expires (ms, Redis clock)
_SIZES = PREFIX + "images:sizes"  # hash: key -> bytes
_TOTAL = PREFIX + "images:bytes"
_RESERVED = PREFIX + "images:reserved"  # sorted set: "<lease id>:<bytes>" -> lease end (ms)
_KEYS = [_INDEX, _SIZES, _TOTAL, _RESERVED]
_HEALTH_SECONDS = 1.0  # one probe per second per worker at most, however many health checks
# Longer than a generation may take with the defaults (UPSTREAM_TIMEOUT 120 s, plus the
# optimizer's 30 s): a lease that ends first only stops protecting its generation's room.
_LEASE_SECONDS = 180
FULL = "full"  # what /healthz says of the store when Redis cannot take one more image
# "full" on /healthz: less room than one image of the default size may take.
_ONE_IMAGE = image_bytes(DEFAULT_SIZE, 1)
_MAXMEMORY = "the maxmemory of the Redis that REDIS_URL names, and what else it holds"

# This generation's reservation ("<lease id>:<bytes>"), from ensure_writable to put_many: both
# run in one request's context (a stream's generation thread runs in a copy of it).
_lease: contextvars.ContextVar[str] = contextvars.ContextVar("redis_image_lease", default="")


class RedisFull(StoreUnavailable):
    """Redis's maxmemory is taken by other data: no image of ours left to evict makes room."""

    def __init__(self, detail: str):
        super().__init__(detail, _MAXMEMORY)


class RedisImageStore:
    UNHEALTHY = "unreachable"

    def __init__(
        self,
        client: redis.Redis,
        *,
        ttl: int,
        size_limit_bytes: int,
        events: Events | None = None,
    ):
        self._events = events or Events()  # evictions
        self.ttl = ttl
        self.size_limit = size_limit_bytes
        self._redis = client
        self._put = client.register_script(PUT)
        self._reserve = client.register_script(RESERVE)
        self._room = client.register_script(ROOM)
        self._delete = client.register_script(DELETE)
        self._usage = client.register_script(USAGE)
        self._state = CachedProbe(self._probe, _HEALTH_SECONDS)
        self._trouble = ""  # what was last logged as wrong ("" when all is well)

    def put(self, data: bytes) -> str:
        return self.put_many([data])[0]

    def put_many(self, images: list[bytes]) -> list[str]:
        total = check_fits(images, self.size_limit)
        lease = _lease.get()
        _lease.set("")
        keys = new_keys(len(images))
        pairs = [item for key, data in zip(keys, images) for item in (key, data)]
        args = [self.ttl * 1000, self.size_limit, _IMAGE, lease, *pairs]
        try:
            stored, evicted, freed = self._put(keys=_KEYS, args=args)
        except ERRORS as exc:
            self._state.remember(self.UNHEALTHY)
            raise StoreUnavailable(type(exc).__name__, REDIS) from exc
        if not stored:  # other data filled Redis while they were made: paid for, not kept
            self._state.remember(FULL)
            raise StoreUnavailable(
                f"Redis filled up with other data while {total / 2**20:.1f} MiB of images "
                "were made: they could not be kept",
                _MAXMEMORY,
            )
        if evicted:
            self._events.announce(ImagesEvicted(evicted, freed))
        return keys

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
        if not isinstance(value, bytes):  # None: unknown or expired
            return None
        stamp, _, data = value.partition(b":")
        try:
            expires_at = int(stamp) / 1000
        except ValueError:  # not written by this service
            return None
        if expires_at <= time.time():
            return None
        return OpenedImage(io.BytesIO(data), len(data), expires_at, data[:16])

    def ensure_writable(self, nbytes: int = _ONE_IMAGE) -> None:
        """Reserve `nbytes`, the most the images of one generation may take, before it pays
        for any: StoreUnavailable when Redis is gone or read-only (a replica after a
        failover), RedisFull when its maxmemory leaves no room for them."""
        lease = f"{secrets.token_hex(8)}:{nbytes}"
        try:
            granted, room = self._reserve(
                keys=_KEYS, args=[_LEASE_SECONDS * 1000, lease, _lease.get()]
            )
        except ERRORS as exc:
            self._trouble_seen(
                self.UNHEALTHY,
                f"Redis cannot be written ({type(exc).__name__}): generations that store "
                "images answer 503 until it can",
            )
            raise StoreUnavailable("Redis unreachable or read-only", REDIS) from exc
        if not granted:
            room = max(0, room)
            if room < _ONE_IMAGE:
                self._trouble_seen(
                    FULL,
                    "Redis is full (its maxmemory taken by other data): generations that store "
                    "images answer 503, unbilled, until it has room",
                )
            raise RedisFull(
                f"Redis is full, nothing was billed: {room / 2**20:.1f} MiB left in its "
                "maxmemory with no image of this service to evict, for images of up to "
                f"{nbytes / 2**20:.1f} MiB"
            )
        _lease.set(lease)
        # A small image let in while one of the default size would not be: still full.
        if self._trouble and (self._trouble != FULL or nbytes >= _ONE_IMAGE):
            log.warning("Redis can take images again")
            self._trouble = ""

    def _trouble_seen(self, state: str, warning: str) -> None:
        """One warning per outage: each refused request has its own access line."""
        self._state.remember(state)
        if self._trouble != state:
            log.warning("%s", warning)
        self._trouble = state

    def health(self) -> str:
        """ "writable", "full" (Redis's maxmemory leaves no room for one image) or
        "unreachable": probed at most every second per worker; meanwhile, and while one
        thread waits on a Redis that hangs, the others give the last answer."""
        return self._state()

    def writable(self) -> bool:
        return self.health() == WRITABLE

    def _probe(self) -> str:
        try:
            limited, room = self._room(keys=_KEYS)
        except ERRORS:
            return self.UNHEALTHY
        return FULL if limited and room < _ONE_IMAGE else WRITABLE

    def release(self) -> None:
        """Give back this generation's reservation when it ends without storing (it failed, or
        its client left): held until its lease ran out, it made a nearly full Redis refuse."""
        lease = _lease.get()
        if not lease:
            return
        _lease.set("")
        try:
            self._redis.zrem(_RESERVED, lease)
        except ERRORS:  # the lease runs out by itself
            pass

    def delete(self, key: str) -> bool:
        """Remove an image before it expires (its owner asked); False when there was none."""
        if not KEY_PATTERN.fullmatch(key):
            return False
        try:
            return bool(self._delete(keys=[_INDEX, _SIZES, _TOTAL], args=[key, _IMAGE]))
        except ERRORS as exc:
            raise StoreUnavailable(type(exc).__name__, REDIS) from exc

    def __len__(self) -> int:
        try:
            return int(self._redis.zcard(_INDEX))
        except ERRORS as exc:
            raise StoreUnavailable(type(exc).__name__, REDIS) from exc

    def usage(self) -> StoreUsage:
        """The images not expired and their bytes, from the index and the running total (one
        script, O(log n) plus the images expired since the last store)."""
        try:
            images, stored = self._usage(keys=_KEYS)
        except ERRORS as exc:
            raise StoreUnavailable(type(exc).__name__, REDIS) from exc
        return StoreUsage(int(images), int(stored))

    def close(self) -> None:
        self._redis.close()
