"""Cross-origin resource sharing, per route: what a route lets other origins do (`RoutePolicy.cors`).

A route that declares nothing gets the platform's CORS (PENTAD_SECURITY__CORS_ORIGINS, no credentials); one
that declares a CorsPolicy gets only its own (the platform's list does not apply to it):

    @router.post("/whep/{stream_id}")
    @route_policy(public="anyone may watch a public stream",
                  cors=CorsPolicy(origins="*", methods=("POST", "PATCH", "DELETE"),
                                  allow_headers=("Content-Type", "If-Match"),
                                  expose=("Location", "ETag", "Link", "Accept-Patch")))

The route gate (core/policy.py) answers a preflight (OPTIONS with Access-Control-Request-Method) for the
route at that path and the requested method before the rate limit, authentication or the route run: 204
with the CORS headers when the origin, the method and every requested header are allowed, otherwise 204
with none of them (the Fetch standard's way to refuse: the browser fails the request; no 4xx that a
cross-origin page could tell apart from other errors). The edge (core/web/middleware.py) adds
Access-Control-Allow-Origin, -Allow-Credentials and -Expose-Headers to actual responses from an allowed
origin, and `Vary: Origin` whenever the answer depends on the origin; a response that sets its own
Access-Control-Allow-Origin is left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from starlette.types import Scope

OriginCheck = Callable[[str, Scope], bool]
"""Decides per request whether an origin (`https://shop.example`) may read the route's responses."""

SAFELISTED_REQUEST_HEADERS: Final = frozenset(
    {"accept", "accept-language", "content-language", "content-type"}
)
ALWAYS_EXPOSED: Final = (
    "X-Request-ID",
    "Retry-After",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
)
"""Headers the core puts on every response that a cross-origin caller may read on any CORS route."""

ACAO: Final = b"access-control-allow-origin"
_VARY_ORIGIN: Final = (b"vary", b"Origin")
_VARY_PREFLIGHT: Final = (b"vary", b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers")


@dataclass(frozen=True)
class CorsPolicy:
    """Which other origins may call a route from a browser, and what they may send and read.

    origins: "*" (any, only without credentials), a tuple of origins (`https://app.example`, scheme and
    host and port, no path), or a callable (origin, scope) -> bool (e.g. a site registry lookup).
    credentials: the browser may send cookies/HTTP auth and read the answer (never with "*": the origin
    is echoed instead). methods: what a preflight may ask for. allow_headers: request headers beyond the
    CORS-safelisted ones (Content-Type is always allowed). expose: response headers the caller may read
    besides the safelisted ones and the core's own (X-Request-ID, Retry-After, RateLimit-*). max_age: how
    long a browser may cache the preflight, in seconds.
    """

    origins: Literal["*"] | tuple[str, ...] | OriginCheck = ()
    credentials: bool = False
    methods: tuple[str, ...] = ("GET", "HEAD", "POST")
    allow_headers: tuple[str, ...] = ()
    expose: tuple[str, ...] = ()
    max_age: int = 600

    def __post_init__(self) -> None:
        if self.origins == "*" and self.credentials:
            raise ValueError("a CORS policy with credentials names its origins (or checks them); not '*'")
        if isinstance(self.origins, str) and self.origins != "*":
            raise ValueError("CORS origins are '*', a tuple of origins or a callable")
        if isinstance(self.origins, tuple):
            for origin in self.origins:
                scheme, _, rest = origin.partition("://")
                if scheme not in ("http", "https") or not rest or "/" in rest or origin != origin.strip():
                    raise ValueError(f"a CORS origin is scheme://host[:port], not {origin!r}")
        if self.max_age < 0:
            raise ValueError("max_age must not be negative")


def global_cors(
    origins: list[str], methods: tuple[str, ...], allow_headers: tuple[str, ...]
) -> CorsPolicy | None:
    """The platform's CORS (PENTAD_SECURITY__CORS_ORIGINS) as a policy; None when no origin is listed."""
    if not origins:
        return None
    if "*" in origins:
        return CorsPolicy(origins="*", methods=methods, allow_headers=allow_headers)
    return CorsPolicy(
        origins=tuple(origin.strip().rstrip("/").lower() for origin in origins),
        methods=methods,
        allow_headers=allow_headers,
    )


def _joined(names: tuple[str, ...]) -> bytes:
    return ", ".join(dict.fromkeys(names)).encode("latin-1")


class ResolvedCors:
    """A CorsPolicy compiled once per route: what the route gate and the edge act on."""

    __slots__ = (
        "allow_headers",
        "allow_headers_value",
        "any_origin",
        "check",
        "credentials",
        "expose_value",
        "max_age_value",
        "methods",
        "methods_value",
        "origins",
    )

    def __init__(self, policy: CorsPolicy) -> None:
        origins = policy.origins
        self.any_origin = origins == "*"
        self.origins = (
            frozenset(origin.lower() for origin in origins) if isinstance(origins, tuple) else frozenset()
        )
        self.check: OriginCheck | None = origins if callable(origins) else None
        self.credentials = policy.credentials
        self.methods = frozenset(method.upper() for method in policy.methods)
        self.methods_value = _joined(tuple(method.upper() for method in policy.methods))
        self.allow_headers = (
            frozenset(name.lower() for name in policy.allow_headers) | SAFELISTED_REQUEST_HEADERS
        )
        self.allow_headers_value = _joined((*policy.allow_headers, "Content-Type"))
        self.expose_value = _joined((*ALWAYS_EXPOSED, *policy.expose))
        self.max_age_value = str(policy.max_age).encode()

    def allows(self, origin: str, scope: Scope) -> bool:
        if self.any_origin or origin in self.origins:
            return True
        check = self.check
        return check is not None and bool(check(origin, scope))

    def add_response_headers(
        self, origin: str | None, scope: Scope, headers: list[tuple[bytes, bytes]]
    ) -> None:
        """The CORS headers of an actual (not preflight) response to a request from `origin`."""
        if self.any_origin:
            if origin is not None:
                headers.append((ACAO, b"*"))
                headers.append((b"access-control-expose-headers", self.expose_value))
            return
        add_vary(headers, b"Origin")
        if origin is not None and self.allows(origin, scope):
            headers.append((ACAO, origin.encode("latin-1")))
            if self.credentials:
                headers.append((b"access-control-allow-credentials", b"true"))
            headers.append((b"access-control-expose-headers", self.expose_value))

    def preflight_headers(
        self, origin: str, method: str, requested: str | None, scope: Scope
    ) -> list[tuple[bytes, bytes]]:
        """The headers of the 204 answering a preflight: the CORS ones only when everything is allowed."""
        headers = [_VARY_PREFLIGHT]
        if not self.allows(origin, scope) or method.upper() not in self.methods:
            return headers
        if requested:
            asked = {name.strip().lower() for name in requested.split(",") if name.strip()}
            if not asked <= self.allow_headers:
                return headers
        allow_origin = b"*" if self.any_origin else origin.encode("latin-1")
        headers += [
            (ACAO, allow_origin),
            (b"access-control-allow-methods", self.methods_value),
            (b"access-control-allow-headers", self.allow_headers_value),
            (b"access-control-max-age", self.max_age_value),
        ]
        if self.credentials:
            headers.append((b"access-control-allow-credentials", b"true"))
        return headers


def add_vary(headers: list[tuple[bytes, bytes]], token: bytes) -> None:
    """Add `token` to the response's Vary header (one header, tokens comma-separated)."""
    for index, (name, value) in enumerate(headers):
        if name.lower() == b"vary":
            tokens = {item.strip().lower() for item in value.split(b",")}
            if token.lower() not in tokens and b"*" not in tokens:
                headers[index] = (name, value + b", " + token)
            return
    headers.append((b"vary", token))
