"""Direct routes (core/web/direct.py): served from the edge past the inner layers, with everything a request
must still get — the edge's headers and metrics, the body limit, the NUL guard, the error boundary, the
route's rate limit, problem answers to an AppError — and the declarations that cannot be direct refused."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from prometheus_client import generate_latest

from pentad.app import create_app
from pentad.core.apps import AppSpec
from pentad.core.cors import CorsPolicy
from pentad.core.db.engine import Database
from pentad.core.errors import AppError
from pentad.core.policy import RateLimitClass, route_policy
from pentad.core.web.direct import DirectRouteError
from tests.conftest import make_settings

pytestmark = pytest.mark.one_engine  # no SQL of its own: one engine is enough

BEACON_RATE = RateLimitClass("direct_probe", "3/minute")
seen: list[dict[str, object]] = []

router = APIRouter(prefix="/api/direct")


@router.post("/beacon", status_code=202, response_class=Response)
@route_policy(
    public="a beacon", rate_limit=BEACON_RATE, body_limit=64, cors=CorsPolicy(origins="*"), direct=True
)
async def beacon(request: Request) -> Response:
    body = await request.body()
    seen.append({"body": body, "transaction": "transaction" in request.scope["state"]})
    if body == b"refuse":
        raise AppError("Refused on purpose.", status=409, code="refused")
    if body == b"fail":
        raise RuntimeError("a bug")
    return Response(status_code=202, headers={"X-Seen": str(len(seen))})


@router.post("/routed", status_code=202, response_class=Response)
@route_policy(public="the same beacon, the usual way")
async def routed(request: Request) -> Response:
    seen.append({"body": await request.body(), "transaction": "transaction" in request.scope["state"]})
    return Response(status_code=202)


PROBE = AppSpec(name="directprobe", title="Direct probe", routers=[router])


def _app(tmp_path: Path, database_url: str, database: Database, spec: AppSpec = PROBE) -> FastAPI:
    settings = make_settings(tmp_path, database_url, ratelimit={"enabled": True})
    return create_app(settings, database=database, apps=[spec])


@pytest.fixture
def app(tmp_path: Path, database_url: str, database: Database) -> FastAPI:
    seen.clear()
    return _app(tmp_path, database_url, database)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_served_past_the_transaction_with_the_edges_headers(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/direct/beacon", content=b"hello", headers={"Origin": "https://a.example"}
    )
    assert response.status_code == 202
    assert response.headers["x-seen"] == "1"
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" in response.headers
    assert len(response.headers["x-request-id"]) == 32
    assert response.headers["ratelimit-limit"] == "3"
    routed = await client.post("/api/direct/routed", content=b"hello")
    assert routed.status_code == 202
    # The direct route never had a request transaction; its routed twin did.
    assert [item["transaction"] for item in seen] == [False, True]


async def test_metrics_label_the_route_template(app: FastAPI, client: httpx.AsyncClient) -> None:
    await client.post("/api/direct/beacon", content=b"x")
    text = generate_latest(app.state.platform.metrics.registry).decode()
    assert 'route="/api/direct/beacon"' in text


async def test_a_body_over_the_routes_limit_is_refused_before_it_runs(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/direct/beacon", content=b"x" * 65)
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert seen == []


async def test_a_nul_in_a_json_body_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/direct/beacon", content=json.dumps({"a": "x\x00"}), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["type"] == "nul_character"
    assert seen == []


async def test_an_app_error_is_a_problem_and_a_bug_a_500(client: httpx.AsyncClient) -> None:
    refused = await client.post("/api/direct/beacon", content=b"refuse")
    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "refused"
    failed = await client.post("/api/direct/beacon", content=b"fail")
    assert failed.status_code == 500
    assert failed.json()["code"] == "internal_error"
    assert failed.json()["request_id"] == failed.headers["x-request-id"]
    assert failed.headers["x-content-type-options"] == "nosniff"


async def test_the_routes_rate_limit_holds(client: httpx.AsyncClient) -> None:
    answers = [(await client.post("/api/direct/beacon", content=b"x")).status_code for _ in range(4)]
    assert answers == [202, 202, 202, 429]
    assert len(seen) == 3


async def test_other_methods_and_preflights_go_the_usual_way(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/direct/beacon")).status_code == 405
    preflight = await client.options(
        "/api/direct/beacon",
        headers={"Origin": "https://a.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert seen == []


async def _needs_a_dependency() -> str:
    return "x"


def _spec_with(endpoint_router: APIRouter) -> AppSpec:
    return AppSpec(name="directbad", title="Direct bad", routers=[endpoint_router])


def test_a_path_parameter_cannot_be_direct(tmp_path: Path, database_url: str, database: Database) -> None:
    bad = APIRouter()

    @bad.post("/api/bad/{item}")
    @route_policy(public="bad", direct=True)
    async def with_parameter(request: Request) -> Response:
        return Response()

    with pytest.raises(DirectRouteError, match="path parameters"):
        _app(tmp_path, database_url, database, _spec_with(bad))


def test_a_dependency_cannot_be_direct(tmp_path: Path, database_url: str, database: Database) -> None:
    bad = APIRouter()

    @bad.post("/api/bad")
    @route_policy(public="bad", direct=True)
    async def with_dependency(
        request: Request, value: Annotated[str, Depends(_needs_a_dependency)]
    ) -> Response:
        return Response()

    with pytest.raises(DirectRouteError, match="only the Request"):
        _app(tmp_path, database_url, database, _spec_with(bad))
