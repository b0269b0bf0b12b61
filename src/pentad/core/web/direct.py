"""Direct routes: a hot anonymous endpoint served from the edge, past the layers it does not use.

A route declared `@route_policy(direct=True)` is still an ordinary FastAPI route (OpenAPI, the route
index, a CORS preflight and any method it does not serve go the usual way), but a request for its method
and exact path goes from EdgeMiddleware (core/web/middleware.py) straight to it: the request transaction,
Starlette's exception and exit-stack layers, the router and FastAPI's dependency and response machinery
are skipped, which is much of what an anonymous beacon costs (bench/analytics.py: the ingest route). What
a request must still get it gets, in the same order as through the stack: the edge (request id, client
address, security and CORS headers, rate-limit gate and headers, metrics, access log), the body limit,
the NUL guard, the error boundary, the route's rate limit, and the app's answers to an `AppError` and to
Starlette's `HTTPException`.

What such a route may be (checked when the app is built, `DirectRouteError` otherwise): an `APIRoute` with a
literal path (no parameters), an `async def` endpoint taking only the `Request` and returning a `Response`,
with no dependencies. It never gets a request session: it opens its own transactions, or writes through a
buffer such as core ingest.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from pentad.core.errors import AppError, ErrorBoundaryMiddleware, app_error_response, http_error_response
from pentad.core.policy import RATE_GATE_STATE_KEY, ROUTE_STATE_KEY, RateGate, RoutePolicies, declared_policy
from pentad.core.security import BodySizeLimitMiddleware
from pentad.core.web.nul_guard import NulGuardMiddleware

DirectTable = Mapping[tuple[str, str], ASGIApp]
"""(method, path) → the ASGI app serving it from the edge."""


class DirectRouteError(TypeError):
    """A route declared direct that cannot be served from the edge."""


class _DirectEndpoint:
    """The innermost layer: the route's gate (which route, its rate limit), then the endpoint itself."""

    __slots__ = ("endpoint", "route", "route_id")

    def __init__(self, route: APIRoute) -> None:
        self.route = route
        self.route_id = id(route)
        self.endpoint = route.endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gate: RateGate | None = scope["state"].get(RATE_GATE_STATE_KEY)
        if gate is not None and not await gate(scope, receive, send):
            return
        request = Request(scope, receive, send)
        try:
            response: Response = await self.endpoint(request)
        except AppError as exc:
            response = app_error_response(exc, scope["state"].get("request_id"))
        except HTTPException as exc:  # the body limit's 413, as the app's handler answers it
            response = http_error_response(exc, scope["state"].get("request_id"))
        await response(scope, receive, send)


class DirectRoute:
    """One direct route's layers: body limit, NUL guard, error boundary, gate + endpoint."""

    __slots__ = ("app", "route", "route_id")

    def __init__(self, route: APIRoute, policies: RoutePolicies, max_body_bytes: int) -> None:
        self.route = route
        self.route_id = id(route)
        self.app: ASGIApp = BodySizeLimitMiddleware(
            NulGuardMiddleware(ErrorBoundaryMiddleware(_DirectEndpoint(route))),
            max_body_bytes=max_body_bytes,
            policies=policies,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # What the router and the route's gate would have noted: the edge's metrics label and route policy
        # (security headers, CORS, body limit) read them.
        scope["route"] = self.route
        scope["endpoint"] = self.route.endpoint
        scope["state"][ROUTE_STATE_KEY] = self.route_id
        await self.app(scope, receive, send)


def _check(route: APIRoute) -> None:
    where = f"the direct route {sorted(route.methods or ())} {route.path}"
    if route.param_convertors:
        raise DirectRouteError(f"{where} has path parameters; a direct route has a literal path")
    if not inspect.iscoroutinefunction(route.endpoint):
        raise DirectRouteError(f"{where} is not an async def endpoint")
    parameters = list(inspect.signature(route.endpoint).parameters.values())
    takes_request = len(parameters) == 1 and parameters[0].annotation in (Request, "Request")
    if not takes_request or route.dependant.dependencies or route.dependencies:
        raise DirectRouteError(f"{where} must take only the Request, with no dependencies")


def direct_routes(app: FastAPI, policies: RoutePolicies, max_body_bytes: int) -> dict[tuple[str, str], Any]:
    """The app's direct routes by (method, path); raises DirectRouteError for one that cannot be direct."""
    table: dict[tuple[str, str], Any] = {}
    for context in iter_route_contexts(app.router.routes):
        route = context.original_route
        if not isinstance(route, APIRoute):
            continue
        policy = declared_policy(route.endpoint)
        if policy is None or not policy.direct:
            continue
        _check(route)
        served = DirectRoute(route, policies, max_body_bytes)
        for method in route.methods or ():
            table[(method, context.path or route.path)] = served
    return table
