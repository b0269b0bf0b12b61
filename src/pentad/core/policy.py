"""Route policy: what a route declares about itself, next to its definition.

A route is private (it needs credentials) and gets the platform's defaults unless it says otherwise:

    @router.post("/collect")
    @route_policy(public="trackers post anonymously", rate_limit=RateLimitClass("ingest", "6000/minute"))
    async def collect(...): ...

    @router.get("/watch/{stream_id}")
    @route_policy(csp={"media-src": "'self' blob:", "worker-src": "'self' blob:", "frame-ancestors": "*"})
    async def player(...): ...

`public` says why anyone may call the route (the route-table test lists every declared one for review);
`rate_limit` names the class whose per-address counter the route spends (UNLIMITED for none; a WebSocket
route spends it once per handshake), its limit
overridable by PENTAD_RATELIMIT__CLASSES; `body_limit` is "upload" (PENTAD_STORAGE__MAX_OBJECT_BYTES) or
a byte count; `csp` replaces whole Content-Security-Policy directives and `permissions` features of the
Permissions-Policy; `cors` a CorsPolicy (core/cors.py) replacing PENTAD_SECURITY__CORS_ORIGINS for the route
(the gate answers its preflights); `compress=False` opts out of response compression. An app may give
every route of its routers and pages a default (`AppSpec.route_policy`); a route's own declaration wins
field by field (headers merge).

Who may call a private route is not a policy field: it is the route's Authenticator dependency
(core/auth/dependencies.py), a RouteGuard that `unguarded_operations` finds in the dependency tree. A
WebSocket route is not in the OpenAPI document, so it is checked at build: one neither public nor guarded
(`Depends(require(...).socket)`) stops the app from starting.

At build, `install_route_policies` resolves every route once into a RoutePolicies table and wraps each
route's `handle`: when the router picks the route, the route is noted in `scope["state"]`, and the
middlewares look its policy up in their app's table (security headers at the response's start, the body
limit at the first read, the rate limit through the gate RateLimitMiddleware registers). No path is
matched twice, and a request no route takes (404) gets the defaults.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeVar

import structlog
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from limits import parse
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

from pentad.core.config import Settings
from pentad.core.cors import CorsPolicy, ResolvedCors, global_cors

logger = structlog.get_logger("pentad.policy")

CSP_DIRECTIVES: Final = (
    ("default-src", "'self'"),
    ("script-src", "'self'"),
    ("style-src", "'self'"),
    ("img-src", "'self' data:"),
    ("connect-src", "'self'"),
    ("frame-ancestors", "'none'"),
    ("base-uri", "'none'"),
    ("form-action", "'self'"),
    ("object-src", "'none'"),
)
PERMISSIONS_POLICY: Final = (("camera", "()"), ("microphone", "()"), ("geolocation", "()"))
FIXED_HEADERS: Final = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
ROUTE_STATE_KEY: Final = "pentad.route"
RATE_GATE_STATE_KEY: Final = "pentad.rate_gate"
ENDPOINT_ATTRIBUTE: Final = "__pentad_route_policy__"
POLICIES_STATE_KEY: Final = "pentad.policies"
PREFLIGHT_STATE_KEY: Final = "pentad.preflight"
GLOBAL_CORS_METHODS: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
GLOBAL_CORS_REQUEST_HEADERS: Final = ("Authorization", "Content-Type", "X-CSRF-Token", "X-Request-ID")


@dataclass(frozen=True, slots=True)
class RateLimitClass:
    """A named per-address counter; PENTAD_RATELIMIT__CLASSES may set a limit other than `limit`."""

    name: str
    limit: str

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name) or self.name == DEFAULT_RATE_LIMIT_CLASS:
            raise ValueError(f"a rate-limit class has a lower-case name, not {DEFAULT_RATE_LIMIT_CLASS!r}")
        if self.name != "unlimited":
            parse(self.limit)


DEFAULT_RATE_LIMIT_CLASS: Final = "address"
"""The class of every route that names none; its limit is PENTAD_RATELIMIT__PER_ADDRESS."""

UNLIMITED: Final = RateLimitClass("unlimited", "")
"""No rate limit at all: health probes, static files, callbacks from our own nginx."""

BodyLimit = Literal["upload"] | int


@dataclass(frozen=True)
class RoutePolicy:
    """What one route (or, as AppSpec.route_policy, every route of an app) declares; None inherits."""

    public: str | None = None
    """Why anyone may call this route without credentials; None: it needs them."""
    rate_limit: RateLimitClass | None = None
    body_limit: BodyLimit | None = None
    csp: Mapping[str, str] = field(default_factory=dict)
    """Content-Security-Policy directives to set, e.g. {"media-src": "'self' blob:"}."""
    permissions: Mapping[str, str] = field(default_factory=dict)
    """Permissions-Policy features to set, e.g. {"camera": "(self)"}."""
    cors: CorsPolicy | None = None
    """This route's own CORS (core/cors.py) instead of PENTAD_SECURITY__CORS_ORIGINS."""
    compress: bool | None = None
    """False: never compress this route's responses (core/web/compression.py); None/True: as usual."""
    direct: bool = False
    """Served from the edge, past the transaction, router and dependency layers (core/web/direct.py): for a
    hot anonymous endpoint that takes only the Request. Declared per route; an app default never sets it."""

    def __post_init__(self) -> None:
        if self.public is not None and not self.public.strip():
            raise ValueError("a public route says why it is public")
        if isinstance(self.body_limit, int) and self.body_limit < 0:
            raise ValueError("body_limit must not be negative")

    def over(self, base: RoutePolicy) -> RoutePolicy:
        """This policy with `base` filling what it leaves open."""
        return RoutePolicy(
            public=self.public if self.public is not None else base.public,
            rate_limit=self.rate_limit if self.rate_limit is not None else base.rate_limit,
            body_limit=self.body_limit if self.body_limit is not None else base.body_limit,
            csp={**base.csp, **self.csp},
            permissions={**base.permissions, **self.permissions},
            cors=self.cors if self.cors is not None else base.cors,
            compress=self.compress if self.compress is not None else base.compress,
            direct=self.direct,
        )


Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def route_policy(
    *,
    public: str | None = None,
    rate_limit: RateLimitClass | None = None,
    body_limit: BodyLimit | None = None,
    csp: Mapping[str, str] | None = None,
    permissions: Mapping[str, str] | None = None,
    cors: CorsPolicy | None = None,
    compress: bool | None = None,
    direct: bool = False,
) -> Callable[[Endpoint], Endpoint]:
    """Declare the policy of the endpoint below it (put it under the `@router.<method>` line)."""
    policy = RoutePolicy(
        public, rate_limit, body_limit, dict(csp or {}), dict(permissions or {}), cors, compress, direct
    )

    def declare(endpoint: Endpoint) -> Endpoint:
        setattr(endpoint, ENDPOINT_ATTRIBUTE, policy)
        return endpoint

    return declare


def declared_policy(endpoint: Callable[..., Any]) -> RoutePolicy | None:
    policy = getattr(endpoint, ENDPOINT_ATTRIBUTE, None)
    return policy if isinstance(policy, RoutePolicy) else None


@dataclass(frozen=True, slots=True)
class ResolvedPolicy:
    """A route's policy with the settings applied: what the middlewares act on, computed once per route."""

    public: str | None
    rate_limit: str | None
    """The limit ("600/minute"), None when the route is unlimited."""
    rate_key: str
    body_limit: int
    security_headers: tuple[tuple[bytes, bytes], ...]
    cors: ResolvedCors | None
    """The route's CORS, or the platform's when it declares none; None: no cross-origin access."""
    compress: bool


def security_headers(
    csp: Mapping[str, str] | None = None, permissions: Mapping[str, str] | None = None
) -> tuple[tuple[bytes, bytes], ...]:
    """The hardening headers with the given directives and features replacing the core's."""
    directives = {**dict(CSP_DIRECTIVES), **(csp or {})}
    features = {**dict(PERMISSIONS_POLICY), **(permissions or {})}
    content_security_policy = "; ".join(f"{name} {value}".strip() for name, value in directives.items())
    headers = [(b"content-security-policy", content_security_policy.encode())]
    # CSP frame-ancestors supersedes X-Frame-Options; DENY would still stop a frame in old browsers.
    if directives["frame-ancestors"] == "'none'":
        headers.append((b"x-frame-options", b"DENY"))
    headers.extend(FIXED_HEADERS)
    permissions_policy = ", ".join(f"{name}={value}" for name, value in features.items())
    headers.append((b"permissions-policy", permissions_policy.encode()))
    return tuple(headers)


DEFAULT_SECURITY_HEADERS: Final = security_headers()
CONTENT_SECURITY_POLICY: Final = DEFAULT_SECURITY_HEADERS[0][1].decode()


def resolve(policy: RoutePolicy, settings: Settings) -> ResolvedPolicy:
    rate_class = policy.rate_limit
    if rate_class == UNLIMITED:
        rate_limit, rate_key = None, UNLIMITED.name
    elif rate_class is None:
        rate_limit, rate_key = settings.ratelimit.per_address, DEFAULT_RATE_LIMIT_CLASS
    else:
        rate_limit = settings.ratelimit.classes.get(rate_class.name, rate_class.limit)
        rate_key = rate_class.name
    body_limit = policy.body_limit
    if body_limit is None:
        body_bytes = settings.security.max_body_bytes
    elif body_limit == "upload":
        body_bytes = max(settings.storage.max_object_bytes, settings.security.max_body_bytes)
    else:
        body_bytes = body_limit
    cors = policy.cors or global_cors(
        settings.security.cors_origins, GLOBAL_CORS_METHODS, GLOBAL_CORS_REQUEST_HEADERS
    )
    return ResolvedPolicy(
        public=policy.public,
        rate_limit=rate_limit,
        rate_key=rate_key,
        body_limit=body_bytes,
        security_headers=security_headers(policy.csp, policy.permissions),
        cors=ResolvedCors(cors) if cors is not None else None,
        compress=policy.compress is not False,
    )


RateGate = Callable[[Scope, Receive, Send], Awaitable[bool]]
"""Registered in scope["state"] by RateLimitMiddleware: spends the route's limit, answers 429 itself and
returns False when the request must not go on."""


class _RouteGate:
    """Replaces a route's `handle` (or a router's 404 default), once per route object however many apps
    share it: notes which route the router picked, then passes the request through the rate gate. A
    WebSocket route whose client left ends quietly."""

    __slots__ = ("inner", "route_id")

    def __init__(self, inner: ASGIApp, route_id: int | None) -> None:
        self.inner = inner
        self.route_id = route_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.setdefault("state", {})
        state[ROUTE_STATE_KEY] = self.route_id
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            # A CORS preflight is answered here, before the rate limit and the route's authentication.
            policies: RoutePolicies | None = state.get(POLICIES_STATE_KEY)
            if policies is not None and await policies.answer_preflight(scope, send):
                return
        gate: RateGate | None = state.get(RATE_GATE_STATE_KEY)
        if gate is not None and not await gate(scope, receive, send):
            return
        if scope["type"] != "websocket":
            await self.inner(scope, receive, send)
            return
        try:
            await self.inner(scope, receive, send)
        except WebSocketDisconnect:
            # The client left (also while a refusal was being sent to it): nothing failed on our side, and
            # an anonymous client must not be able to fill the error log by hanging up.
            return


@dataclass(frozen=True, slots=True)
class DeclaredRoute:
    path: str
    methods: frozenset[str]
    policy: RoutePolicy


class RoutePolicies:
    """Every route's declared policy and what it resolved to, as installed on one app."""

    def __init__(self, default: ResolvedPolicy) -> None:
        self.default = default
        self.routes: list[DeclaredRoute] = []
        self._resolved: dict[int | None, ResolvedPolicy] = {}
        # Routes sharing a path (GET and POST /items as two routes): the router hands a preflight to the
        # first; its CORS answer is that of the one serving the method asked for.
        self._by_path: dict[str, dict[str, ResolvedPolicy]] = {}
        self._siblings: dict[int, dict[str, ResolvedPolicy]] = {}

    @property
    def largest_body_limit(self) -> int:
        """The largest body any route accepts."""
        return max([self.default.body_limit, *(p.body_limit for p in self._resolved.values())])

    def add(self, route: BaseRoute, declared: DeclaredRoute, resolved: ResolvedPolicy) -> None:
        self.routes.append(declared)
        if resolved is not self.default:
            self._resolved[id(route)] = resolved
        if isinstance(route, Route):
            siblings = self._by_path.setdefault(declared.path, {})
            for method in declared.methods:
                siblings.setdefault(method, resolved)
            self._siblings[id(route)] = siblings

    async def answer_preflight(self, scope: Scope, send: Send) -> bool:
        """Answer a CORS preflight for the route the router picked (204, see core/cors.py); False when the
        request is no preflight, the route serves OPTIONS itself, or no CORS applies (the route answers)."""
        origin = method = requested = None
        for name, value in scope["headers"]:
            name = name.lower()
            if name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"access-control-request-method":
                method = value.decode("latin-1").strip()
            elif name == b"access-control-request-headers":
                requested = value.decode("latin-1")
        if origin is None or not method:
            return False
        route_id = scope["state"].get(ROUTE_STATE_KEY)
        siblings = self._siblings.get(route_id) if route_id is not None else None
        if siblings is not None and "OPTIONS" in siblings:
            return False
        resolved = siblings.get(method.upper()) if siblings is not None else None
        cors = (resolved or self.for_scope(scope)).cors
        if cors is None:
            return False
        headers = cors.preflight_headers(origin, method, requested, scope)
        scope["state"][PREFLIGHT_STATE_KEY] = True  # the edge adds no actual-response CORS headers
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return True

    def for_scope(self, scope: Scope) -> ResolvedPolicy:
        """The policy of the route the router picked; the default before routing and for no route."""
        return self._resolved.get(scope.get("state", {}).get(ROUTE_STATE_KEY), self.default)

    def public_operations(self) -> dict[tuple[str, str], str]:
        """(method, path) of every routed operation declared public, with its reason."""
        return {
            (method, route.path): route.policy.public
            for route in self.routes
            if route.policy.public is not None
            for method in sorted(route.methods)
            if method != "HEAD"
        }


def _gate(route: BaseRoute, route_id: int | None = None) -> None:
    if not isinstance(route.handle, _RouteGate):
        gate = _RouteGate(route.handle, id(route) if route_id is None else route_id)
        setattr(route, "handle", gate)  # noqa: B010  # a method to mypy


def install_route_policies(
    app: FastAPI,
    settings: Settings,
    *,
    app_defaults: Mapping[Callable[..., Any], RoutePolicy] | None = None,
    prefix_policies: Mapping[str, RoutePolicy] | None = None,
) -> RoutePolicies:
    """Resolve the policy of every route of `app` (included routers too) and gate each route's handle.

    app_defaults: an app's default policy per endpoint of its routers and pages; prefix_policies: the
    policy of mounts (static files) by path prefix. Covered: FastAPI routes wherever they are included,
    and the app's own top-level routes and mounts (a bare Starlette route inside an included router is
    copied by FastAPI at routing time, so it would keep the defaults; Pentad declares none).
    """
    app_defaults = app_defaults or {}
    prefix_policies = prefix_policies or {}
    base = RoutePolicy()
    policies = RoutePolicies(resolve(base, settings))
    for context in iter_route_contexts(app.router.routes):
        route = context.original_route
        path = context.path or ""
        if isinstance(route, Route | WebSocketRoute):
            policy = base
            for layer in (app_defaults.get(route.endpoint), declared_policy(route.endpoint)):
                if layer is not None:
                    policy = layer.over(policy)
            if isinstance(route, WebSocketRoute) and policy.public is None and not _guarded_socket(route):
                raise TypeError(
                    f"the WebSocket route {path} needs credentials: depend on an Authenticator's "
                    "`.socket` (core/auth/dependencies.py) or declare it public with @route_policy"
                )
        elif isinstance(route, Mount):
            matching = [p for prefix, p in prefix_policies.items() if (path + "/").startswith(prefix)]
            policy = matching[0] if matching else base
        else:
            continue
        resolved = policies.default if policy == base else resolve(policy, settings)
        policies.add(route, DeclaredRoute(path, frozenset(context.methods or ()), policy), resolved)
        _gate(route)
        if isinstance(route, WebSocketRoute):
            # FastAPI runs an included router's WebSocket route through its own copy of it.
            effective = getattr(context, "_effective_route", route)
            if isinstance(effective, BaseRoute) and effective is not route:
                _gate(effective, id(route))
    if not isinstance(app.router.default, _RouteGate):
        app.router.default = _RouteGate(app.router.default, None)
    _warn_unknown_classes(settings, (route.policy.rate_limit for route in policies.routes))
    return policies


def _warn_unknown_classes(settings: Settings, classes: Iterable[RateLimitClass | None]) -> None:
    known = {c.name for c in classes if c is not None}
    for name in settings.ratelimit.classes:
        if name not in known:
            logger.warning("ratelimit_class_unused", rate_limit_class=name, declared_by_no_route=True)


class RouteGuard:
    """Base of the dependencies that authenticate a request (auth's Authenticator)."""


def _has_guard(dependant: Dependant) -> bool:
    return any(isinstance(d.call, RouteGuard) or _has_guard(d) for d in dependant.dependencies)


def _guarded_socket(route: WebSocketRoute) -> bool:
    return isinstance(route, APIWebSocketRoute) and _has_guard(route.dependant)


def unguarded_operations(app: FastAPI, policies: RoutePolicies) -> list[tuple[str, str]]:
    """API operations that are neither declared public nor guarded by an authenticator."""
    public = policies.public_operations()
    unguarded = []
    for context in iter_route_contexts(app.router.routes):
        dependant = getattr(context, "dependant", None)
        if not isinstance(context.original_route, APIRoute) or not context.include_in_schema:
            continue
        if dependant is None or not _has_guard(dependant):
            path = context.path or ""
            unguarded += [
                (method, path) for method in sorted(context.methods or ()) if (method, path) not in public
            ]
    return unguarded
