"""Liveness, readiness and the metrics endpoint, as an orchestrator and Prometheus call them."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from pentad.app import create_app
from pentad.core.auth.permissions import METRICS_READ, USERS_READ
from pentad.core.db.engine import Database
from pentad.core.platform import Platform
from tests.conftest import make_settings
from tests.factories import bearer, issue_service_token

REDIS_URL = os.environ.get("PENTAD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


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


async def test_ready_with_a_live_redis(tmp_path: Path, database_url: str, database: Database) -> None:
    from tests.core.test_ratelimit import RedisScratch, test_redis  # noqa: F401  (reuse the reachability rule)

    settings = make_settings(tmp_path, database_url, redis={"url": REDIS_URL})
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
    assert (
        'pentad_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/healthz",status_class="2xx"}'
        in response.text
        or 'pentad_http_request_duration_seconds_count{method="GET",route="/healthz",status_class="2xx"} 1.0'
        in response.text
    )
    assert "pentad_http_requests_in_flight" in response.text
    assert "pentad_db_pool_size" in response.text


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_probes_are_public_and_documented(client: httpx.AsyncClient, path: str) -> None:
    document = (await client.get("/openapi.json")).json()
    operation = document["paths"][path]["get"]
    assert "security" not in operation
