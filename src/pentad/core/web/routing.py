"""Route dispatch that tests only the routes a path can match.

FastAPI's router tries its routes in order until one matches: a request for a route near the end of the
table first runs the matcher of every included router before it (about 2-3 µs per route, twice for the
router that matches). `install_route_index(app)` puts a `RouteIndex` in front of the app's router: it keys
every top-level route (an included router counts with all of its routes) by the literal path segments its
routes start with, and for a request runs FastAPI's own selection loop over only the routes whose leading
segments fit the path, in their original order. A route that is left out cannot match the path (its
pattern starts with other literal text), so the first full match (else the first partial one, a 405) is
the one the plain scan would pick. When no candidate matches at all, the request goes to the router's own
dispatch unchanged, so 404s, redirect_slashes and low-priority (frontend) routes behave exactly as before.
Mounts, host routes, routes that start with a path parameter and anything unknown are candidates for every
path. The index is rebuilt when the route table changes (FastAPI's route version).

The selection loop mirrors `fastapi.routing.APIRouter.app` (FastAPI 0.165) and uses three of its helpers;
tests/core/web/test_route_index.py checks, for every route of every installed app, that the index picks
what a plain scan picks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from operator import attrgetter

from fastapi import FastAPI
from fastapi.routing import (
    APIRoute,
    APIRouter,
    APIWebSocketRoute,
    _apply_router_form_limits,
    _IncludedRouter,
    _update_scope,
    iter_route_contexts,
)
from fastapi.telemetry._api import _route_selected
from starlette import routing
from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

# How many leading path segments the index keys on: /api/chat/channels/… keeps a route table of five apps
# down to the routers of one area.
DEPTH = 3


def literal_prefix(path: str) -> tuple[str, ...]:
    """The leading path segments of a route template that are plain text (at most DEPTH)."""
    segments: list[str] = []
    for segment in path.split("/")[1:]:
        if "{" in segment or len(segments) == DEPTH:
            break
        segments.append(segment)
    return tuple(segments)


def _route_prefixes(route: BaseRoute) -> list[tuple[str, ...]] | None:
    """Every literal prefix a request must start with to match `route`; None when any path may match."""
    prefixes: set[tuple[str, ...]] = set()
    for context in iter_route_contexts([route]):
        if not isinstance(
            context.original_route, APIRoute | APIWebSocketRoute | routing.Route | routing.WebSocketRoute
        ):
            return None  # mounts, hosts, frontend groups: tested for every path
        path = context.path
        if not isinstance(path, str) or not path.startswith("/"):
            return None
        prefix = literal_prefix(path)
        if not prefix:
            return None
        prefixes.add(prefix)
    return sorted(prefixes)


class _Index:
    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        self.routes = list(routes)
        # (position, prefixes or None) per route, in table order.
        self._entries = [(position, _route_prefixes(route)) for position, route in enumerate(self.routes)]
        self._cache: dict[tuple[str, ...], tuple[BaseRoute, ...]] = {}

    def candidates(self, path: str) -> tuple[BaseRoute, ...]:
        key = tuple(path.split("/", DEPTH + 1)[1 : DEPTH + 1])
        found = self._cache.get(key)
        if found is None:
            found = tuple(self.routes[position] for position in self._positions(key))
            if len(self._cache) < 4096:  # keys come from request paths; a scan of junk must not grow it
                self._cache[key] = found
        return found

    def _positions(self, key: tuple[str, ...]) -> Iterable[int]:
        for position, prefixes in self._entries:
            if prefixes is None or any(key[: len(prefix)] == prefix for prefix in prefixes):
                yield position


_VERSION = attrgetter("_routes_version")


def _reachable_routers(router: APIRouter) -> tuple[APIRouter, ...]:
    found: dict[int, APIRouter] = {}
    pending = [router]
    while pending:
        current = pending.pop()
        if id(current) in found:
            continue
        found[id(current)] = current
        pending.extend(
            route.original_router for route in current.routes if isinstance(route, _IncludedRouter)
        )
    return tuple(found.values())


class RouteIndex:
    """The ASGI app in front of `router`'s dispatch (see the module docstring)."""

    def __init__(self, router: APIRouter) -> None:
        self.router = router
        self._index: _Index | None = None
        self._routers: tuple[APIRouter, ...] = ()
        self._versions: tuple[int, ...] = ()

    def index(self) -> _Index:
        # Any change to the table (a route added to the app or to a router it includes, at any depth, or
        # a router included) bumps the version of a router reachable from the app: comparing those
        # counters costs ~1 µs where FastAPI's recursive _get_routes_version() costs ~10.
        if self._index is None or tuple(map(_VERSION, self._routers)) != self._versions:
            self._routers = _reachable_routers(self.router)
            self._versions = tuple(map(_VERSION, self._routers))
            self._index = _Index(self.router.routes)
        return self._index

    def select(self, scope: Scope, routes: Sequence[BaseRoute]) -> tuple[Match, BaseRoute, Scope] | None:
        """FastAPI's rule: the first route that matches fully, else the first that matches partially."""
        partial: tuple[Match, BaseRoute, Scope] | None = None
        for route in routes:
            match, child_scope = route.matches(scope)
            if match == Match.FULL:
                return match, route, child_scope
            if match == Match.PARTIAL and partial is None:
                partial = (match, route, child_scope)
        return partial

    def candidates(self, scope: Scope) -> tuple[BaseRoute, ...]:
        return self.index().candidates(get_route_path(scope))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        router = self.router
        if scope["type"] == "lifespan":
            await router.app(scope, receive, send)
            return
        _apply_router_form_limits(scope, router.form_limits)
        if "router" not in scope:
            scope["router"] = router
        selected = self.select(scope, self.candidates(scope))
        if selected is None:
            # Nothing can match: the router's own path (redirect_slashes, frontend routes, 404).
            await router.app(scope, receive, send)
            return
        _, route, child_scope = selected
        _update_scope(scope, child_scope)
        _route_selected(
            scope=scope, path=getattr(route, "path_format", None), mount=isinstance(route, routing.Mount)
        )
        await route.handle(scope, receive, send)


def install_route_index(app: FastAPI) -> RouteIndex:
    """Dispatch `app`'s requests through a RouteIndex (Starlette's router calls its `middleware_stack`)."""
    if app.router.middleware_stack != app.router.app:
        raise RuntimeError("the router has middleware of its own; the route index would skip it")
    index = RouteIndex(app.router)
    app.router.middleware_stack = index
    return index
