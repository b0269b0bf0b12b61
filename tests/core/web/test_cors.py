"""Per-route CORS (RoutePolicy.cors, core/cors.py) as a browser sees it: a WHEP-like route for one player
origin, public media for any origin, a credentialed route whose origins a function checks, routes sharing a
path with different policies, and neighbours that declare nothing keeping PENTAD_SECURITY__CORS_ORIGINS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Response
from starlette.types import Scope

from pentad.app import create_app
from pentad.core.apps import AppSpec
from pentad.core.auth.dependencies import require
from pentad.core.auth.principal import Principal
from pentad.core.cors import CorsPolicy
from pentad.core.db.engine import Database
from pentad.core.policy import route_policy
from tests.conftest import make_settings

APP_ORIGIN = "https://app.example"  # PENTAD_SECURITY__CORS_ORIGINS
PLAYER_ORIGIN = "https://player.example"  # the WHEP route's own
EVIL_ORIGIN = "https://evil.example"

WHEP = CorsPolicy(
    origins=(PLAYER_ORIGIN,),
    methods=("POST", "PATCH", "DELETE"),
    allow_headers=("If-Match",),
    expose=("Location", "ETag", "Link", "Accept-Patch"),
)


def _trusted(origin: str, scope: Scope) -> bool:
    return origin.endswith(".trusted.example") and scope["path"].startswith("/api/cors/")


router = APIRouter(prefix="/api/cors")


@router.post("/whep")
@route_policy(public="a WHEP offer", cors=WHEP)
async def whep_offer() -> Response:
    return Response(
        "v=0\r\n",
        status_code=201,
        media_type="application/sdp",
        headers={
            "Location": "/api/cors/whep/s1",
            "ETag": '"e1"',
            "Accept-Patch": "application/trickle-ice-sdpfrag",
        },
    )


@router.get("/media")
@route_policy(public="public HLS", cors=CorsPolicy(origins="*"))
async def media() -> Response:
    return Response("#EXTM3U\n", media_type="application/vnd.apple.mpegurl")


@router.get("/account")
@route_policy(cors=CorsPolicy(origins=_trusted, credentials=True, allow_headers=("Authorization",)))
async def account(principal: Annotated[Principal, Depends(require())]) -> dict[str, str]:
    return {"id": str(principal.id)}


@router.get("/items")
@route_policy(public="a public list", cors=CorsPolicy(origins="*"))
async def list_items() -> list[str]:
    return ["one"]


@router.post("/items")
@route_policy(public="an anonymous post that keeps the platform's CORS")
async def add_item() -> dict[str, str]:
    return {"added": "yes"}


@router.get("/plain")
@route_policy(public="declares no CORS")
async def plain() -> dict[str, str]:
    return {"plain": "yes"}


CORS_APP = AppSpec(name="corsprobe", title="CORS probe", routers=[router])


def _app(tmp_path: Path, database_url: str, database: Database, **overrides: object) -> FastAPI:
    settings = make_settings(tmp_path, database_url, **overrides)
    return create_app(settings, database=database, apps=[CORS_APP])


def _client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
async def client(tmp_path: Path, database_url: str, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = _app(tmp_path, database_url, database, security={"cors_origins": [APP_ORIGIN]})
    async with _client(app) as client:
        yield client


def _preflight(origin: str, method: str, headers: str | None = None) -> dict[str, str]:
    asked = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        asked["Access-Control-Request-Headers"] = headers
    return asked


def _tokens(value: str) -> set[str]:
    return {item.strip().lower() for item in value.split(",")}


# ------------------------------------------------------------------ a route with its own origins


async def test_the_declared_origin_reads_the_answer_and_its_headers(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/cors/whep", headers={"Origin": PLAYER_ORIGIN})
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/sdp"
    assert response.headers["access-control-allow-origin"] == PLAYER_ORIGIN
    assert "origin" in _tokens(response.headers["vary"])
    exposed = _tokens(response.headers["access-control-expose-headers"])
    assert {"location", "etag", "link", "accept-patch", "x-request-id", "ratelimit-remaining"} <= exposed
    assert "access-control-allow-credentials" not in response.headers


@pytest.mark.parametrize("origin", [EVIL_ORIGIN, APP_ORIGIN])
async def test_an_origin_not_listed_gets_no_cors_headers(client: httpx.AsyncClient, origin: str) -> None:
    """The platform's origin too: a route that declares CORS gets only its own."""
    response = await client.post("/api/cors/whep", headers={"Origin": origin})
    assert response.status_code == 201  # CORS is for the browser to enforce; the route still ran
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-expose-headers" not in response.headers
    assert "origin" in _tokens(response.headers["vary"])


async def test_a_preflight_is_answered_with_what_the_route_allows(client: httpx.AsyncClient) -> None:
    response = await client.options(
        "/api/cors/whep", headers=_preflight(PLAYER_ORIGIN, "PATCH", "If-Match, Content-Type")
    )
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["access-control-allow-origin"] == PLAYER_ORIGIN
    assert _tokens(response.headers["access-control-allow-methods"]) == {"post", "patch", "delete"}
    assert {"if-match", "content-type"} <= _tokens(response.headers["access-control-allow-headers"])
    assert response.headers["access-control-max-age"] == "600"
    assert "access-control-allow-credentials" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    ("origin", "method", "headers"),
    [
        (EVIL_ORIGIN, "POST", None),  # origin not listed
        (APP_ORIGIN, "POST", None),  # the platform's origin is not this route's
        (PLAYER_ORIGIN, "PUT", None),  # method not allowed
        (PLAYER_ORIGIN, "PATCH", "If-Match, X-Secret"),  # a header not allowed
    ],
)
async def test_a_refused_preflight_carries_no_cors_headers(
    client: httpx.AsyncClient, origin: str, method: str, headers: str | None
) -> None:
    response = await client.options("/api/cors/whep", headers=_preflight(origin, method, headers))
    assert response.status_code == 204
    assert not [name for name in response.headers if name.startswith("access-control-")]
    assert "origin" in _tokens(response.headers["vary"])


# ------------------------------------------------------------------ any origin, credentials


async def test_public_media_is_open_to_any_origin(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/cors/media", headers={"Origin": EVIL_ORIGIN})
    assert response.headers["access-control-allow-origin"] == "*"
    assert "origin" not in _tokens(response.headers.get("vary", ""))
    preflight = await client.options("/api/cors/media", headers=_preflight(EVIL_ORIGIN, "GET"))
    assert (preflight.status_code, preflight.headers["access-control-allow-origin"]) == (204, "*")
    # A same-origin request (no Origin header) gets no CORS headers.
    assert "access-control-allow-origin" not in (await client.get("/api/cors/media")).headers


async def test_credentials_echo_the_checked_origin_never_a_star(client: httpx.AsyncClient) -> None:
    origin = "https://shop.trusted.example"
    preflight = await client.options("/api/cors/account", headers=_preflight(origin, "GET", "Authorization"))
    assert preflight.status_code == 204  # answered before authentication
    assert preflight.headers["access-control-allow-origin"] == origin
    assert preflight.headers["access-control-allow-credentials"] == "true"
    # The route's own refusal (no credentials) is readable by the page, so it can sign in.
    refused = await client.get("/api/cors/account", headers={"Origin": origin})
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == origin
    assert refused.headers["access-control-allow-credentials"] == "true"
    assert "origin" in _tokens(refused.headers["vary"])
    other = await client.get("/api/cors/account", headers={"Origin": "https://trusted.example.evil"})
    assert "access-control-allow-origin" not in other.headers
    assert "access-control-allow-credentials" not in other.headers


def test_credentials_with_any_origin_are_refused_at_declaration() -> None:
    with pytest.raises(ValueError, match="credentials"):
        CorsPolicy(origins="*", credentials=True)
    with pytest.raises(ValueError, match="scheme://host"):
        CorsPolicy(origins=("https://app.example/path",))


# ------------------------------------------------------------------ the platform's CORS and shared paths


async def test_the_platform_cors_still_covers_routes_that_declare_none(client: httpx.AsyncClient) -> None:
    allowed = await client.get("/api/cors/plain", headers={"Origin": APP_ORIGIN})
    assert allowed.headers["access-control-allow-origin"] == APP_ORIGIN
    refused = await client.get("/api/cors/plain", headers={"Origin": PLAYER_ORIGIN})
    assert "access-control-allow-origin" not in refused.headers
    preflight = await client.options(
        "/api/cors/plain", headers=_preflight(APP_ORIGIN, "DELETE", "Authorization")
    )
    assert (preflight.status_code, preflight.headers["access-control-allow-origin"]) == (204, APP_ORIGIN)
    unknown = await client.get("/api/cors/no-such-route", headers={"Origin": APP_ORIGIN})
    assert (unknown.status_code, unknown.headers["access-control-allow-origin"]) == (404, APP_ORIGIN)


async def test_routes_sharing_a_path_answer_preflights_for_the_method_asked(
    client: httpx.AsyncClient,
) -> None:
    post = await client.options("/api/cors/items", headers=_preflight(APP_ORIGIN, "POST", "Content-Type"))
    assert post.headers["access-control-allow-origin"] == APP_ORIGIN
    post_elsewhere = await client.options("/api/cors/items", headers=_preflight(EVIL_ORIGIN, "POST"))
    assert "access-control-allow-origin" not in post_elsewhere.headers
    get = await client.options("/api/cors/items", headers=_preflight(EVIL_ORIGIN, "GET"))
    assert get.headers["access-control-allow-origin"] == "*"


async def test_preflights_spend_no_rate_limit(tmp_path: Path, database_url: str, database: Database) -> None:
    app = _app(tmp_path, database_url, database, ratelimit={"per_address": "2/day"})
    async with _client(app) as client:
        for _ in range(5):
            preflight = await client.options("/api/cors/whep", headers=_preflight(PLAYER_ORIGIN, "POST"))
            assert preflight.status_code == 204
        for _ in range(2):
            assert (await client.post("/api/cors/whep", headers={"Origin": PLAYER_ORIGIN})).status_code == 201
        limited = await client.post("/api/cors/whep", headers={"Origin": PLAYER_ORIGIN})
        assert limited.status_code == 429
        assert limited.headers["access-control-allow-origin"] == PLAYER_ORIGIN


async def test_without_any_cors_an_options_request_reaches_the_route(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    async with _client(_app(tmp_path, database_url, database)) as client:
        response = await client.options("/api/cors/plain", headers=_preflight(APP_ORIGIN, "GET"))
        assert response.status_code == 405
        assert "access-control-allow-origin" not in response.headers
        assert (
            "access-control-allow-origin"
            not in (await client.get("/api/cors/plain", headers={"Origin": APP_ORIGIN})).headers
        )
