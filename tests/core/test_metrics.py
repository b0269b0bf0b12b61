"""Metrics as Prometheus scrapes them: request latency by route template, errors, in-flight requests, the
database pool, and metrics registered by other subsystems."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import APIRouter
from prometheus_client.parser import text_string_to_metric_families

from pentad.app import create_app
from pentad.core.apps import AppSpec
from pentad.core.auth.permissions import METRICS_READ
from pentad.core.config import Settings
from pentad.core.context import AppContext, ResourceSpec
from pentad.core.db.engine import Database
from pentad.core.metrics import DatabasePoolCollector, Metrics
from pentad.core.platform import Platform
from tests.factories import bearer, issue_service_token


def _samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
    }


def _value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return _samples(metrics).get((name, frozenset(labels.items())))


def test_a_request_lands_in_the_latency_histogram() -> None:
    metrics = Metrics()
    metrics.observe_request("GET", "/api/users/{user_id}", 200, 0.042)
    labels = {"method": "GET", "route": "/api/users/{user_id}", "status_class": "2xx"}
    assert _value(metrics, "pentad_http_request_duration_seconds_count", **labels) == 1
    assert _value(metrics, "pentad_http_request_duration_seconds_bucket", **labels, le="0.05") == 1
    assert _value(metrics, "pentad_http_request_duration_seconds_bucket", **labels, le="0.025") == 0


def test_server_errors_are_counted_and_client_errors_are_not() -> None:
    metrics = Metrics()
    metrics.observe_request("POST", "/api/things", 503, 0.01)
    metrics.observe_request("POST", "/api/things", 404, 0.01)
    assert _value(metrics, "pentad_http_server_errors_total", method="POST", route="/api/things") == 1
    assert (
        _value(
            metrics,
            "pentad_http_request_duration_seconds_count",
            method="POST",
            route="/api/things",
            status_class="4xx",
        )
        == 1
    )


def test_made_up_methods_share_one_label() -> None:
    metrics = Metrics()
    metrics.observe_request("BREW", "<unmatched>", 405, 0.001)
    metrics.observe_request("PROPFIND", "<unmatched>", 405, 0.001)
    count = _value(
        metrics,
        "pentad_http_request_duration_seconds_count",
        method="OTHER",
        route="<unmatched>",
        status_class="4xx",
    )
    assert count == 2


def test_each_app_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.observe_request("GET", "/healthz", 200, 0.001)
    assert (
        _value(
            first,
            "pentad_http_request_duration_seconds_count",
            method="GET",
            route="/healthz",
            status_class="2xx",
        )
        == 1
    )
    assert (
        _value(
            second,
            "pentad_http_request_duration_seconds_count",
            method="GET",
            route="/healthz",
            status_class="2xx",
        )
        is None
    )


def test_subsystems_register_their_own_metrics() -> None:
    metrics = Metrics()
    deliveries = metrics.counter("pentad_realtime_deliveries_total", "Messages delivered.", ["topic_kind"])
    connections = metrics.gauge("pentad_realtime_connections", "Open WebSocket connections.")
    job_time = metrics.histogram("pentad_job_duration_seconds", "Job run time.", ["job"], buckets=(0.1, 1.0))
    deliveries.labels("chat").inc(3)
    connections.set(5)
    job_time.labels("chat.notify").observe(0.5)
    assert _value(metrics, "pentad_realtime_deliveries_total", topic_kind="chat") == 3
    assert _value(metrics, "pentad_realtime_connections") == 5
    assert _value(metrics, "pentad_job_duration_seconds_bucket", job="chat.notify", le="1.0") == 1


async def test_the_in_flight_gauge_counts_requests_while_they_run(
    settings: Settings, database: Database
) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    router = APIRouter()

    @router.get("/api/demo/slow")
    async def slow() -> dict[str, bool]:
        started.set()
        await release.wait()
        return {"done": True}

    app = create_app(settings, database=database, apps=[AppSpec(name="demo", title="Demo", routers=[router])])
    platform: Platform = app.state.platform
    headers = bearer(await issue_service_token(platform, scopes=[METRICS_READ.key]))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:

        async def in_flight() -> float | None:
            """As a scrape sees it: the scrape is itself a request in flight."""
            response = await client.get("/metrics", headers=headers)
            assert response.status_code == 200, response.text
            samples = {
                sample.name: sample.value
                for family in text_string_to_metric_families(response.text)
                for sample in family.samples
            }
            return samples.get("pentad_http_requests_in_flight")

        assert await in_flight() == 1
        request = asyncio.create_task(client.get("/api/demo/slow"))
        async with asyncio.timeout(10):
            await started.wait()
        assert await in_flight() == 2
        release.set()
        assert (await request).json() == {"done": True}
        assert await in_flight() == 1


def test_the_database_pool_is_read_at_scrape_time(platform: Platform) -> None:
    metrics = Metrics()
    metrics.add_collector(DatabasePoolCollector(platform.database.engine))
    assert _value(metrics, "pentad_db_pool_checked_out") is not None
    assert _value(metrics, "pentad_db_pool_size") is not None


def test_the_platform_exposes_its_pool(platform: Platform) -> None:
    names = {name for name, _ in _samples(platform.metrics)}
    assert {"pentad_db_pool_checked_out", "pentad_db_pool_size"} <= names


# ---------------------------------------------------------------- app metrics


class StreamsMetrics:
    """How an app keeps its series: made once per process from the context, as a resource."""

    def __init__(self, context: AppContext) -> None:
        metrics = context.metrics.for_app("demo")
        self.publishes = metrics.counter("publishes_total", "Publishes accepted.", ["engine"])
        self.live = metrics.gauge("live_streams", "Streams live now.")
        self.startup = metrics.histogram("startup_seconds", "Time to first frame.", buckets=(0.5, 2.0))


async def _open_metrics(context: AppContext) -> StreamsMetrics:
    return StreamsMetrics(context)


DEMO_METRICS = ResourceSpec("demo.metrics", _open_metrics)


async def test_an_apps_series_appear_on_metrics_with_its_prefix(
    settings: Settings, database: Database
) -> None:
    app = create_app(
        settings, database=database, apps=[AppSpec(name="demo", title="Demo", resources=[DEMO_METRICS])]
    )
    platform: Platform = app.state.platform
    await platform.open_resources()
    series = platform.resource(DEMO_METRICS)
    series.publishes.labels(engine="rtmp").inc(2)
    series.live.set(3)
    series.startup.observe(1.2)
    headers = bearer(await issue_service_token(platform, scopes=[METRICS_READ.key]))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/metrics", headers=headers)
        assert (await client.get("/metrics")).status_code == 401
    await platform.close()
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    assert samples[("pentad_demo_publishes_total", frozenset({("engine", "rtmp")}))] == 2
    assert samples[("pentad_demo_live_streams", frozenset())] == 3
    assert samples[("pentad_demo_startup_seconds_bucket", frozenset({("le", "2.0")}))] == 1


def test_app_series_take_only_their_declared_labels_and_names() -> None:
    metrics = Metrics()
    demo = metrics.for_app("demo")
    publishes = demo.counter("publishes_total", "Publishes accepted.", ["engine"])
    with pytest.raises(ValueError, match="label"):
        publishes.labels(camera_id="c1")
    assert demo.counter("publishes_total", "Publishes accepted.", ["engine"]) is publishes
    assert metrics.for_app("demo") is demo
    with pytest.raises(ValueError, match="already a counter"):
        demo.gauge("publishes_total", "Now a gauge.", ["engine"])
    with pytest.raises(ValueError, match="already a counter"):
        demo.counter("publishes_total", "Other labels.", ["engine", "reason"])
    with pytest.raises(ValueError, match="metric name"):
        demo.counter("Publishes-Total", "Bad name.")
    with pytest.raises(ValueError, match="label name"):
        demo.counter("drops_total", "Bad label.", ["Reason"])
    with pytest.raises(ValueError, match="not an app name"):
        metrics.for_app("Demo App")
    publishes.labels("rtmp").inc()
    assert _value(metrics, "pentad_demo_publishes_total", engine="rtmp") == 1
