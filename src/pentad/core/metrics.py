"""Prometheus metrics on a registry of the app's own, never prometheus_client's global default one.

Each create_app builds one Metrics (Platform.metrics). The core records HTTP latency by method, route
template and status class, requests in flight, server errors, and the database pool. Later subsystems
(realtime hub, jobs, app services: pentad_service_up, pentad_service_restarts_total) add theirs with
`metrics.counter(...)`, `metrics.gauge(...)`, `metrics.histogram(...)`, or `metrics.add_collector(...)`
for values read at scrape time. GET /metrics serves `metrics.render()`.

Apps get `context.metrics.for_app("streams")`, an AppMetrics: the same constructors, but every name is
`pentad_<app>_<name>`, the label names are fixed when the series is made (prometheus_client refuses
others in `.labels()`), and asking again for a series of the same name returns it (a resource reopened in
the same process does not register twice) unless its kind or labels differ. Label values must stay few
(an engine, a reason, a protocol), never keys, and never ids of what users make in numbers: per-object
figures go to the hub. The exception is a resource an operator provisions and watches one by one (streams'
camera id: tens, not millions).

Several worker processes (PENTAD_SERVER__WORKERS > 1): each worker counts in its own memory, and a scrape
would see only the worker that answered it. Set PROMETHEUS_MULTIPROC_DIR to an empty, writable directory
in the environment of the server *before it starts* (prometheus_client chooses its value storage when it is
first imported), and wipe that directory on every start. Every worker then writes its counters, gauges and
histograms to memory-mapped files there, and render() merges the files of all workers
(prometheus_client.multiprocess.MultiProcessCollector): counters and histograms are summed; gauges made
with `gauge()` default to `livesum`, the sum over live workers. Collectors added with add_collector (the
database pool among them) still describe only the worker that answered the scrape.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
_APP_METRIC_NAME = re.compile(r"[a-z][a-z0-9_]*")
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

GaugeMode = Literal[
    "all", "liveall", "min", "livemin", "max", "livemax", "sum", "livesum", "mostrecent", "livemostrecent"
]


class Metrics:
    """The app's metrics and the registry /metrics exposes."""

    def __init__(self, *, multiprocess_dir: str | None = None) -> None:
        self.registry = CollectorRegistry()
        # In multiprocess mode the values live in files; registering the metric objects as well would
        # expose this worker's values a second time next to the merged ones.
        self._metric_registry: CollectorRegistry | None = self.registry
        if multiprocess_dir:
            MultiProcessCollector(self.registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
            self._metric_registry = None
        self._apps: dict[str, AppMetrics] = {}
        self.http_request_duration = self.histogram(
            "pentad_http_request_duration_seconds",
            "Time from receiving an HTTP request to sending the last byte of its response.",
            ("method", "route", "status_class"),
        )
        self.http_requests_in_flight = self.gauge(
            "pentad_http_requests_in_flight", "HTTP requests being handled right now."
        )
        self.http_server_errors = self.counter(
            "pentad_http_server_errors_total", "HTTP responses with a 5xx status.", ("method", "route")
        )

    @classmethod
    def from_environment(cls) -> Metrics:
        """Multiprocess mode when PROMETHEUS_MULTIPROC_DIR is set, as prometheus_client itself decides."""
        return cls(multiprocess_dir=os.environ.get(MULTIPROCESS_DIR_VARIABLE))

    def counter(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> Counter:
        return Counter(name, documentation, labelnames, registry=self._metric_registry)

    def gauge(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        multiprocess_mode: GaugeMode = "livesum",
    ) -> Gauge:
        return Gauge(
            name,
            documentation,
            labelnames,
            registry=self._metric_registry,
            multiprocess_mode=multiprocess_mode,
        )

    def histogram(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float] = Histogram.DEFAULT_BUCKETS,
    ) -> Histogram:
        return Histogram(name, documentation, labelnames, registry=self._metric_registry, buckets=buckets)

    def for_app(self, app: str) -> AppMetrics:
        """The metrics of app `app`: names prefixed `pentad_<app>_`."""
        if not _APP_METRIC_NAME.fullmatch(app):
            raise ValueError(f"{app!r} is not an app name")
        found = self._apps.get(app)
        if found is None:
            found = self._apps[app] = AppMetrics(self, app)
        return found

    def add_collector(self, collector: Collector) -> None:
        """Expose values that `collector` reads at scrape time."""
        self.registry.register(collector)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one finished HTTP request; `route` is the route template, never the raw path."""
        method = method if method in HTTP_METHODS else "OTHER"
        self.http_request_duration.labels(method, route, f"{status // 100}xx").observe(seconds)
        if status >= 500:
            self.http_server_errors.labels(method, route).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class AppMetrics:
    """One app's Prometheus series, named `pentad_<app>_<name>` with the label names declared here."""

    def __init__(self, metrics: Metrics, app: str) -> None:
        self.app = app
        self._metrics = metrics
        self._made: dict[str, tuple[str, tuple[str, ...], Any]] = {}

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        made: Counter = self._make(
            "counter", name, labels, lambda full: self._metrics.counter(full, documentation, labels)
        )
        return made

    def gauge(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str] = (),
        *,
        multiprocess_mode: GaugeMode = "livesum",
    ) -> Gauge:
        made: Gauge = self._make(
            "gauge",
            name,
            labels,
            lambda full: self._metrics.gauge(
                full, documentation, labels, multiprocess_mode=multiprocess_mode
            ),
        )
        return made

    def histogram(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str] = (),
        *,
        buckets: Sequence[float] = Histogram.DEFAULT_BUCKETS,
    ) -> Histogram:
        made: Histogram = self._make(
            "histogram",
            name,
            labels,
            lambda full: self._metrics.histogram(full, documentation, labels, buckets=buckets),
        )
        return made

    def _make(self, kind: str, name: str, labels: Sequence[str], build: Any) -> Any:
        if not _APP_METRIC_NAME.fullmatch(name):
            raise ValueError(f"metric name {name!r}: lower case letters, digits and _")
        for label in labels:
            if not _APP_METRIC_NAME.fullmatch(label):
                raise ValueError(f"label name {label!r}: lower case letters, digits and _")
        full = f"pentad_{self.app}_{name}"
        declared = tuple(labels)
        existing = self._made.get(full)
        if existing is not None:
            if existing[:2] != (kind, declared):
                raise ValueError(f"{full} is already a {existing[0]} with labels {existing[1]}")
            return existing[2]
        metric = build(full)
        self._made[full] = (kind, declared, metric)
        return metric


class DatabasePoolCollector(Collector):
    """Connections checked out of the SQLAlchemy pool and the pool's size, read at scrape time.

    Pools without a fixed size (SQLite's in-memory StaticPool, NullPool) report nothing.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    def collect(self) -> Iterable[Metric]:
        pool = self.engine.pool
        if not isinstance(pool, QueuePool):
            return
        yield GaugeMetricFamily(
            "pentad_db_pool_checked_out", "Database connections currently in use.", value=pool.checkedout()
        )
        yield GaugeMetricFamily(
            "pentad_db_pool_size", "Database connections the pool keeps open.", value=pool.size()
        )
