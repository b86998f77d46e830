"""The disk image store's size cap: the oldest images go first, never those of the request
being stored (the store through the service: tests/system/test_images_and_store.py)."""

import os

from flux_api.store.disk import DiskImageStore


def test_store_evicts_the_oldest_images_beyond_its_size_cap(tmp_path):
    store = DiskImageStore(tmp_path / "images", ttl=600, size_limit_bytes=1_000_000)
    keys = [store.put(os.urandom(100_000)) for _ in range(40)]  # 4 MB into a 1 MB store
    kept = [key for key in keys if store.get(key) is not None]
    assert kept == keys[-len(kept) :] and 5 <= len(kept) <= 10  # the newest, in order
    assert keys[-1] in kept and keys[0] not in kept


def test_one_requests_images_never_evict_each_other(tmp_path):
    store = DiskImageStore(tmp_path / "images", ttl=600, size_limit_bytes=1_000_000)
    older = [store.put(os.urandom(100_000)) for _ in range(5)]
    batch = store.put_many([os.urandom(150_000) for _ in range(4)])  # 600 KB of a 1 MB store
    assert all(store.get(key) is not None for key in batch)
    assert store.get(older[0]) is None and store.get(older[-1]) is not None  # oldest went


def test_usage_is_what_the_size_cap_counts(tmp_path):
    store = DiskImageStore(tmp_path / "images", ttl=600, size_limit_bytes=1_000_000)
    empty = store.usage()
    assert empty.images == 0 and empty.bytes == store._cache.volume()
    store.put_many([os.urandom(50_000), os.urandom(20_000)])
    usage = store.usage()
    assert usage.images == 2
    assert usage.bytes == store._cache.volume() >= empty.bytes + 70_000
