"""The metrics as code (observe/metrics.py): events become exact counts with bounded labels, the
shared state is read when scraped, and docs/metrics.md and the Grafana dashboard name exactly
what is exported (the service over HTTP, across gunicorn's workers: tests/system/test_metrics.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from flux_api.accounts.pool import AccountPool
from flux_api.accounts.states import FileAccountStates
from flux_api.config.accounts import Account
from flux_api.config.settings import Settings
from flux_api.events import (
    Caller,
    GenerationDone,
    ImagesEvicted,
    OptimizerCall,
    RateLimited,
    RequestDone,
    StreamClosed,
    StreamOpened,
    UpstreamCall,
)
from flux_api.observe import metrics as metrics_module
from flux_api.observe.ledger import Ledger
from flux_api.observe.metrics import FAMILIES, Metrics, series_names
from flux_api.store.disk import DiskImageStore
from flux_api.store.usage import DiskUsageBook
from tests.support import ROOT
from tests.support.metrics import Scrape

A = Account("aaaaaa0123456789abcdef0123456789", "cf-token-A-SECRET-1234")
B = Account("bbbbbb0123456789abcdef0123456789", "cf-token-B-SECRET-5678")
MODEL = "flux-1-schnell"
LIMIT = 1024 * 1024  # STORE_SIZE_LIMIT_MB=1
SETTINGS = replace(Settings(), store_size_limit_mb=1, cf_daily_neurons=100)


def spent(ledger: Ledger, account: Account, neurons: float) -> None:
    """A good try that Cloudflare said cost `neurons`, written to the ledger as a generation."""
    call = UpstreamCall(account.label, MODEL, "ok", neurons, 1.0)
    ledger(GenerationDone(MODEL, (1024, 1024), 1, "ok", None, 0, 1, 0, 1, tries=(call,)))


@pytest.fixture
def parts(tmp_path, monkeypatch):
    monkeypatch.delenv(metrics_module.MULTIPROCESS_DIR, raising=False)
    pool = AccountPool((A, B), FileAccountStates(tmp_path / "accounts"))
    store = DiskImageStore(tmp_path / "images", ttl=600, size_limit_bytes=LIMIT)
    ledger = Ledger(DiskUsageBook(tmp_path / "usage"))
    yield pool, store, Metrics(pool, store, SETTINGS, ledger.neurons_today), ledger
    store.close()
    pool.close()
    ledger.book.close()


def scrape(metrics: Metrics) -> Scrape:
    return Scrape(metrics.exposition().decode())


def done(status: int, route: str, method: str = "GET", left: bool = False) -> RequestDone:
    return RequestDone(
        method, "/raw/path", status, 0.01, "-", "rid", left, key="alice", route=route
    )


def generation(outcome: str, count: int = 1, key: str = "alice") -> GenerationDone:
    error = None if outcome == "ok" else "UpstreamFailed"
    return GenerationDone(
        MODEL, (1024, 1024), count, outcome, error, 0.1, 2.5, 0.01, 2.7, caller=Caller(key)
    )


def test_events_become_exact_counts(parts):
    _, _, metrics, _ = parts
    events = [
        done(200, "/v1/chat/completions", "POST"),
        done(200, "/v1/chat/completions", "POST"),
        done(200, "/v1/chat/completions", "POST", left=True),
        done(404, "/image/{key}"),
        generation("ok", 2),
        generation("ok", 1, key="bob"),
        generation("failed"),
        generation("client_left"),
        UpstreamCall(A.label, MODEL, "ok", 12.5, 2.0),
        UpstreamCall(A.label, MODEL, "capacity", None, 0.1),
        UpstreamCall(B.label, MODEL, "ok", None, 4.0),
        OptimizerCall("prompt", "ok", 0.3),
        OptimizerCall("prompt", "fallback", 1.0),
        OptimizerCall("title", "ok", 0.2),
        RateLimited("bob", 2, 30),
        RateLimited("bob", 1, 29),
        ImagesEvicted(3, 300_000),
        ImagesEvicted(1, 90_000),
        StreamOpened(),
        StreamOpened(),
        StreamClosed(True),
    ]
    for event in events:
        metrics.count(event)
    got = scrape(metrics)
    chat = {"endpoint": "/v1/chat/completions", "method": "POST"}
    assert got("requests_total", **chat, status="200") == 2
    assert got("requests_total", **chat, status="499") == 1
    assert got("requests_total", endpoint="/image/{key}", method="GET", status="404") == 1
    for outcome, count in (("ok", 2), ("failed", 1), ("client_left", 1)):
        assert got("generations_total", model=MODEL, outcome=outcome) == count
    assert got("generation_seconds_count", model=MODEL) == 2
    assert got("generation_seconds_sum", model=MODEL) == pytest.approx(5.4)
    assert got("images_total", key="alice") == 2
    assert got("images_total", key="bob") == 1
    assert got("upstream_calls_total", account=A.label, model=MODEL, outcome="ok") == 1
    assert got("upstream_calls_total", account=A.label, model=MODEL, outcome="capacity") == 1
    assert got("upstream_calls_total", account=B.label, model=MODEL, outcome="ok") == 1
    # Only the tries that gave an image are timed: 2 s and 4 s.
    assert got("upstream_seconds_count", model=MODEL) == 2
    assert got("upstream_seconds_bucket", model=MODEL, le="3.0") == 1
    assert got("upstream_seconds_bucket", model=MODEL, le="5.0") == 2
    assert got("optimizer_calls_total", purpose="prompt", outcome="ok") == 1
    assert got("optimizer_calls_total", purpose="prompt", outcome="fallback") == 1
    assert got("optimizer_calls_total", purpose="title", outcome="ok") == 1
    assert got("rate_limited_total", key="bob") == 2
    assert got("store_evicted_images_total") == 4
    assert got("store_evicted_bytes_total") == 390_000
    assert got("streams_held") == 1


def test_labels_stay_bounded_whatever_clients_send(parts):
    _, _, metrics, _ = parts
    for method, path in (("PROPFIND", "/x"), ("GET", "/nope/" + "a" * 50), ("BREW", "/pot")):
        metrics.count(RequestDone(method, path, 404, 0.0, "-", "rid", False))
    metrics.count(done(405, "", "DELETE"))
    got = scrape(metrics)
    assert got.labels_of("requests_total") == {
        (("endpoint", "other"), ("method", "other"), ("status", "404")): 2,
        (("endpoint", "other"), ("method", "GET"), ("status", "404")): 1,
        (("endpoint", "other"), ("method", "DELETE"), ("status", "405")): 1,
    }
    assert "/nope/" not in got.text


def test_the_shared_state_is_read_when_scraped(parts):
    pool, store, metrics, ledger = parts
    got = scrape(metrics)
    assert got("accounts", state="ok") == 2
    assert got("accounts", state="quota_exhausted") == 0
    assert got("account_neurons_today", account=A.label) == 0
    assert got("store_images") == 0
    assert got("store_limit_bytes") == LIMIT

    spent(ledger, A, 12.5)
    spent(ledger, A, 7.5)
    pool.exhausted(B)
    store.put_many([b"x" * 50_000, b"y" * 20_000])
    got = scrape(metrics)
    assert got("accounts", state="ok") == 1
    assert got("accounts", state="quota_exhausted") == 1
    assert got("account_neurons_today", account=A.label) == 20
    assert got("account_neurons_today", account=B.label) == 0
    assert got("account_neurons_estimated_today", account=A.label) == 0
    assert got("account_neurons_daily_limit") == 100
    assert got("account_neurons_used_ratio", account=A.label) == 0.2
    assert got("store_images") == 2
    # As STORE_SIZE_LIMIT_MB counts them: the images and diskcache's own index.
    assert 70_000 <= got("store_bytes") <= 70_000 + 200_000
    assert A.id not in got.text and A.token not in got.text


def test_without_a_daily_cap_no_share_is_exported(tmp_path, monkeypatch):
    monkeypatch.delenv(metrics_module.MULTIPROCESS_DIR, raising=False)
    pool = AccountPool((A,), FileAccountStates(tmp_path / "accounts"))
    store = DiskImageStore(tmp_path / "images", ttl=600, size_limit_bytes=LIMIT)
    ledger = Ledger(DiskUsageBook(tmp_path / "usage"))
    metrics = Metrics(pool, store, replace(SETTINGS, cf_daily_neurons=0), ledger.neurons_today)
    spent(ledger, A, 12.5)
    got = scrape(metrics)
    assert got("account_neurons_today", account=A.label) == 12.5
    assert got("account_neurons_daily_limit") == 0
    assert got.labels_of("account_neurons_used_ratio") == {}
    store.close()
    pool.close()


def test_every_metric_is_documented_with_its_labels():
    """docs/metrics.md has a row per metric: its sample name and its labels, no other."""
    text = (ROOT / "docs" / "metrics.md").read_text()
    rows = re.findall(r"^\| `(flux_api_\w+)` \| (\w+) \| ([^|]*) \|", text, re.M)
    documented = {name: (kind, re.findall(r"`(\w+)`", labels)) for name, kind, labels in rows}
    exported = {family.series[0].removesuffix("_bucket"): family for family in FAMILIES}
    assert set(documented) == set(exported)
    for name, (kind, labels) in documented.items():
        assert (kind, tuple(labels)) == (exported[name].kind, exported[name].labels), name


def test_the_grafana_dashboard_reads_only_what_is_exported():
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "flux-api.json").read_text())
    expressions = [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    queried = {name for expr in expressions for name in re.findall(r"\bflux_api_\w+", expr)}
    assert queried and queried <= series_names(), queried - series_names()
    # What the issue asks it to show.
    for name in (
        "flux_api_requests_total",
        "flux_api_generations_total",
        "flux_api_upstream_calls_total",
        "flux_api_upstream_seconds_bucket",
        "flux_api_account_neurons_today",
        "flux_api_store_bytes",
    ):
        assert name in queried, name
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["title"] and dashboard["uid"]
