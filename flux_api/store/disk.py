"""Generated images on disk, with expiry and a size cap (diskcache).

diskcache keeps its index in SQLite and large values in files, so every gunicorn worker can
open the same directory, and what is stored survives restarts.
"""

from __future__ import annotations

import io
import os
import sqlite3
import time
from pathlib import Path

import diskcache

from flux_api.events import Events, ImagesEvicted
from flux_api.store.images import (
    KEY_PATTERN,
    WRITABLE,
    OpenedImage,
    StoreUnavailable,
    StoreUsage,
    check_fits,
    new_keys,
)
from flux_api.store.locks import WriteLock
from flux_api.store.probes import CachedProbe

# token_urlsafe(24) gives 192 random bits in 32 URL-safe characters.
_SWEEP_SECONDS = 10  # how often expired images are removed from disk (reads never see them)
_PROBE_NAME = ".health-probe"  # a file beside diskcache's own, never a key
# How long a health answer is reused: /healthz is unauthenticated and may be called a thousand
# times a second, and each probe queues on the write lock that every generation needs.
_HEALTH_SECONDS = 5.0


_STORE_ERRORS = (OSError, sqlite3.Error, diskcache.Timeout)


class DiskImageStore:
    UNHEALTHY = "not writable"  # what /healthz says of it when it cannot take an image

    def __init__(
        self, directory: Path, *, ttl: int, size_limit_bytes: int, events: Events | None = None
    ):
        self.directory = Path(directory)
        self.ttl = ttl
        self.size_limit = size_limit_bytes
        self._events = events or Events()  # evictions
        self._next_sweep = 0.0
        self._writable = CachedProbe(self._probe, _HEALTH_SECONDS)
        self._write_lock = WriteLock(self.directory / "write.lock")
        # diskcache's own culling evicts ten entries at a time and may take the entry just
        # written; eviction is done here instead (cull_limit=0), oldest first, to the byte.
        self._cache = diskcache.Cache(
            str(self.directory),
            size_limit=size_limit_bytes,
            eviction_policy="least-recently-stored",
            cull_limit=0,
        )

    def put(self, data: bytes) -> str:
        """Store image bytes for `ttl` seconds under a new unguessable key."""
        return self.put_many([data])[0]

    def put_many(self, images: list[bytes]) -> list[str]:
        """Store one request's images together: room is made for all of them first, so the
        last never evicts the first (their links would 404 in the answer that gives them)."""
        total = check_fits(images, self.size_limit)
        keys = new_keys(len(images))
        try:
            with self._write_lock:
                now = time.monotonic()
                if now >= self._next_sweep:  # a sweep is a write transaction: not every put
                    self._next_sweep = now + _SWEEP_SECONDS
                    self._cache.expire()
                self._make_room(total)
                for key, data in zip(keys, images):
                    # As a file object diskcache writes it in one piece (bytes go line by line).
                    self._cache.set(key, io.BytesIO(data), read=True, expire=self.ttl)
        except _STORE_ERRORS as exc:
            raise StoreUnavailable(type(exc).__name__) from exc
        return keys

    def _make_room(self, incoming: int) -> None:
        """Evict the oldest images until `incoming` more bytes fit under the size cap."""
        before = volume = self._cache.volume()
        evicted = 0
        while volume + incoming > self.size_limit:
            oldest = next(iter(self._cache), None)  # keys come in the order they were stored
            if oldest is None:
                break
            evicted += self._cache.delete(oldest)
            volume = self._cache.volume()
        if evicted:
            self._events.announce(ImagesEvicted(evicted, before - volume))

    def release(self) -> None:
        """Nothing to give back: the disk store reserves no room (the size cap evicts)."""

    def delete(self, key: str) -> bool:
        """Remove an image before it expires (its owner asked); False when there was none."""
        if not KEY_PATTERN.fullmatch(key):
            return False
        try:
            with self._write_lock:
                return bool(self._cache.delete(key))
        except _STORE_ERRORS as exc:
            raise StoreUnavailable(type(exc).__name__) from exc

    def get(self, key: str) -> bytes | None:
        """The image's bytes, or None when it is unknown, expired or the key is malformed."""
        opened = self.open(key)
        if opened is None:
            return None
        with opened.file:
            return opened.file.read()

    def open(self, key: str) -> OpenedImage | None:
        """The image as an open file (images are always kept as files), or None when it is
        unknown, expired or the key is malformed."""
        if not KEY_PATTERN.fullmatch(key):
            return None
        try:
            handle, expires_at = self._cache.get(key, default=None, read=True, expire_time=True)
        except _STORE_ERRORS as exc:
            raise StoreUnavailable(type(exc).__name__) from exc
        if handle is None:
            return None
        if expires_at is None or expires_at <= time.time() or isinstance(handle, bytes):
            if not isinstance(handle, bytes):
                handle.close()
            return None
        # pread leaves the file position alone: sendfile starts from it.
        head = os.pread(handle.fileno(), 16, 0)
        return OpenedImage(handle, os.fstat(handle.fileno()).st_size, expires_at, head)

    def ensure_writable(self, nbytes: int = 0) -> None:
        """Raise StoreUnavailable, before any paid work, when an image could not be kept
        (`nbytes`, what the images may take, needs no reservation: the size cap evicts)."""
        if not self.writable():
            raise StoreUnavailable("not writable")

    def health(self) -> str:
        """What /healthz says of the store: "writable" or "not writable"."""
        return WRITABLE if self.writable() else self.UNHEALTHY

    def writable(self) -> bool:
        """Whether an image could be stored now: probed at most every _HEALTH_SECONDS per
        process, so health checks, however many, do not write to disk or wait on writers."""
        return self._writable()

    def _probe(self) -> bool:
        """A one-byte file where images go (the directory is there, writable, not full), and a
        write transaction on the index that writes nothing (the database is not read-only or
        stuck). The probe was an 81 KiB entry: a 40 KB file and two 5-page WAL commits."""
        path = self.directory / _PROBE_NAME
        try:
            with self._write_lock:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                try:
                    os.write(fd, b"1")
                finally:
                    os.close(fd)
                os.unlink(path)
                with self._cache.transact(retry=False):
                    pass
        except _STORE_ERRORS:
            return False
        return True

    def __len__(self) -> int:
        """How many images are stored (expired ones not yet removed included)."""
        try:
            return len(self._cache)
        except _STORE_ERRORS as exc:
            # Each thread opens its own connection: a new one fails while a cached health
            # answer still says writable. Say so at once rather than at the next probe.
            self._writable.failed()
            raise StoreUnavailable(type(exc).__name__) from exc

    def usage(self) -> StoreUsage:
        """Images and bytes as the size cap counts them: diskcache's running count and volume
        (its index included), read from its settings table; expired images not yet swept
        (every _SWEEP_SECONDS, on a store) are still in them."""
        try:
            return StoreUsage(len(self._cache), self._cache.volume())
        except _STORE_ERRORS as exc:
            raise StoreUnavailable(type(exc).__name__) from exc

    def close(self) -> None:
        self._cache.close()
        self._write_lock.close()
