"""Liveness, readiness and the metrics endpoint, as an orchestrator and Prometheus call them."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from pentad.app import create_app
from pentad.core.auth.permissions import METRICS_READ, USERS_READ
from pentad.core.db.engine import Database
from pentad.core.platform import Platform
from tests.conftest import make_settings
from tests.core.conftest import RedisScratch
from tests.factories import bearer, issue_service_token


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_liveness(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_the_database_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok"}}


async def test_not_ready_when_the_database_is_unreachable(tmp_path: Path, database_url: str) -> None:
    unreachable = f"postgresql+asyncpg://pentad@127.0.0.1:{_unused_port()}/pentad"
    app = create_app(make_settings(tmp_path, database_url, database={"url": unreachable}), apps=[])
    async with _client(app) as client:
        response = await client.get("/readyz")
    await app.state.platform.database.dispose()
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "not_ready"
    assert body["checks"] == {"database": "failed"}
    assert body["request_id"] == response.headers["x-request-id"]
    assert "127.0.0.1" not in response.text


async def test_redis_is_checked_when_configured(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    settings = make_settings(tmp_path, database_url, redis={"url": f"redis://127.0.0.1:{_unused_port()}/0"})
    async with _client(create_app(settings, database=database, apps=[])) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "redis": "failed"}


async def test_ready_with_a_live_redis(
    tmp_path: Path, database_url: str, database: Database, test_redis: RedisScratch
) -> None:
    settings = make_settings(tmp_path, database_url, redis={"url": test_redis.url})
    async with _client(create_app(settings, database=database, apps=[])) as client:
        response = await client.get("/readyz")
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}


async def test_metrics_need_credentials(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 401


async def test_metrics_need_the_metrics_permission(client: httpx.AsyncClient, platform: Platform) -> None:
    token = await issue_service_token(platform, scopes=[USERS_READ.key])
    response = await client.get("/metrics", headers=bearer(token))
    assert response.status_code == 403


async def test_metrics_show_the_requests_served(client: httpx.AsyncClient, platform: Platform) -> None:
    token = await issue_service_token(platform, scopes=[METRICS_READ.key])
    await client.get("/healthz")
    response = await client.get("/metrics", headers=bearer(token))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    healthz = (("method", "GET"), ("route", "/healthz"), ("status_class", "2xx"))
    assert samples[("pentad_http_request_duration_seconds_count", healthz)] == 1
    assert samples[("pentad_http_requests_in_flight", ())] == 1
    assert ("pentad_db_pool_size", ()) in samples


async def test_the_metrics_endpoint_documents_its_refusals(client: httpx.AsyncClient) -> None:
    responses = (await client.get("/openapi.json")).json()["paths"]["/metrics"]["get"]["responses"]
    assert {"200", "401", "403", "429"} <= set(responses)


async def test_an_apps_own_readiness_checks_are_in_readyz(settings: object, database: Database) -> None:
    from pentad.core.apps import AppSpec
    from pentad.core.health import HealthCheck, HealthContext

    seen: list[HealthContext] = []
    listener_up = True

    async def database_answers(context: HealthContext) -> None:
        seen.append(context)
        await context.database.ping()

    async def listener_accepts(_context: HealthContext) -> None:
        if not listener_up:
            raise ConnectionRefusedError("the RTMP listener does not accept")

    spec = AppSpec(
        name="probed",
        title="Probed",
        health_checks=[HealthCheck("database", database_answers), HealthCheck("listener", listener_accepts)],
    )
    app = create_app(settings, database=database, apps=[spec])  # type: ignore[arg-type]
    async with _client(app) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database": "ok", "probed.database": "ok", "probed.listener": "ok"}
        assert seen[0].settings is app.state.platform.settings

        listener_up = False
        refused = await client.get("/readyz")
    assert refused.status_code == 503
    assert refused.json()["checks"]["probed.listener"] == "failed"
    assert "probed.listener" in refused.json()["detail"]
    assert "RTMP" not in refused.text  # the reason goes to the log, not to the public
