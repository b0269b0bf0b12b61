"""core/web/routing.py: the route index picks, for every path, the route a plain in-order scan of the
whole table picks (incl. 405s, trailing-slash redirects, websocket routes, mounts and 404s), while testing
only a few of the routes."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.routing import Match

from pentad.app import create_app
from pentad.core.db.engine import Database
from pentad.core.web.routing import RouteIndex, literal_prefix
from tests.conftest import ALL_APPS, make_settings

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
SAMPLE = {"int": "7", "uuid": "2b0c6a52-4a47-4d8e-9a3c-2a8f0e6f2a11", "path": "a/b.txt", "float": "1.5"}


def _concrete(path: str) -> str:
    """A request path the template matches: every parameter filled with a value its convertor takes."""

    def fill(match: re.Match[str]) -> str:
        _, _, convertor = match.group(1).partition(":")
        return SAMPLE.get(convertor, "x7")

    return re.sub(r"\{([^}]+)\}", fill, path)


def _scope(kind: str, path: str, method: str = "GET") -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": kind, "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
        "headers": [(b"host", b"testserver")], "scheme": "http" if kind == "http" else "ws",
        "client": ("127.0.0.1", 5000), "server": ("testserver", 80),
    }  # fmt: skip
    if kind == "http":
        scope["method"] = method
    return scope


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    folder = tmp_path_factory.mktemp("route-index")
    return create_app(make_settings(folder, f"sqlite+aiosqlite:///{folder / 'p.db'}"), apps=ALL_APPS)


def _index(app: FastAPI) -> RouteIndex:
    index = app.router.middleware_stack
    assert isinstance(index, RouteIndex)
    return index


def _requests(app: FastAPI) -> Iterator[dict[str, Any]]:
    for context in iter_route_contexts(app.routes):
        path = context.path
        if not isinstance(path, str):
            continue
        concrete = _concrete(path)
        variants = {concrete, concrete + "/", concrete.rstrip("/") or "/", concrete + "/extra"}
        for variant in variants:
            yield _scope("websocket", variant)
            for method in METHODS:
                yield _scope("http", variant, method)
    for stray in (
        "/",
        "/nope",
        "/api",
        "/api/",
        "/api/nope",
        "/api/chat",
        "/static/css/pentad.css",
        "/x/y/z/w",
    ):
        for method in ("GET", "POST"):
            yield _scope("http", stray, method)


def test_literal_prefix_stops_at_parameters_and_depth() -> None:
    assert literal_prefix("/api/chat/channels/{channel_id}/messages") == ("api", "chat", "channels")
    assert literal_prefix("/api/me") == ("api", "me")
    assert literal_prefix("/files/{key:path}") == ("files",)
    assert literal_prefix("/{site_id}/x") == ()
    assert literal_prefix("/api/items.{fmt}") == ("api",)
    assert literal_prefix("/") == ("",)


def test_the_index_picks_what_a_plain_scan_picks_for_every_route(app: FastAPI) -> None:
    index = _index(app)
    table = list(app.routes)
    compared = full = partial = 0
    for scope in _requests(app):
        candidates = index.candidates(scope)
        indexed = index.select(dict(scope), candidates)
        scanned = index.select(dict(scope), table)
        picked = None if indexed is None else (indexed[0], id(indexed[1]), indexed[2])
        expected = None if scanned is None else (scanned[0], id(scanned[1]), scanned[2])
        assert picked == expected, (scope["type"], scope.get("method"), scope["path"])
        compared += 1
        if scanned is not None:
            full += scanned[0] == Match.FULL
            partial += scanned[0] == Match.PARTIAL
    # Not vacuous: thousands of requests, every route matched in full, many 405s (partial matches).
    assert compared > 5000
    assert full > 400
    assert partial > 1000


def test_a_request_tests_only_the_routes_of_its_area(app: FastAPI) -> None:
    index = _index(app)
    table = list(app.routes)
    me = index.candidates(_scope("http", "/api/me"))
    assert 0 < len(me) < len(table) // 3
    # Mounts are candidates for every path: /static/chat/... reaches the chat mount before /static.
    static = index.candidates(_scope("http", "/static/chat/chat.js"))
    assert [route for route in table if route in static] == list(static)


def test_a_route_added_after_the_first_request_is_found(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"))
    index = _index(app)
    assert (
        index.select(_scope("http", "/late/route"), index.candidates(_scope("http", "/late/route"))) is None
    )
    for router in (*app.routes,):
        original = getattr(router, "original_router", None)
        if original is not None:
            original.add_api_route("/late/route", lambda: {"late": True})
            break
    selected = index.select(_scope("http", "/late/route"), index.candidates(_scope("http", "/late/route")))
    assert selected is not None
    assert selected[0] == Match.FULL


@pytest.mark.one_engine
async def test_answers_are_the_same_with_and_without_the_index(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    app = create_app(make_settings(tmp_path, database_url), database=database, apps=ALL_APPS)
    requests = [
        ("GET", "/healthz"),
        ("HEAD", "/healthz"),  # FastAPI adds no HEAD to a GET route: 405 either way
        ("DELETE", "/healthz"),  # 405 with Allow
        ("GET", "/healthz/"),  # redirect_slashes
        ("GET", "/api/me"),  # 401 problem+json
        ("PUT", "/api/me"),
        ("GET", "/api/nope"),  # 404 problem+json
        ("GET", "/nope/"),
        ("GET", "/static/css/pentad.css"),
        ("GET", "/static/css/missing.css"),
        ("GET", f"/api/chat/channels/{uuid.uuid4()}/messages"),
        ("POST", "/api/analytics/event"),
        ("GET", "/login"),
    ]
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    answers: dict[str, list[tuple[int, str | None, str | None, str | None, bytes]]] = {}
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for variant in ("indexed", "plain"):
            if variant == "plain":
                app.router.middleware_stack = app.router.app
            answers[variant] = [
                (
                    response.status_code,
                    response.headers.get("content-type"),
                    response.headers.get("allow"),
                    response.headers.get("location"),
                    re.sub(rb'"(request_id|instance)":"[^"]*"', b"", response.content),
                )
                for method, path in requests
                for response in [await client.request(method, path)]
            ]
    assert answers["indexed"] == answers["plain"]
    assert [answer[0] for answer in answers["indexed"]][:5] == [200, 405, 405, 307, 401]
