"""What every image store is (the disk store, store/disk.py; the Redis one, store/redis_images.py):
its interface, its keys, its answers and its failures. Nothing above the store knows which one
services.py chose."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from flux_api.events import Events, StoreFailed

# token_urlsafe(24) gives 192 random bits in 32 URL-safe characters.
_KEY_BYTES = 24
KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,64}")
WRITABLE = "writable"  # what /healthz says of a store that can take an image


class StoreUnavailable(Exception):
    """The image store cannot be used (disk full, directory gone, database locked; Redis gone
    or read-only). `setting` names what the operator should check."""

    def __init__(self, detail: str, setting: str = "DATA_DIR"):
        super().__init__(detail)
        self.detail = detail
        self.setting = setting


@contextmanager
def failures_announced(events: Events) -> Iterator[None]:
    """Where a request first meets a store that cannot be used (the rate limiter's counters,
    the room for its images, keeping them): StoreFailed is announced (an alert), then the
    request fails as before. The one place it is announced, so that every such path alerts."""
    try:
        yield
    except StoreUnavailable as exc:
        events.announce(StoreFailed(exc.setting, exc.detail))
        raise


class StoreFull(Exception):
    """One request's images are larger than the whole store (STORE_SIZE_LIMIT_MB)."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


def check_fits(images: list[bytes], size_limit: int) -> int:
    """Their total size; StoreFull when they are larger than the whole store."""
    total = sum(len(data) for data in images)
    if total > size_limit:
        raise StoreFull(
            f"{len(images)} image(s) of {total / 2**20:.1f} MiB do not fit in "
            f"{size_limit / 2**20:.0f} MiB"
        )
    return total


def new_keys(count: int) -> list[str]:
    return [secrets.token_urlsafe(_KEY_BYTES) for _ in range(count)]


@dataclass(frozen=True)
class OpenedImage:
    """A stored image as an open file (a real one on disk, for sendfile; bytes in memory from
    Redis); the caller closes `file`. `head`: its first bytes, which tell its type."""

    file: BinaryIO
    size: int
    expires_at: float
    head: bytes

    @property
    def seconds_left(self) -> int:
        return max(0, int(self.expires_at - time.time()))


@dataclass(frozen=True)
class StoreUsage:
    """What the store holds: its images and their bytes, as counted against STORE_SIZE_LIMIT_MB
    (the disk store counts expired images until its next sweep)."""

    images: int
    bytes: int


class ImageStore(Protocol):
    """Images kept for IMAGE_EXPIRATION within STORE_SIZE_LIMIT_MB, oldest evicted first."""

    UNHEALTHY: str  # what /healthz says when the store cannot be used

    def put(self, data: bytes) -> str: ...

    def put_many(self, images: list[bytes]) -> list[str]:
        """Store one request's images together under new keys; StoreFull, StoreUnavailable."""
        ...

    def get(self, key: str) -> bytes | None: ...

    def open(self, key: str) -> OpenedImage | None: ...

    def delete(self, key: str) -> bool: ...

    def ensure_writable(self, nbytes: int = ...) -> None:
        """Before any paid call: StoreUnavailable when `nbytes` of images could not be kept."""
        ...

    def release(self) -> None:
        """Give back what ensure_writable reserved, when nothing was stored."""
        ...

    def health(self) -> str: ...

    def writable(self) -> bool: ...

    def __len__(self) -> int: ...

    def usage(self) -> StoreUsage:
        """Cheap enough for every metrics scrape; StoreUnavailable when it cannot be read."""
        ...

    def close(self) -> None: ...
