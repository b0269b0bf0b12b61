"""The HTTP middleware stack, and its outermost layer (EdgeMiddleware): request id, access log and request
metrics, client address, security and rate-limit headers.

Every layer is pure ASGI; BaseHTTPMiddleware would cost a task and a body copy per request.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

import structlog
from fastapi import FastAPI
from starlette._utils import get_route_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pentad.core.cors import ACAO, add_vary
from pentad.core.db.transaction import TransactionMiddleware
from pentad.core.errors import ErrorBoundaryMiddleware
from pentad.core.metrics import Metrics
from pentad.core.platform import Platform
from pentad.core.policy import POLICIES_STATE_KEY, PREFLIGHT_STATE_KEY, RoutePolicies
from pentad.core.ratelimit import RateLimitMiddleware, RateLimitReport, reset_report
from pentad.core.security import (
    BodySizeLimitMiddleware,
    ClientAddressMiddleware,
    SecurityHeadersMiddleware,
    scope_client_address,
)
from pentad.core.web.compression import ResponseCompression, compressible, preferred_encoding
from pentad.core.web.direct import DirectTable, direct_routes
from pentad.core.web.nul_guard import NulGuardMiddleware

REQUEST_ID_HEADER = b"x-request-id"
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
UNMATCHED_ROUTE = "<unmatched>"

ACCESS_LOGGER_NAME = "pentad.access"
access_logger = structlog.get_logger(ACCESS_LOGGER_NAME)
# Asked first so that, below INFO, a request costs no structlog event at all.
_access_log_level = logging.getLogger(ACCESS_LOGGER_NAME)


def install_middleware(app: FastAPI, platform: Platform, policies: RoutePolicies) -> None:
    """Build the stack; from the outside in: the edge (request context, client address, security and CORS
    headers, the rate-limit gate and headers: one layer, see EdgeMiddleware), body size limit, the NUL
    guard, the request's transaction, the error boundary. The route policies (core/policy.py, resolved by
    create_app) tell the middlewares each route's limits and headers; CORS preflights are answered by the
    route gate (core/policy.py, core/cors.py), PENTAD_SECURITY__CORS_ORIGINS being the CORS of every route
    that declares none. Direct routes (core/web/direct.py) are served from the edge, past the inner layers.
    """
    settings = platform.settings
    # add_middleware puts each new layer outside the ones added before it.
    app.add_middleware(ErrorBoundaryMiddleware)
    app.add_middleware(TransactionMiddleware, database=platform.database)
    app.add_middleware(NulGuardMiddleware)
    app.add_middleware(
        BodySizeLimitMiddleware, max_body_bytes=settings.security.max_body_bytes, policies=policies
    )
    app.add_middleware(
        EdgeMiddleware,
        metrics=platform.metrics,
        policies=policies,
        direct=direct_routes(app, policies, settings.security.max_body_bytes),
        client=ClientAddressMiddleware(app, trusted_proxies=settings.security.trusted_proxies),
        security=SecurityHeadersMiddleware(
            app, hsts_max_age=settings.security.hsts_max_age, policies=policies
        ),
        ratelimit=(
            RateLimitMiddleware(app, limiter=platform.limiter, policies=policies)
            if settings.ratelimit.enabled
            else None
        ),
    )


def _request_headers(scope: Scope) -> tuple[str | None, str | None, bytes | None]:
    """The request's X-Request-ID (when sane), Origin and Accept-Encoding, in one pass over its headers."""
    request_id = origin = accept_encoding = None
    for name, value in scope["headers"]:
        name = name.lower()
        if name == REQUEST_ID_HEADER:
            text = value.decode("latin-1")
            request_id = text if SANE_REQUEST_ID.fullmatch(text) else None
        elif name == b"origin":
            origin = value.decode("latin-1")
        elif name == b"accept-encoding":
            accept_encoding = value
    return request_id, origin, accept_encoding


def _route_template(scope: Scope) -> str:
    """The matched route's path template (`/api/users/{user_id}`): bounded label and log cardinality."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class EdgeMiddleware:
    """The outer layers of every request in one (one call and one `send` wrapper per request instead of
    six): the request context, the client address (ClientAddressMiddleware.resolve), the browser hardening
    headers (SecurityHeadersMiddleware), the route's CORS headers (core/cors.py), response compression
    (core/web/compression.py), and the per-address rate limit's gate and RateLimit-* headers
    (RateLimitMiddleware; None when rate limiting is off). The three are used for their parts only; each
    still works as a middleware of its own.

    The request context: each request gets an id, the caller's X-Request-ID when that is a plain token of at
    most 64 characters, otherwise a new one. It goes to `scope["state"]["request_id"]` (error bodies quote
    it), to the log context of everything logged while the request runs, and back in the X-Request-ID
    response header. When the request is done, its access-log line and its metrics are written.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        policies: RoutePolicies,
        client: ClientAddressMiddleware,
        security: SecurityHeadersMiddleware,
        ratelimit: RateLimitMiddleware | None,
        direct: DirectTable | None = None,
    ) -> None:
        self.app = app
        self.direct = direct or {}
        self.metrics = metrics
        self.policies = policies
        self.client = client
        self.security = security
        self.ratelimit = ratelimit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        incoming_id, origin, accept_encoding = _request_headers(scope)
        request_id = incoming_id or uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state[POLICIES_STATE_KEY] = self.policies
        self.client.resolve(scope)
        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            if kind == "http":
                await self._handle_http(scope, receive, send, request_id, origin, accept_encoding)
            else:
                if self.ratelimit is not None:
                    self.ratelimit.register(scope)
                await self.app(scope, receive, send)
        finally:
            structlog.contextvars.reset_contextvars(**tokens)

    async def _handle_http(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request_id: str,
        origin: str | None,
        accept_encoding: bytes | None,
    ) -> None:
        request_id_header = (REQUEST_ID_HEADER, request_id.encode())
        policies = self.policies
        security = self.security
        state = scope["state"]
        extra = security.request_headers(scope)
        ratelimit = self.ratelimit
        report = RateLimitReport()
        report_token = ratelimit.start(scope, report) if ratelimit is not None else None
        # Stays 500 if the app fails before it starts a response; the server then sends one.
        status = 500
        head = scope["method"] == "HEAD"
        encoding = preferred_encoding(accept_encoding) if accept_encoding is not None and not head else None
        compression: ResponseCompression | None = None

        async def send_at_the_edge(message: Message) -> None:
            nonlocal status, compression
            if compression is not None:
                await compression(message)
                return
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                compress = compressible(status, headers)
                present = {name.lower() for name, _ in headers}
                RateLimitMiddleware.add(report, headers, present)
                # By now the router has picked the route, so its policy is known.
                policy = policies.for_scope(scope)
                security.add_for(policy, headers, present, extra)
                cors = policy.cors
                if cors is not None and ACAO not in present and PREFLIGHT_STATE_KEY not in state:
                    cors.add_response_headers(origin, scope, headers)
                headers.append(request_id_header)
                message["headers"] = headers
                if compress and policy.compress:
                    add_vary(headers, b"Accept-Encoding")
                    if encoding is not None:
                        # Holds the start until the first body message (core/web/compression.py).
                        compression = ResponseCompression(send, encoding, message)
                        return
            await send(message)

        in_flight = self.metrics.http_requests_in_flight
        in_flight.inc()
        started = time.perf_counter()
        target = self.app
        if self.direct:
            target = self.direct.get((scope["method"], get_route_path(scope)), target)
        try:
            await target(scope, receive, send_at_the_edge)
        finally:
            seconds = time.perf_counter() - started
            in_flight.dec()
            if report_token is not None:
                reset_report(report_token)
            route = _route_template(scope)
            self.metrics.observe_request(scope["method"], route, status, seconds)
            if _access_log_level.isEnabledFor(logging.INFO):
                self._log(scope, route, status, seconds)

    @staticmethod
    def _log(scope: Scope, route: str, status: int, seconds: float) -> None:
        principal = scope["state"].get("principal")
        access_logger.info(
            "request",
            method=scope["method"],
            route=route,
            status=status,
            latency_ms=round(seconds * 1000, 2),
            client=scope_client_address(scope),
            principal_kind=principal.kind if principal is not None else None,
            principal_id=str(principal.id) if principal is not None else None,
        )
