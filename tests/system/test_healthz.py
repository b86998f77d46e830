"""/healthz: its answer is probed at most every few seconds, so health checks write nothing."""

import gc
import os
import shutil
import time
from pathlib import Path

from flux_api.store import disk as store
from tests.support.fakes.workers_ai import ACCOUNT_ID


def _disk_state(directory: Path) -> dict:
    """Size and modification time of everything under `directory`, itself included."""
    paths = [directory, *directory.rglob("*")]
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in paths}


def _write_bytes() -> int:
    """Bytes this process (the in-process server among it) has caused to be written to disk."""
    with open(f"/proc/{os.getpid()}/io") as counters:
        fields = dict(line.split(": ") for line in counters.read().splitlines())
    return int(fields["write_bytes"])


def test_health_checks_write_nothing_to_the_data_directory(service, service_env):
    data = Path(service_env["DATA_DIR"])
    assert service.get("/healthz", key=None).status_code == 200  # the one probe
    before = _disk_state(data)
    # Earlier tests' diskcache objects, garbage now, checkpoint their SQLite files when the
    # collector closes them (~86 KiB each): not the health checks' writes, so not in the count.
    gc.collect()
    gc.disable()
    try:
        written = _write_bytes()
        statuses = {service.get("/healthz", key=None).status_code for _ in range(200)}
        written = _write_bytes() - written
    finally:
        gc.enable()
    assert statuses == {200}
    assert _disk_state(data) == before  # was an 81 KiB entry set and deleted per check
    assert written < 200 * 4096  # the whole process: not even a page each


def test_a_broken_store_is_reported_at_once_to_a_caller_with_a_key(service, service_env):
    """The image count a keyed caller sees needs the index: when that fails, the cached
    "writable" is dropped there and then (werkzeug serves each request on a new thread, with
    a new SQLite connection, which cannot open the index any more)."""
    assert service.get("/healthz").json()["images_stored"] == 0
    images = Path(service_env["DATA_DIR"]) / "images"
    shutil.rmtree(images)
    images.write_text("not a directory any more")
    assert service.get("/healthz").status_code == 503  # within the cached answer's 5 s
    body = service.get("/healthz", key=None).json()
    assert body["store"] == "not writable"


def test_the_probe_finds_a_broken_directory_within_the_cache_period(tmp_path):
    images = tmp_path / "images"
    image_store = store.DiskImageStore(images, ttl=600, size_limit_bytes=1_000_000)
    assert image_store.writable()
    shutil.rmtree(images)
    images.write_text("not a directory any more")
    broken = time.monotonic()
    assert image_store.writable()  # the cached answer: no probe yet
    while image_store.writable():  # this thread's open connection still reads the index
        assert time.monotonic() - broken < store._HEALTH_SECONDS + 1
        time.sleep(0.1)
    assert time.monotonic() - broken > store._HEALTH_SECONDS - 1
    image_store.close()


def test_no_cloudflare_credentials_is_degraded_with_the_reason(start_service):
    """Every generation would answer 503: a monitor must not read "ok"."""
    service = start_service(CF_ACCOUNT_ID=None, CF_API_TOKEN=None)
    health = service.get("/healthz", key=None)
    assert health.status_code == 200  # as for parked accounts: every node shares the setting
    body = health.json()
    assert body["status"] == "degraded" and body["cloudflare"] == "missing"
    assert body["reason"] == (
        "no Cloudflare credentials: set CF_ACCOUNT_ID and CF_API_TOKEN (or CF_ACCOUNTS)"
    )
    assert service.chat("a fox").status_code == 503


def test_a_configured_service_is_ok_without_a_reason(service, fake_ai):
    body = service.get("/healthz", key=None).json()
    assert body["status"] == "ok" and "reason" not in body


def test_every_account_parked_is_degraded_with_the_reason(service, fake_ai):
    fake_ai.exhausted.add(ACCOUNT_ID)
    assert service.chat("a fox").status_code == 429
    body = service.get("/healthz", key=None).json()
    assert body["status"] == "degraded" and "no Cloudflare account is usable" in body["reason"]
