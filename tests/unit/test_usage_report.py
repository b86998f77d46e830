"""The usage report from the ledger's days: run-out times at today's rate, shares, images per
UTC hour (written with the generation's other counts, in one write), what a key that may see
only its own is shown, and damaged counters left out (on a real DATA_DIR ledger)."""

from __future__ import annotations

import calendar
import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from flux_api.events import Caller, GenerationDone, RequestDone, UpstreamCall
from flux_api.observe.ledger import Ledger, pool_share
from flux_api.observe.usage_report import NOT_TODAY, USED_UP, runs_out, usage_report
from flux_api.store.usage import DiskUsageBook
from tests.support import ROOT

NOON = calendar.timegm((2026, 12, 7, 12, 0, 0))
POOL = [{"id": "aaaaaa…1111", "state": "ok"}, {"id": "bbbbbb…2222", "state": "busy"}]


@pytest.mark.parametrize(
    "used, allocation, expected",
    [
        (6000, 10000, "2026-12-07T20:00:00Z"),  # 6000 in 12 h: the other 4000 take 8 h
        (5000, 10000, NOT_TODAY),  # exactly at midnight: the reset comes first
        (100, 10000, NOT_TODAY),
        (0, 10000, NOT_TODAY),
        (10000, 10000, USED_UP),
        (12000, 10000, USED_UP),
    ],
)
def test_runs_out_at_todays_rate(used, allocation, expected):
    assert runs_out(used, allocation, NOON) == expected


@pytest.fixture
def book(tmp_path):
    book = DiskUsageBook(tmp_path / "usage")
    yield book
    book.close()


def test_the_report_counts_accounts_and_keys(book):
    book.add(
        "2026-12-07",
        {
            "account|aaaaaa…1111|calls|ok": 3,
            "account|aaaaaa…1111|calls|capacity": 1,
            "account|aaaaaa…1111|neurons": 1000,
            "account|aaaaaa…1111|neurons_estimated": 2000,
            "key|alice|images|/v1/chat/completions|flux-1-schnell": 2,
            "key|kids|images|/v1/images/generations|flux-2-dev": 1,
            "key|kids|refused|rate_limit_exceeded": 1,
        },
    )
    book.add("2026-12-07", {"key|alice|images|/v1/chat/completions|flux-1-schnell": 1})
    book.add("2026-12-06", {"key|alice|failed|UpstreamFailed": 1})
    report = usage_report(book, POOL, 10_000, NOON)
    today = report["today"]
    first, second = today["accounts"]
    assert first["calls"] == {"ok": 3, "capacity": 1}
    assert (first["neurons"], first["neurons_estimated"], first["share"]) == (3000, 2000, 0.3)
    assert first["runs_out"] == NOT_TODAY  # 3000 in 12 h of 10000: the other 7000 in 28 h
    assert second == {
        "id": "bbbbbb…2222",
        "state": "busy",
        "calls": {},
        "neurons": 0.0,
        "neurons_estimated": 0.0,
        "share": 0.0,
        "runs_out": NOT_TODAY,
    }
    assert today["pool"]["share"] == 0.15 and today["pool"]["runs_out"] == NOT_TODAY
    assert [key["name"] for key in today["keys"]] == ["alice", "kids"]
    assert today["keys"][0]["images"] == 3 and today["images"] == 4
    assert today["keys"][1]["refused"] == {"rate_limit_exceeded": 1}
    assert report["days"][1]["keys"][0]["failed"] == {"UpstreamFailed": 1}
    assert len(report["days"]) == 31 and report["days"][30]["date"] == "2026-11-07"
    assert pool_share(book, 2, 10_000, NOON) == 0.15
    assert pool_share(book, 2, 0, NOON) is None  # paid accounts: no cap


def test_a_key_that_sees_only_its_own_gets_no_accounts(book):
    book.add("2026-12-07", {"key|alice|images|/v1/chat/completions|m": 2, "key|bob|images|x|m": 5})
    report = usage_report(book, POOL, 10_000, NOON, only_key="alice")
    assert [key["name"] for key in report["today"]["keys"]] == ["alice"]
    assert "accounts" not in report["today"] and "daily_neurons" not in report


def test_without_a_cap_there_is_no_share(book):
    book.add("2026-12-07", {"account|aaaaaa…1111|neurons": 50000})
    today = usage_report(book, POOL, 0, NOON)["today"]
    assert today["accounts"][0]["share"] is None and today["pool"]["runs_out"] is None


def test_damaged_counters_are_left_out(book):
    book._days.set("2026-12-07", {"key|alice|images|x|m": "lots", 7: 1, "key|bob|images|x|m": 2})
    book._days.set("2026-12-06", "not a day")
    today = usage_report(book, POOL, 10_000, NOON)["today"]
    assert [key["name"] for key in today["keys"]] == ["bob"]
    book.add("2026-12-06", {"key|bob|images|x|m": 1})  # a damaged day starts again
    assert usage_report(book, POOL, 10_000, NOON)["days"][1]["images"] == 1


def test_a_day_that_cannot_be_unpickled_reads_as_empty_and_starts_again(book, tmp_path, caplog):
    book.add("2026-12-07", {"key|alice|images|x|m": 2})
    with sqlite3.connect(tmp_path / "usage" / "cache.db") as db:
        changed = db.execute(
            "UPDATE Cache SET value = ?, mode = 4 WHERE key = ?", (b"\x80\x04garbage", "2026-12-07")
        ).rowcount
    assert changed == 1
    assert usage_report(book, POOL, 10_000, NOON)["today"]["images"] == 0
    assert pool_share(book, 2, 10_000, NOON) == 0.0
    book.add("2026-12-07", {"key|alice|images|x|m": 1})
    assert usage_report(book, POOL, 10_000, NOON)["today"]["images"] == 1
    assert any("damaged" in r.getMessage() for r in caplog.records)


class CountingBook(DiskUsageBook):
    """A real DATA_DIR ledger that counts its writes."""

    writes = 0

    def add(self, day, counts):
        self.writes += 1
        super().add(day, counts)


def a_generation(key: str, count: int = 1, outcome: str = "ok") -> GenerationDone:
    call = UpstreamCall("aaaaaa…1111", "flux-1-schnell", "ok", 10.0, 1.0)
    error = None if outcome == "ok" else "UpstreamFailed"
    return GenerationDone(
        "flux-1-schnell", (1024, 1024), count, outcome, error, 0, 1, 0, 1,
        tries=(call,), caller=Caller(key, "/v1/chat/completions"),
    )  # fmt: skip


def test_images_are_counted_per_utc_hour_in_the_generations_one_write(tmp_path):
    book = CountingBook(tmp_path / "usage")
    moments = iter([NOON - 1, NOON + 5, NOON + 7, NOON + 3 * 3600])  # 11:59:59, 12:00:05, ...
    ledger = Ledger(book, clock=lambda: next(moments))
    ledger(a_generation("alice"))
    ledger(a_generation("alice", count=2))
    ledger(a_generation("kids", outcome="failed"))  # no image: no hour counted
    ledger(a_generation("kids", count=4))
    assert book.writes == 4  # one per generation, the hour with the rest
    today = usage_report(book, POOL, 10_000, NOON + 3 * 3600)["today"]
    assert today["hours"]["11"] == 1 and today["hours"]["12"] == 2 and today["hours"]["15"] == 4
    assert sum(today["hours"].values()) == today["images"] == 7
    assert list(today["hours"]) == [f"{h:02d}" for h in range(24)]
    alice, kids = today["keys"]
    assert (alice["hours"]["11"], alice["hours"]["12"], alice["hours"]["15"]) == (1, 2, 0)
    assert kids["hours"]["15"] == 4
    own = usage_report(book, POOL, 10_000, NOON + 3 * 3600, only_key="alice")["today"]
    assert own["hours"]["15"] == 0 and own["hours"]["12"] == 2  # kids' images are not its own
    book.close()


def test_only_today_carries_hours(book):
    book.add("2026-12-06", {"key|alice|images|x|m": 1, "key|alice|hour|09": 1})
    report = usage_report(book, POOL, 10_000, NOON)
    assert "hours" not in report["days"][1] and "hours" not in report["days"][1]["keys"][0]
    assert sum(report["today"]["hours"].values()) == 0


class HeldBook(DiskUsageBook):
    """A real DATA_DIR ledger whose first write waits until the test lets it go, recording
    what each write carried."""

    def __init__(self, directory):
        super().__init__(directory)
        self.writes: list[dict] = []
        self.writing, self.go_on = threading.Event(), threading.Event()

    def add(self, day, counts):
        self.writes.append(dict(counts))
        if len(self.writes) == 1:
            self.writing.set()
            assert self.go_on.wait(10)
        super().add(day, counts)


def a_shed(key: str) -> RequestDone:
    return RequestDone(
        "POST", "/v1/chat/completions", 503, 0.001, "-", "rid", False, key=key, error="overloaded"
    )


def test_counts_arriving_while_a_write_is_under_way_go_in_one_write_after_it(tmp_path):
    """A burst's hundreds of refusals must not each wait for the machine-wide write lock."""
    book = HeldBook(tmp_path / "usage")
    ledger = Ledger(book, clock=lambda: NOON)
    first = threading.Thread(target=ledger, args=(a_shed("alice"),))
    first.start()
    assert book.writing.wait(10)
    started = time.monotonic()
    for _ in range(50):  # each returns at once: counted, not written by this thread
        ledger(a_shed("alice"))
    ledger(a_shed("kids"))
    assert time.monotonic() - started < 5 and len(book.writes) == 1
    book.go_on.set()
    first.join(10)
    assert book.writes[1:] == [
        {"key|alice|refused|overloaded": 50, "key|kids|refused|overloaded": 1}
    ]
    ledger(a_shed("alice"))  # alone again: written at once, by its own thread
    assert len(book.writes) == 3
    refused = {k["name"]: k["refused"] for k in usage_report(book, POOL, 0, NOON)["today"]["keys"]}
    assert refused == {"alice": {"overloaded": 52}, "kids": {"overloaded": 1}}
    book.close()


def test_grouped_writes_lose_no_count_under_many_threads(tmp_path):
    book = CountingBook(tmp_path / "usage")
    ledger = Ledger(book, clock=lambda: NOON)

    def count(times: int) -> None:
        for _ in range(times):
            ledger(a_generation("alice"))

    threads = [threading.Thread(target=count, args=(40,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    deadline = time.monotonic() + 10
    while usage_report(book, POOL, 10_000, NOON)["today"]["images"] < 320:  # the last batches
        assert time.monotonic() < deadline  # may be the ledger's thread's to write
        time.sleep(0.05)
    assert usage_report(book, POOL, 10_000, NOON)["today"]["images"] == 320
    book.close()


class SlowBook(DiskUsageBook):
    """A real DATA_DIR ledger whose every write takes 20 ms (Redis far away, a busy disk)."""

    def add(self, day, counts):
        time.sleep(0.02)
        super().add(day, counts)


def test_in_a_long_burst_no_thread_is_kept_writing_for_the_others(tmp_path):
    """Counts keep arriving faster than a write takes: the thread that writes its own and one
    merged batch hands the rest to the ledger's thread, so no caller (a stream's last line, its
    admission slot) waits for the burst's writes."""
    book = SlowBook(tmp_path / "usage")
    ledger = Ledger(book, clock=lambda: NOON)
    longest = [0.0]

    def count(times: int) -> None:
        for _ in range(times):
            started = time.monotonic()
            ledger(a_generation("alice"))
            longest[0] = max(longest[0], time.monotonic() - started)
            time.sleep(0.002)

    threads = [threading.Thread(target=count, args=(500,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert longest[0] < 0.5  # two writes of 20 ms and a wait for the write lock, not seconds
    deadline = time.monotonic() + 10
    while usage_report(book, POOL, 10_000, NOON)["today"]["images"] < 2000:  # all written
        assert time.monotonic() < deadline, "the ledger's thread did not write what it took"
        time.sleep(0.05)
    ledger(a_generation("alice"))  # quiet again: written at once, by the caller
    assert usage_report(book, POOL, 10_000, NOON)["today"]["images"] == 2001
    book.close()


HAND_OFF_THEN_EXIT = """
import sys, threading, time
from tests.unit.test_usage_report import NOON, VerySlowBook, a_generation
from flux_api.observe.ledger import Ledger

ledger = Ledger(VerySlowBook(sys.argv[1]), clock=lambda: NOON)
counted = []

def count():  # for a second, far faster than writes: a thread takes over at ~0.4 s
    until = time.monotonic() + 1.0
    while time.monotonic() < until:
        ledger(a_generation("alice"))
        counted.append(1)
        time.sleep(0.002)

threads = [threading.Thread(target=count) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
assert ledger._flusher_thread is not None, "the burst was not handed over"
print(len(counted))
"""  # then the process ends, with the ledger's thread still holding counts to write


class VerySlowBook(DiskUsageBook):
    def add(self, day, counts):
        time.sleep(0.2)
        super().add(day, counts)


def test_counts_handed_to_the_ledgers_thread_are_written_when_the_process_exits(tmp_path):
    ended = subprocess.run(
        [sys.executable, "-c", HAND_OFF_THEN_EXIT, str(tmp_path / "usage")],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ended.returncode == 0, ended.stderr
    book = DiskUsageBook(tmp_path / "usage")
    assert usage_report(book, POOL, 10_000, NOON)["today"]["images"] == int(ended.stdout)
    book.close()
