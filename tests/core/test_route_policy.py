"""Route policy (core/policy.py) seen from a client: a tiny app whose routes declare public access, their own
rate-limit class or none, a larger body limit, extra security headers and the credentials they take; and
the neighbours that declare nothing keep the platform's defaults."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request

from pentad.app import create_app
from pentad.core.apps import AppSpec
from pentad.core.auth.dependencies import INTERACTIVE, Authenticator, require, require_service
from pentad.core.auth.principal import Principal
from pentad.core.db.engine import Database
from pentad.core.platform import Platform
from pentad.core.policy import (
    CONTENT_SECURITY_POLICY,
    UNLIMITED,
    RateLimitClass,
    RoutePolicy,
    route_policy,
    unguarded_operations,
)
from tests.conftest import make_settings
from tests.factories import access_token, bearer, create_user, issue_api_key, issue_service_token

# Route policy does not depend on the database engine: it runs on one.
pytestmark = pytest.mark.one_engine

INGEST = RateLimitClass("ingest", "100/minute")
PLAYER_CSP = {"media-src": "'self' blob:", "worker-src": "'self' blob:", "frame-ancestors": "*"}
WHIP_PERMISSIONS = {"camera": "(self)", "microphone": "(self)"}

router = APIRouter(prefix="/api/pol")


@router.get("/open")
@route_policy(public="a test of the default limits")
async def open_route() -> dict[str, str]:
    return {"open": "yes"}


@router.post("/callback")
@route_policy(public="nginx calls back from loopback", rate_limit=UNLIMITED)
async def callback() -> dict[str, str]:
    return {"called": "yes"}


@router.post("/collect")
@route_policy(public="trackers post anonymously", rate_limit=INGEST)
async def collect(request: Request) -> dict[str, int]:
    return {"bytes": len(await request.body())}


@router.post("/upload")
@route_policy(public="a test of the upload body limit", body_limit="upload")
async def upload(request: Request) -> dict[str, int]:
    return {"bytes": len(await request.body())}


@router.post("/small")
@route_policy(public="a test of the default body limit")
async def small(request: Request) -> dict[str, int]:
    return {"bytes": len(await request.body())}


@router.get("/player")
@route_policy(public="an embeddable player", csp=PLAYER_CSP)
async def player() -> dict[str, str]:
    return {"player": "yes"}


@router.get("/whip")
@route_policy(public="a publishing page", permissions=WHIP_PERMISSIONS)
async def whip() -> dict[str, str]:
    return {"whip": "yes"}


@router.get("/machine")
async def machine(principal: Annotated[Principal, Depends(require_service())]) -> dict[str, str]:
    return {"via": principal.via}


@router.get("/interactive")
async def interactive(
    principal: Annotated[Principal, Depends(Authenticator(credentials=INTERACTIVE))],
) -> dict[str, str]:
    return {"via": principal.via}


@router.get("/anyone-signed-in")
async def anyone_signed_in(principal: Annotated[Principal, Depends(require())]) -> dict[str, str]:
    return {"via": principal.via}


POLICY = AppSpec(name="pol", title="Policy probe", routers=[router])

themed = APIRouter(prefix="/api/themed")


@themed.get("/page")
@route_policy(public="a test of the app default")
async def themed_page() -> dict[str, str]:
    return {"page": "yes"}


@themed.get("/own")
@route_policy(public="a test of a route over its app", csp={"img-src": "'self' https://img.example"})
async def themed_own() -> dict[str, str]:
    return {"own": "yes"}


THEMED = AppSpec(
    name="themed",
    title="Themed",
    routers=[themed],
    route_policy=RoutePolicy(csp={"font-src": "https://fonts.example"}, permissions={"fullscreen": "(self)"}),
)

forgetful = APIRouter(prefix="/api/forgetful")


@forgetful.get("/secret")
async def forgot_its_guard() -> dict[str, str]:
    return {"secret": "leaked"}


FORGETFUL = AppSpec(name="forgetful", title="Forgetful", routers=[forgetful])

MAX_BODY = 2048


def _app(
    tmp_path: Path, database_url: str, database: Database, *apps: AppSpec, **overrides: object
) -> FastAPI:
    settings = make_settings(tmp_path, database_url, security={"max_body_bytes": MAX_BODY}, **overrides)
    return create_app(settings, database=database, apps=list(apps) or [POLICY])


def _client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
async def limited(tmp_path: Path, database_url: str, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    """Three requests a day per address by default; the ingest class two, set by PENTAD_RATELIMIT__CLASSES."""
    ratelimit = {"per_address": "3/day", "classes": {"ingest": "2/day"}}
    async with _client(_app(tmp_path, database_url, database, ratelimit=ratelimit)) as client:
        yield client


@pytest.fixture
async def probe(tmp_path: Path, database_url: str, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(_app(tmp_path, database_url, database)) as client:
        yield client


# ------------------------------------------------------------------ rate limits


async def test_an_unlimited_route_is_exempt_while_its_neighbour_is_limited(
    limited: httpx.AsyncClient,
) -> None:
    for _ in range(3):
        assert (await limited.get("/api/pol/open")).status_code == 200
    assert (await limited.get("/api/pol/open")).status_code == 429
    for _ in range(10):
        answered = await limited.post("/api/pol/callback")
        assert answered.status_code == 200
        assert "ratelimit-limit" not in answered.headers
    assert (await limited.get("/healthz")).status_code == 200


async def test_a_route_spends_its_own_class_whose_limit_the_settings_set(limited: httpx.AsyncClient) -> None:
    first = await limited.post("/api/pol/collect")
    assert (first.status_code, first.headers["ratelimit-limit"]) == (200, "2")
    assert (await limited.post("/api/pol/collect")).status_code == 200
    refused = await limited.post("/api/pol/collect")
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    # The class has its own counter: the default one is untouched.
    opened = await limited.get("/api/pol/open")
    assert (opened.status_code, opened.headers["ratelimit-remaining"]) == (200, "2")


async def test_a_request_no_route_takes_spends_the_default_limit(limited: httpx.AsyncClient) -> None:
    for _ in range(3):
        assert (await limited.get("/api/pol/no-such-route")).status_code == 404
    assert (await limited.get("/api/pol/no-such-route")).status_code == 429
    assert (await limited.get("/api/pol/open")).status_code == 429
    assert (await limited.post("/api/pol/collect")).status_code == 200


async def test_a_class_without_a_setting_keeps_its_declared_limit(probe: httpx.AsyncClient) -> None:
    collected = await probe.post("/api/pol/collect")
    assert collected.headers["ratelimit-limit"] == "100"
    opened = await probe.get("/api/pol/open")
    assert opened.headers["ratelimit-limit"] == "600"


# ------------------------------------------------------------------ body limits


async def test_an_upload_route_takes_a_body_its_neighbour_refuses(probe: httpx.AsyncClient) -> None:
    body = b"x" * (MAX_BODY * 4)
    accepted = await probe.post("/api/pol/upload", content=body)
    assert (accepted.status_code, accepted.json()) == (200, {"bytes": len(body)})
    refused = await probe.post("/api/pol/small", content=body)
    assert (refused.status_code, refused.json()["code"]) == (413, "payload_too_large")
    assert str(MAX_BODY) in refused.json()["detail"]


async def test_a_streamed_body_is_counted_against_the_routes_limit(probe: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"x" * 1024

    assert (await probe.post("/api/pol/upload", content=chunks())).json() == {"bytes": 8192}
    refused = await probe.post("/api/pol/small", content=chunks())
    assert refused.status_code == 413


# ------------------------------------------------------------------ security headers


async def test_a_player_route_loosens_only_its_own_csp(probe: httpx.AsyncClient) -> None:
    played = await probe.get("/api/pol/player")
    policy = played.headers["content-security-policy"]
    assert "media-src 'self' blob:" in policy
    assert "worker-src 'self' blob:" in policy
    assert "frame-ancestors *" in policy
    assert "script-src 'self'" in policy
    assert "x-frame-options" not in played.headers
    for neighbour in ("/api/pol/open", "/api/pol/whip", "/api/pol/nowhere"):
        response = await probe.get(neighbour)
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["x-frame-options"] == "DENY"


async def test_a_whip_route_may_use_camera_and_microphone(probe: httpx.AsyncClient) -> None:
    whip = await probe.get("/api/pol/whip")
    assert whip.headers["permissions-policy"] == "camera=(self), microphone=(self), geolocation=()"
    other = await probe.get("/api/pol/player")
    assert other.headers["permissions-policy"] == "camera=(), microphone=(), geolocation=()"


async def test_an_app_default_applies_to_its_routes_and_a_route_adds_to_it(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    async with _client(_app(tmp_path, database_url, database, THEMED, POLICY)) as client:
        page = await client.get("/api/themed/page")
        own = await client.get("/api/themed/own")
        other_app = await client.get("/api/pol/open")
    assert "font-src https://fonts.example" in page.headers["content-security-policy"]
    assert "fullscreen=(self)" in page.headers["permissions-policy"]
    assert "font-src https://fonts.example" in own.headers["content-security-policy"]
    assert "img-src 'self' https://img.example" in own.headers["content-security-policy"]
    assert "img-src 'self' data:" in page.headers["content-security-policy"]
    assert other_app.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "fullscreen" not in other_app.headers["permissions-policy"]


# ------------------------------------------------------------------ authenticators


@pytest.fixture
async def with_platform(
    tmp_path: Path, database_url: str, database: Database
) -> AsyncIterator[tuple[httpx.AsyncClient, Platform]]:
    app = _app(tmp_path, database_url, database)
    async with _client(app) as client:
        yield client, app.state.platform


async def test_a_service_only_route_refuses_people(with_platform: tuple[httpx.AsyncClient, Platform]) -> None:
    client, platform = with_platform
    user = await create_user(platform)
    session = await access_token(client, user)
    key = await issue_api_key(platform, user)
    service = await issue_service_token(platform)
    assert (await client.get("/api/pol/machine")).status_code == 401
    for token in (session, key):
        refused = await client.get("/api/pol/machine", headers=bearer(token))
        assert (refused.status_code, refused.json()["code"]) == (403, "credential_refused")
    allowed = await client.get("/api/pol/machine", headers=bearer(service))
    assert (allowed.status_code, allowed.json()) == (200, {"via": "service_token"})
    # The neighbour that takes any principal lets all three in.
    for token in (session, key, service):
        assert (await client.get("/api/pol/anyone-signed-in", headers=bearer(token))).status_code == 200


async def test_an_interactive_route_refuses_keys_and_tokens(
    with_platform: tuple[httpx.AsyncClient, Platform],
) -> None:
    client, platform = with_platform
    user = await create_user(platform)
    session = await access_token(client, user)
    for token in (await issue_api_key(platform, user), await issue_service_token(platform)):
        refused = await client.get("/api/pol/interactive", headers=bearer(token))
        assert (refused.status_code, refused.json()["code"]) == (403, "credential_refused")
        assert "access_token, session" in refused.json()["detail"]
    allowed = await client.get("/api/pol/interactive", headers=bearer(session))
    assert allowed.json() == {"via": "access_token"}


# ------------------------------------------------------------------ declarations


def test_declared_public_routes_are_listed_with_their_reasons(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    app = _app(tmp_path, database_url, database)
    public = app.state.route_policies.public_operations()
    assert public[("POST", "/api/pol/callback")] == "nginx calls back from loopback"
    assert ("GET", "/api/pol/machine") not in public
    assert unguarded_operations(app, app.state.route_policies) == []


def test_a_route_neither_public_nor_guarded_is_found(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    app = _app(tmp_path, database_url, database, FORGETFUL, POLICY)
    assert unguarded_operations(app, app.state.route_policies) == [("GET", "/api/forgetful/secret")]


def test_declarations_are_checked_when_made() -> None:
    with pytest.raises(ValueError, match="says why"):
        RoutePolicy(public=" ")
    with pytest.raises(ValueError, match="couldn't parse"):
        RateLimitClass("broken", "lots")
    with pytest.raises(ValueError, match="lower-case name"):
        RateLimitClass("address", "5/minute")


async def test_apps_sharing_routes_keep_their_own_settings(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    """Route objects are module-level and shared by every app built in a process: each app's limits hold."""
    strict = _app(tmp_path, database_url, database, ratelimit={"classes": {"ingest": "1/day"}})
    loose = _app(tmp_path, database_url, database, ratelimit={"classes": {"ingest": "5/day"}})
    async with _client(strict) as strict_client, _client(loose) as loose_client:
        assert (await strict_client.post("/api/pol/collect")).headers["ratelimit-limit"] == "1"
        assert (await loose_client.post("/api/pol/collect")).headers["ratelimit-limit"] == "5"
        assert (await strict_client.post("/api/pol/collect")).status_code == 429
        assert (await loose_client.post("/api/pol/collect")).status_code == 200
