"""HTTP hardening: the client's real address behind proxies, security headers, request body limits.

Every class here is a pure ASGI middleware; install_middleware (core/web/middleware.py) orders them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pentad.core.errors import problem_response
from pentad.core.policy import CONTENT_SECURITY_POLICY as CONTENT_SECURITY_POLICY  # its old home
from pentad.core.policy import DEFAULT_SECURITY_HEADERS, ResolvedPolicy, RoutePolicies

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_FORWARDED_SCHEMES = {"http", "https"}
_WEBSOCKET_SCHEMES = {"http": "ws", "https": "wss"}


def client_address(connection: HTTPConnection) -> str:
    """The client's address; X-Forwarded-For is believed only from configured trusted proxies."""
    return scope_client_address(connection.scope)


def scope_client_address(scope: Scope) -> str:
    """client_address() for ASGI code that holds a scope rather than a request."""
    address = scope.get("state", {}).get("client_address")
    if address is not None:
        return str(address)
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _parse_networks(items: Iterable[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in items)


def _parse_address(text: str) -> IPAddress | None:
    """An address from a forwarding header: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:80`."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; compare them as the IPv4 they are.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _header_values(scope: Scope, name: bytes) -> list[str]:
    """Comma-separated values of every `name` header, in order of arrival."""
    values: list[str] = []
    for key, value in scope["headers"]:
        if key.lower() == name:
            values.extend(value.decode("latin-1").split(","))
    return values


class ClientAddressMiddleware:
    """Works out once per request who the client is and which scheme it used.

    Forwarding headers are believed only when the TCP peer is a trusted proxy. X-Forwarded-For is walked
    from the right, because each proxy appends the address it saw: the first address that is not a trusted
    proxy is the client, and everything to its left could have been written by the client itself.
    Results go to `scope["state"]["client_address"]` and `scope["state"]["scheme"]`.
    """

    def __init__(self, app: ASGIApp, *, trusted_proxies: Iterable[str]) -> None:
        self.app = app
        self.trusted_proxies = _parse_networks(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            self.resolve(scope)
        await self.app(scope, receive, send)

    def resolve(self, scope: Scope) -> None:
        """Set the client address and scheme of an HTTP or WebSocket scope (core/web/middleware.py's
        EdgeMiddleware calls this instead of running the middleware as a layer of its own)."""
        state = scope.setdefault("state", {})
        client = scope.get("client")
        address = str(client[0]) if client else "unknown"
        scheme = scope.get("scheme", "http")
        if self.trusted_proxies:
            peer = _parse_address(address)
            if peer is not None and self._is_trusted(peer):
                address = self._forwarded_client(scope, peer)
                scheme = self._forwarded_scheme(scope) or scheme
        state["client_address"] = address
        state["scheme"] = scheme

    def _is_trusted(self, address: IPAddress) -> bool:
        return any(address in network for network in self.trusted_proxies)

    def _forwarded_client(self, scope: Scope, peer: IPAddress) -> str:
        client = peer
        for hop in reversed(_header_values(scope, b"x-forwarded-for")):
            address = _parse_address(hop)
            if address is None:
                break
            client = address
            if not self._is_trusted(address):
                break
        return str(client)

    def _forwarded_scheme(self, scope: Scope) -> str | None:
        values = _header_values(scope, b"x-forwarded-proto")
        if not values:
            return None
        # The nearest proxy wrote the last value; anything before it may come from the client.
        scheme = values[-1].strip().lower()
        if scheme not in _FORWARDED_SCHEMES:
            return None
        return _WEBSOCKET_SCHEMES[scheme] if scope["type"] == "websocket" else scheme


_NO_STORE = (b"cache-control", b"no-store")


class SecurityHeadersMiddleware:
    """Adds browser hardening headers to every HTTP response that does not set them itself.

    The headers are the route's (its declared policy's CSP directives and Permissions-Policy features,
    core/policy.py), or the core's strict ones for a request no route took. A route may also send its own
    Content-Security-Policy (or any other of these headers) in the response. Strict-Transport-Security is
    sent only when the client reached us over HTTPS, directly or through a trusted proxy
    (ClientAddressMiddleware must run outside this one).
    """

    def __init__(self, app: ASGIApp, *, hsts_max_age: int, policies: RoutePolicies | None = None) -> None:
        self.app = app
        self.policies = policies
        self.hsts_header = (b"strict-transport-security", f"max-age={hsts_max_age}".encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.request_headers(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                existing = list(message.get("headers", ()))
                self.add(scope, existing, {name.lower() for name, _ in existing}, extra)
                message["headers"] = existing
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def request_headers(self, scope: Scope) -> tuple[tuple[bytes, bytes], ...]:
        """What the request itself asks for, known before the app runs: HSTS over HTTPS, no-store for the
        API."""
        https = scope.get("state", {}).get("scheme", scope.get("scheme")) == "https"
        # API answers carry tokens, secrets and private data: no cache keeps them unless a route says
        # otherwise (signed file downloads do).
        api = scope["path"].startswith("/api/")
        if https:
            return (self.hsts_header, _NO_STORE) if api else (self.hsts_header,)
        return (_NO_STORE,) if api else ()

    def add(
        self,
        scope: Scope,
        headers: list[tuple[bytes, bytes]],
        present: set[bytes],
        extra: tuple[tuple[bytes, bytes], ...],
    ) -> None:
        """Append to a response's `headers` the hardening ones whose (lower-case) name is not `present`.
        Called at the response's start: by now the router has picked the route, so its policy is known."""
        policies = self.policies
        route_headers = (
            DEFAULT_SECURITY_HEADERS if policies is None else policies.for_scope(scope).security_headers
        )
        headers.extend(header for header in (*route_headers, *extra) if header[0] not in present)

    @staticmethod
    def add_for(
        policy: ResolvedPolicy,
        headers: list[tuple[bytes, bytes]],
        present: set[bytes],
        extra: tuple[tuple[bytes, bytes], ...],
    ) -> None:
        """add() for a caller that has looked the route's policy up already (the edge)."""
        headers.extend(header for header in (*policy.security_headers, *extra) if header[0] not in present)


class _BodyTooLarge(HTTPException):
    """Raised from `receive` so that FastAPI passes it through to the problem+json error handler."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than the limit of {limit} bytes.")


class BodySizeLimitMiddleware:
    """Refuses request bodies larger than the route's limit with 413 `payload_too_large`.

    The limit is `max_body_bytes` unless the route's policy (core/policy.py) declares another, as upload
    routes do; the route itself enforces its own, usually smaller, limit while it streams the body to
    storage. A declared Content-Length over what any route allows is refused before the app runs. Otherwise
    the route's limit is applied when it first reads the body (the router has picked the route by then,
    and FastAPI reads it before any dependency runs): a declared Content-Length over it is refused at
    once; a body without one (chunked or streamed) is counted as it arrives, and the app's next `receive`
    fails once the count passes the limit, so nothing larger than the limit is ever buffered.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, policies: RoutePolicies | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.policies = policies
        self.largest_body_bytes = max_body_bytes if policies is None else policies.largest_body_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.largest_body_bytes:
            await self._refuse(scope, receive, send, _BodyTooLarge(self.largest_body_bytes))
            return
        limit: int | None = None
        received = 0
        response_started = False

        async def receive_within_limit() -> Message:
            nonlocal received, limit
            if limit is None:
                # The first read comes from the route: its policy is known by now.
                policies = self.policies
                limit = self.max_body_bytes if policies is None else policies.for_scope(scope).body_limit
                if declared is not None and declared > limit:
                    raise _BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge(limit)
            return message

        async def send_tracking_start(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, receive_within_limit, send_tracking_start)
        except _BodyTooLarge as exc:
            if response_started:
                raise
            await self._refuse(scope, receive, send, exc)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, exc: _BodyTooLarge) -> None:
        response = problem_response(
            413,
            "payload_too_large",
            exc.detail,
            request_id=scope.get("state", {}).get("request_id"),
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
