"""The metrics GET /metrics serves, in Prometheus's text format (docs/metrics.md lists them).

Counters, histograms and the streams gauge are kept from events (`Metrics.count`, subscribed in
services.py); what lives in shared state (accounts, neurons spent today, the store) is read when
scraped, so every worker and every node says the same.

Under gunicorn each worker keeps its numbers in files under PROMETHEUS_MULTIPROC_DIR
(gunicorn.conf.py makes it; prometheus_client's multiprocess mode), and a scrape of any worker
adds up all of them: a dead worker's counters stay counted, its live gauges are dropped
(mark_process_dead). Without it (one process: the tests, `flask run`) they are kept in memory.

Labels stay bounded whatever clients send: an endpoint is the route that answered
(`/image/{key}`; anything unrouted is `other`), a method one of a fixed few, key names and
account labels come from the configuration, models from the catalogue, outcomes from fixed
lists. No key, token or prompt is ever a label.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from flux_api.accounts.pool import AccountPool
from flux_api.config.settings import Settings
from flux_api.events import (
    Event,
    GenerationDone,
    GenerationsInFlight,
    ImagesEvicted,
    OptimizerCall,
    RateLimited,
    RequestDone,
    Shed,
    StreamClosed,
    StreamOpened,
    UpstreamCall,
)
from flux_api.store.images import ImageStore, StoreUnavailable

# The text format 0.0.4, which every Prometheus reads (prometheus_client's own name for it
# changed between versions).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "flux_api_"
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
OTHER = "other"  # the endpoint of a request no route answered, and any unusual method
METHODS = frozenset({"GET", "HEAD", "POST", "DELETE", "OPTIONS"})
# Seconds: a FLUX image takes 1 to 20 s, a queue for capacity or a large edit up to
# UPSTREAM_TIMEOUT (120 s by default).
SECONDS_BUCKETS = (0.5, 1, 2, 3, 5, 8, 13, 20, 30, 45, 60, 90, 120, 180)
# What an account's state may be (accounts/pool.py, report()): each is always exported.
ACCOUNT_STATES = ("ok", "busy", "quota_exhausted", "rejected_token", "unknown")


@dataclass(frozen=True)
class Family:
    """One metric: its name (without PREFIX), kind, help text and label names."""

    name: str
    kind: str  # "counter", "histogram" or "gauge"
    help: str
    labels: tuple[str, ...] = ()

    @property
    def full_name(self) -> str:
        return PREFIX + self.name

    @property
    def series(self) -> tuple[str, ...]:
        """The names its samples carry (what a query names)."""
        if self.kind == "counter":
            return (self.full_name + "_total",)
        if self.kind == "histogram":
            return tuple(self.full_name + end for end in ("_bucket", "_sum", "_count"))
        return (self.full_name,)


# Kept from events, in every worker.
REQUESTS = Family(
    "requests",
    "counter",
    "Requests answered, by route (other: none answered), method and status; 499: the client "
    "left before the end.",
    ("endpoint", "method", "status"),
)
GENERATIONS = Family(
    "generations",
    "counter",
    "Generations (one request's 1 to n images) by model and outcome: ok, client_left, failed.",
    ("model", "outcome"),
)
GENERATION_SECONDS = Family(
    "generation_seconds",
    "histogram",
    "Seconds a generation that ended ok took, optimizer to store, by model.",
    ("model",),
)
IMAGES = Family(
    "images",
    "counter",
    "Images made (generations that ended ok), by the name of the API key they were made for.",
    ("key",),
)
UPSTREAM_CALLS = Family(
    "upstream_calls",
    "counter",
    "Tries sent to Workers AI by account label, model and outcome: ok, quota, refused, "
    "capacity, rate_limited, rejected, error.",
    ("account", "model", "outcome"),
)
UPSTREAM_SECONDS = Family(
    "upstream_seconds",
    "histogram",
    "Seconds of each Workers AI try that gave an image, by model.",
    ("model",),
)
OPTIMIZER_CALLS = Family(
    "optimizer_calls",
    "counter",
    "Calls to the prompt optimizer by purpose (prompt, follow_up, title, summary) and outcome "
    "(ok, or fallback: it failed and the service did without it).",
    ("purpose", "outcome"),
)
RATE_LIMITED = Family(
    "rate_limited",
    "counter",
    "Requests refused by RATE_LIMIT (or a key's own limit), by API key name.",
    ("key",),
)
EVICTED_IMAGES = Family(
    "store_evicted_images",
    "counter",
    "Images dropped before their expiry to make room under STORE_SIZE_LIMIT_MB.",
)
EVICTED_BYTES = Family(
    "store_evicted_bytes",
    "counter",
    "Bytes of the images dropped before their expiry to make room.",
)
STREAMS_HELD = Family(
    "streams_held",
    "gauge",
    "Chat replies streaming now while their image is made (every worker's, live ones only).",
)
SHED = Family(
    "shed",
    "counter",
    "Generations refused at admission (503, Retry-After, nothing billed), by reason "
    "(capacity: the worker's generation threads were all held; key_share: the key held its "
    "share of them; waited: it waited more than ADMISSION_WAIT for a thread) and API key name.",
    ("reason", "key"),
)
GENERATIONS_IN_FLIGHT = Family(
    "generations_in_flight",
    "gauge",
    "Generations a worker holds now (one series per live worker, label pid).",
)
GENERATION_CAPACITY = Family(
    "generation_capacity",
    "gauge",
    "The most generations a worker holds at once: GUNICORN_THREADS - GENERATION_RESERVE (one "
    "series per live worker, label pid).",
)
COUNTED = (
    REQUESTS,
    GENERATIONS,
    GENERATION_SECONDS,
    IMAGES,
    UPSTREAM_CALLS,
    UPSTREAM_SECONDS,
    OPTIMIZER_CALLS,
    RATE_LIMITED,
    EVICTED_IMAGES,
    EVICTED_BYTES,
    STREAMS_HELD,
    SHED,
    GENERATIONS_IN_FLIGHT,
    GENERATION_CAPACITY,
)

# Read from the shared state when scraped.
ACCOUNTS = Family(
    "accounts",
    "gauge",
    "Cloudflare accounts by state: ok, busy, quota_exhausted (parked until 00:00 UTC), "
    "rejected_token, unknown (the shared state cannot be read).",
    ("state",),
)
NEURONS_TODAY = Family(
    "account_neurons_today",
    "gauge",
    "Neurons spent today (UTC) on each account: as Cloudflare reported them or, where it did "
    "not, estimated from its published prices (the part estimated: "
    "flux_api_account_neurons_estimated_today).",
    ("account",),
)
NEURONS_ESTIMATED = Family(
    "account_neurons_estimated_today",
    "gauge",
    "The part of flux_api_account_neurons_today estimated from Cloudflare's published prices.",
    ("account",),
)
NEURONS_LIMIT = Family(
    "account_neurons_daily_limit",
    "gauge",
    "Each account's daily allocation of neurons, CF_DAILY_NEURONS (0: no cap).",
)
NEURONS_USED = Family(
    "account_neurons_used_ratio",
    "gauge",
    "The share of its daily allocation each account has spent today (none without a cap).",
    ("account",),
)
STORE_IMAGES = Family("store_images", "gauge", "Images in the store.")
STORE_BYTES = Family(
    "store_bytes", "gauge", "Bytes in the store, as counted against STORE_SIZE_LIMIT_MB."
)
STORE_LIMIT = Family("store_limit_bytes", "gauge", "STORE_SIZE_LIMIT_MB, in bytes.")
READ_WHEN_SCRAPED = (
    ACCOUNTS,
    NEURONS_TODAY,
    NEURONS_ESTIMATED,
    NEURONS_LIMIT,
    NEURONS_USED,
    STORE_IMAGES,
    STORE_BYTES,
    STORE_LIMIT,
)

FAMILIES = COUNTED + READ_WHEN_SCRAPED


def series_names() -> frozenset[str]:
    """Every sample name /metrics may carry (a dashboard's queries name only these)."""
    return frozenset(name for family in FAMILIES for name in family.series)


def multiprocess() -> bool:
    """Whether the numbers are kept in PROMETHEUS_MULTIPROC_DIR (gunicorn.conf.py sets it
    before the app, and so prometheus_client, is first imported)."""
    return bool(os.environ.get(MULTIPROCESS_DIR))


class Metrics:
    """One app's metrics: `count` hears its events; `exposition` is the body of a scrape."""

    def __init__(
        self,
        pool: AccountPool,
        store: ImageStore,
        settings: Settings,
        neurons_today: Callable[[], dict[str, tuple[float, float]]] = dict,
    ):
        """`neurons_today`: each account's neurons today and the part estimated (the ledger's)."""
        self._shared = SharedState(pool, store, settings, neurons_today)
        # A registry of its own, not prometheus_client's global one: an app built again (tests,
        # a reload's re-import) starts from nothing instead of clashing with the last one's.
        self._registry = registry = CollectorRegistry()
        self.requests = _counter(REQUESTS, registry)
        self.generations = _counter(GENERATIONS, registry)
        self.generation_seconds = _histogram(GENERATION_SECONDS, registry)
        self.images = _counter(IMAGES, registry)
        self.upstream_calls = _counter(UPSTREAM_CALLS, registry)
        self.upstream_seconds = _histogram(UPSTREAM_SECONDS, registry)
        self.optimizer_calls = _counter(OPTIMIZER_CALLS, registry)
        self.rate_limited = _counter(RATE_LIMITED, registry)
        self.evicted_images = _counter(EVICTED_IMAGES, registry)
        self.evicted_bytes = _counter(EVICTED_BYTES, registry)
        self.streams_held = Gauge(
            STREAMS_HELD.full_name,
            STREAMS_HELD.help,
            registry=registry,
            multiprocess_mode="livesum",  # every live worker's, summed; a dead one's dropped
        )
        self.shed = _counter(SHED, registry)
        # Admission is per worker: each live worker's own series (label pid), a dead one's
        # dropped; sum() them for the node.
        self.in_flight = _worker_gauge(GENERATIONS_IN_FLIGHT, registry)
        self.capacity = _worker_gauge(GENERATION_CAPACITY, registry)

    def count(self, event: Event) -> None:
        """The subscriber (events.Events): quick, as it runs in the thread that announces."""
        if isinstance(event, RequestDone):
            endpoint = event.route or OTHER
            method = event.method if event.method in METHODS else OTHER
            status = 499 if event.client_left else event.status
            self.requests.labels(endpoint, method, str(status)).inc()
        elif isinstance(event, GenerationDone):
            self.generations.labels(event.model, event.outcome).inc()
            if event.outcome == "ok":
                self.generation_seconds.labels(event.model).observe(event.total_seconds)
                self.images.labels(event.caller.key).inc(event.count)
        elif isinstance(event, UpstreamCall):
            self.upstream_calls.labels(event.account, event.model, event.outcome).inc()
            if event.outcome == "ok":
                self.upstream_seconds.labels(event.model).observe(event.seconds)
        elif isinstance(event, OptimizerCall):
            self.optimizer_calls.labels(event.purpose, event.outcome).inc()
        elif isinstance(event, RateLimited):
            self.rate_limited.labels(event.key).inc()
        elif isinstance(event, ImagesEvicted):
            self.evicted_images.inc(event.images)
            self.evicted_bytes.inc(event.bytes)
        elif isinstance(event, Shed):
            self.shed.labels(event.reason, event.key).inc()
        elif isinstance(event, GenerationsInFlight):
            self.in_flight.set(event.in_flight)
            self.capacity.set(event.capacity)
        elif isinstance(event, StreamOpened):
            self.streams_held.inc()
        elif isinstance(event, StreamClosed):
            self.streams_held.dec()

    def exposition(self) -> bytes:
        """Every metric in the text format: every worker's counts (or this process's own), and
        the shared state as it is now."""
        counted: Collector = MultiProcessCollector(None) if multiprocess() else self._registry
        return generate_latest(_Both(counted, self._shared))


class SharedState:
    """The gauges read from the shared state when scraped (a prometheus_client collector):
    the same from any worker or node. `neurons_today`: each account's neurons today, and the
    part estimated (the usage ledger's)."""

    def __init__(
        self,
        pool: AccountPool,
        store: ImageStore,
        settings: Settings,
        neurons_today: Callable[[], dict[str, tuple[float, float]]] = dict,
    ):
        self._pool, self._store = pool, store
        self._neurons_today = neurons_today
        self._store_limit = settings.store_size_limit_mb * 1024 * 1024
        self._daily_neurons = settings.cf_daily_neurons

    def collect(self) -> Iterator[Metric]:
        # As /healthz does: a store known to be unreachable is not waited on again.
        readable = self._store.health() != self._store.UNHEALTHY
        yield from self._accounts(readable)
        yield GaugeMetricFamily(STORE_LIMIT.full_name, STORE_LIMIT.help, value=self._store_limit)
        if readable:
            yield from self._usage()

    def _accounts(self, readable: bool) -> Iterator[Metric]:
        report = self._pool.report(read=readable)
        by_state = GaugeMetricFamily(ACCOUNTS.full_name, ACCOUNTS.help, labels=ACCOUNTS.labels)
        for state in ACCOUNT_STATES:
            by_state.add_metric([state], sum(1 for entry in report if entry["state"] == state))
        yield by_state
        spent = self._neurons_today() if readable else {}
        neurons = GaugeMetricFamily(
            NEURONS_TODAY.full_name, NEURONS_TODAY.help, labels=NEURONS_TODAY.labels
        )
        estimated = GaugeMetricFamily(
            NEURONS_ESTIMATED.full_name, NEURONS_ESTIMATED.help, labels=NEURONS_ESTIMATED.labels
        )
        for entry in report:
            total, guessed = spent.get(entry["id"], (0.0, 0.0))
            neurons.add_metric([entry["id"]], total)
            estimated.add_metric([entry["id"]], guessed)
        yield neurons
        yield estimated
        limit = self._daily_neurons
        yield GaugeMetricFamily(NEURONS_LIMIT.full_name, NEURONS_LIMIT.help, value=limit)
        used = GaugeMetricFamily(
            NEURONS_USED.full_name, NEURONS_USED.help, labels=NEURONS_USED.labels
        )
        for entry in report if limit else ():
            used.add_metric([entry["id"]], spent.get(entry["id"], (0.0, 0.0))[0] / limit)
        yield used

    def _usage(self) -> Iterator[Metric]:
        """The store's images and bytes, unless it cannot be read now (/healthz says why)."""
        try:
            usage = self._store.usage()
        except StoreUnavailable:
            return
        yield GaugeMetricFamily(STORE_IMAGES.full_name, STORE_IMAGES.help, value=usage.images)
        yield GaugeMetricFamily(STORE_BYTES.full_name, STORE_BYTES.help, value=usage.bytes)


def _counter(family: Family, registry: CollectorRegistry) -> Counter:
    return Counter(family.full_name, family.help, family.labels, registry=registry)


def _histogram(family: Family, registry: CollectorRegistry) -> Histogram:
    return Histogram(
        family.full_name, family.help, family.labels, registry=registry, buckets=SECONDS_BUCKETS
    )


def _worker_gauge(family: Family, registry: CollectorRegistry) -> Gauge:
    return Gauge(family.full_name, family.help, registry=registry, multiprocess_mode="liveall")


class _Both:
    """Collectors as one, for generate_latest."""

    def __init__(self, *collectors: Collector):
        self._collectors = collectors

    def collect(self) -> Iterator[Metric]:
        for collector in self._collectors:
            yield from collector.collect()
