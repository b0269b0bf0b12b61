"""The middleware stack as a client and an operator see it: request ids, the access log, CORS, and the
order of the layers."""

from __future__ import annotations

import io
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from sqlalchemy.exc import OperationalError

from pentad.app import create_app
from pentad.core.apps import AppSpec
from pentad.core.auth.principal import Principal
from pentad.core.config import LogSettings
from pentad.core.db.engine import Database
from pentad.core.logging import configure_logging
from tests.conftest import make_settings

# The middleware stack does not depend on the database engine: it runs on one.
pytestmark = pytest.mark.one_engine

SERVICE_ID = uuid.UUID("00000000-0000-4000-8000-00000000beef")

probe = APIRouter(prefix="/probe")


@probe.get("/items/{item_id}")
async def item(item_id: int, request: Request) -> dict[str, Any]:
    return {"item_id": item_id, "request_id": request.state.request_id}


@probe.get("/as-service")
async def as_service(request: Request) -> dict[str, str]:
    request.state.principal = Principal(
        kind="service",
        id=SERVICE_ID,
        label="scraper",
        roles=frozenset(),
        permissions=frozenset(),
        via="service_token",
        credential_id=SERVICE_ID,
    )
    return {"ok": "yes"}


@probe.get("/fail")
async def fail() -> None:
    raise RuntimeError("deliberate failure")


@probe.post("/locked")
async def locked() -> None:
    raise OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked"))


PROBE = AppSpec(name="probe", title="Probe", routers=[probe])


def _app(tmp_path: Path, database_url: str, database: Database, **overrides: object) -> FastAPI:
    return create_app(make_settings(tmp_path, database_url, **overrides), database=database, apps=[PROBE])


def _client(app: FastAPI, *, raise_app_exceptions: bool = True) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(
        app=app, client=("127.0.0.1", 50000), raise_app_exceptions=raise_app_exceptions
    )
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
async def probe_client(
    tmp_path: Path, database_url: str, database: Database
) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(_app(tmp_path, database_url, database)) as client:
        yield client


@pytest.fixture
def access_log() -> Iterator[io.StringIO]:
    """Log output at INFO (configured after the app, which configures logging itself)."""
    stream = io.StringIO()
    configure_logging(LogSettings(level="INFO", json_format=True), stream=stream)
    yield stream
    configure_logging(LogSettings(level="WARNING", json_format=True))


def _access_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [line for line in lines if line["logger"] == "pentad.access"]


# ------------------------------------------------------------------ request id


async def test_a_sane_request_id_is_echoed(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.get("/probe/items/1", headers={"X-Request-ID": "edge-42.a_b-C"})
    assert response.headers["x-request-id"] == "edge-42.a_b-C"
    assert response.json()["request_id"] == "edge-42.a_b-C"


async def test_a_request_id_is_made_when_none_is_sent(probe_client: httpx.AsyncClient) -> None:
    first = await probe_client.get("/probe/items/1")
    second = await probe_client.get("/probe/items/1")
    assert len(first.headers["x-request-id"]) == 32
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    assert first.json()["request_id"] == first.headers["x-request-id"]


@pytest.mark.parametrize("insane", ["a" * 65, "has space", "semi;colon", "new\tline", "ünïcode", ""])
async def test_an_insane_request_id_is_replaced(probe_client: httpx.AsyncClient, insane: str) -> None:
    response = await probe_client.get("/probe/items/1", headers={"X-Request-ID": insane.encode()})
    assert response.headers["x-request-id"] != insane
    assert len(response.headers["x-request-id"]) == 32


async def test_error_bodies_quote_the_request_id(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.get("/no/such/page", headers={"X-Request-ID": "trace-me"})
    assert response.status_code == 404
    assert response.json()["request_id"] == "trace-me"


# ------------------------------------------------------------------ access log


async def test_one_access_line_per_request_with_the_route_template(
    probe_client: httpx.AsyncClient, access_log: io.StringIO
) -> None:
    response = await probe_client.get("/probe/items/7", headers={"X-Request-ID": "req-7"})
    [line] = _access_lines(access_log)
    assert line["event"] == "request"
    assert line["request_id"] == response.headers["x-request-id"] == "req-7"
    assert line["method"] == "GET"
    assert line["route"] == "/probe/items/{item_id}"
    assert line["status"] == 200
    assert line["latency_ms"] >= 0
    assert line["client"] == "127.0.0.1"
    assert line["principal_id"] is None


async def test_unknown_paths_share_one_route_label(
    probe_client: httpx.AsyncClient, access_log: io.StringIO
) -> None:
    await probe_client.get("/wp-admin/install.php")
    await probe_client.get("/.env")
    assert [line["route"] for line in _access_lines(access_log)] == ["<unmatched>", "<unmatched>"]
    assert {line["status"] for line in _access_lines(access_log)} == {404}


async def test_the_access_line_names_the_principal(
    probe_client: httpx.AsyncClient, access_log: io.StringIO
) -> None:
    await probe_client.get("/probe/as-service")
    [line] = _access_lines(access_log)
    assert line["principal_kind"] == "service"
    assert line["principal_id"] == str(SERVICE_ID)


async def test_a_crash_is_logged_as_a_500(tmp_path: Path, database_url: str, database: Database) -> None:
    app = _app(tmp_path, database_url, database)
    stream = io.StringIO()
    configure_logging(LogSettings(level="INFO", json_format=True), stream=stream)
    try:
        async with _client(app, raise_app_exceptions=False) as client:
            response = await client.get("/probe/fail")
    finally:
        configure_logging(LogSettings(level="WARNING", json_format=True))
    assert response.status_code == 500
    [line] = _access_lines(stream)
    assert (line["route"], line["status"]) == ("/probe/fail", 500)


async def test_a_busy_sqlite_database_is_a_503_to_retry_not_a_500(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    async with _client(_app(tmp_path, database_url, database), raise_app_exceptions=False) as client:
        response = await client.post("/probe/locked")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["code"] == "database_busy"


# ------------------------------------------------------------------ CORS and layer order


@pytest.fixture
async def cors_client(
    tmp_path: Path, database_url: str, database: Database
) -> AsyncIterator[httpx.AsyncClient]:
    app = _app(
        tmp_path,
        database_url,
        database,
        security={"cors_origins": ["https://app.example"], "max_body_bytes": 1024},
        ratelimit={"per_address": "2/day"},
    )
    async with _client(app) as client:
        yield client


async def test_cors_preflight_from_an_allowed_origin(cors_client: httpx.AsyncClient) -> None:
    response = await cors_client.options(
        "/probe/items/1",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "Authorization, X-CSRF-Token",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    assert "PATCH" in response.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in response.headers


async def test_cors_exposes_the_headers_clients_need(cors_client: httpx.AsyncClient) -> None:
    response = await cors_client.get("/probe/items/1", headers={"Origin": "https://app.example"})
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    exposed = {name.strip().lower() for name in response.headers["access-control-expose-headers"].split(",")}
    assert {
        "x-request-id",
        "retry-after",
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
    } <= exposed


async def test_cors_ignores_other_origins(cors_client: httpx.AsyncClient) -> None:
    response = await cors_client.get("/probe/items/1", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in response.headers


async def test_refusals_from_inner_layers_pass_through_the_outer_ones(cors_client: httpx.AsyncClient) -> None:
    origin = {"Origin": "https://app.example"}
    too_large = await cors_client.post("/probe/items/1", content=b"x" * 2048, headers=origin)
    for _ in range(2):
        await cors_client.get("/probe/items/1", headers=origin)
    too_many = await cors_client.get("/probe/items/1", headers=origin)
    assert (too_large.status_code, too_many.status_code) == (413, 429)
    for response in (too_large, too_many):
        assert response.headers["access-control-allow-origin"] == "https://app.example"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.json()["request_id"] == response.headers["x-request-id"]
