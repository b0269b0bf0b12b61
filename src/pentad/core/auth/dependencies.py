"""Request-level authentication and authorisation: who is calling, and may they do this.

Every route either declares itself public (`@route_policy(public=...)`, core/policy.py) or depends on an
Authenticator: `Depends(require(PERMISSION))`, `Depends(require())` (any principal),
`Depends(signed_in_user)`, `Depends(require_service(...))` or an Authenticator of its own naming the
principal kinds and credentials it takes (like Polar's). tests/core/test_route_table.py finds the guard of
every operation and calls each one to prove none forgot.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Final

import orjson
from fastapi import Depends, Request, WebSocket, WebSocketException
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocketDisconnect

from pentad.core.audit import Actor
from pentad.core.auth.exceptions import InvalidToken
from pentad.core.auth.permissions import Permission
from pentad.core.auth.principal import Principal
from pentad.core.auth.service import AuthService, csrf_matches
from pentad.core.errors import NotAuthenticated, PermissionDenied, TooManyRequests
from pentad.core.platform import get_platform
from pentad.core.policy import RouteGuard
from pentad.core.realtime.live import AppSocket, LiveCredentials, SocketCloseCode
from pentad.core.security import client_address

SESSION_COOKIE = "pentad_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_UNRESOLVED = object()


def request_session(request: Request) -> AsyncSession:
    """The request's session; TransactionMiddleware commits it before the response starts."""
    session: AsyncSession = request.state.transaction.session
    return session


# Dependencies are `async def` on purpose: FastAPI runs plain `def` dependencies in its thread pool, a
# thread hop per dependency per request.
async def db_session(request: Request) -> AsyncSession:
    return request_session(request)


async def auth_service(request: Request, session: AsyncSession = Depends(db_session)) -> AuthService:
    return AuthService(session, get_platform(request))


def request_actor(request: Request, principal: Principal | None = None) -> Actor:
    address = client_address(request)
    request_id = getattr(request.state, "request_id", None)
    if principal is None:
        return Actor("anonymous", ip_address=address, request_id=request_id)
    return principal.actor(address, request_id)


async def resolve_principal(request: Request, *, check_csrf_header: bool = True) -> Principal | None:
    """Authenticate by Bearer header (access token, API key, service token) or session cookie.

    A bad Bearer credential is a 401; a bad or expired cookie counts as no credential. Cookie-authenticated
    unsafe requests must carry the session's CSRF token.
    """
    cached = getattr(request.state, "principal", _UNRESOLVED)
    if cached is not _UNRESOLVED:
        return cached  # type: ignore[return-value]
    platform = get_platform(request)
    principal: Principal | None = None
    header = request.headers.get("authorization")
    if header:
        scheme, _, credential = header.partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise NotAuthenticated(
                "Send credentials as `Authorization: Bearer <token>`.", code="bad_authorization"
            )
        # A cached credential needs no database session: a request that needs none otherwise opens none.
        principal = platform.principals.get(credential.strip())
        if principal is None:
            service = AuthService(request_session(request), platform)
            principal = await service.authenticate_bearer(credential.strip())
    elif cookie := request.cookies.get(SESSION_COOKIE):
        principal = platform.principals.get(cookie)
        if principal is None:
            try:
                principal = await AuthService(request_session(request), platform).authenticate_cookie(cookie)
            except InvalidToken:
                principal = None
        if principal is not None and check_csrf_header and request.method not in SAFE_METHODS:
            assert principal.session_id is not None
            if not csrf_matches(
                platform.signing_secret, principal.session_id, request.headers.get(CSRF_HEADER)
            ):
                raise PermissionDenied("Missing or wrong CSRF token.", code="csrf_failed")
    if principal is not None:
        await platform.limiter.enforce(
            platform.settings.ratelimit.per_principal, "principal", str(principal.id)
        )
    request.state.principal = principal
    return principal


class Authenticator(RouteGuard):
    """A dependency that demands an authenticated principal of an allowed kind, through an allowed
    credential, holding every listed permission (an API key's or service token's scopes narrow what it
    holds).

    principals: the principal kinds allowed ("user", "service", an app's own such as "chat_tenant");
    None allows every kind. credentials: the credentials allowed (Principal.via: "session",
    "access_token", "api_key", "service_token", an app scheme's such as "chat_server_key"); None allows
    every credential. A principal of another kind or credential is refused 403 `credential_refused`.
    """

    def __init__(
        self,
        *permissions: Permission,
        principals: Iterable[str] | None = None,
        credentials: Iterable[str] | None = None,
        refusal: str | None = None,
        refusal_code: str = "credential_refused",
    ) -> None:
        self.permissions = permissions
        self.principals = frozenset(principals) if principals is not None else None
        self.credentials = frozenset(credentials) if credentials is not None else None
        self.refusal = refusal or self._describe_allowed()
        self.refusal_code = refusal_code

    def _describe_allowed(self) -> str:
        allowed = sorted(self.credentials or self.principals or ())
        return f"This route takes only: {', '.join(allowed)}."

    async def __call__(self, request: Request) -> Principal:
        principal = await resolve_principal(request)
        if principal is None:
            raise NotAuthenticated()
        self.check(principal)
        return principal

    def check(self, principal: Principal) -> None:
        """Raise PermissionDenied unless this route takes `principal` (kind, credential, permissions)."""
        if (self.principals is not None and principal.kind not in self.principals) or (
            self.credentials is not None and principal.via not in self.credentials
        ):
            raise PermissionDenied(self.refusal, code=self.refusal_code)
        missing = [p for p in self.permissions if not principal.has(p)]
        if missing:
            raise PermissionDenied(f"You need the permission {missing[0].key!r} for this.")

    @property
    def socket(self) -> SocketAuthenticator:
        """The same rule for an app's WebSocket route: `Depends(require(...).socket)` gives an AppSocket."""
        return SocketAuthenticator(self)

    @property
    def live(self) -> LiveAuthenticator:
        """The same rule for a streaming HTTP route: `Depends(require(...).live)` gives LiveCredentials,
        whose `stream(body)` ends the response when the credentials end."""
        return LiveAuthenticator(self)

    def __repr__(self) -> str:
        return f"Authenticator({', '.join(p.key for p in self.permissions) or 'authenticated'})"


USERS: Final = frozenset({"user"})
SERVICES: Final = frozenset({"service"})
INTERACTIVE: Final = frozenset({"session", "access_token"})
"""Credentials a person holds in hand: a browser session or a login's access token."""


def require(*permissions: Permission) -> Authenticator:
    """Any principal holding every listed permission."""
    return Authenticator(*permissions)


def require_user(*permissions: Permission) -> Authenticator:
    """A user (never a service token) holding every listed permission."""
    return Authenticator(
        *permissions,
        principals=USERS,
        refusal="This needs a user account, not a service token.",
        refusal_code="permission_denied",
    )


def require_service(*permissions: Permission) -> Authenticator:
    """A service token holding every listed permission: machine-to-machine routes."""
    return Authenticator(*permissions, principals=SERVICES, refusal="This route takes a service token.")


signed_in_user = require_user()
"""Any signed-in user (not a service token)."""


BEARER_SUBPROTOCOL: Final = "pentad.bearer"
"""Browsers cannot set headers on a WebSocket: they offer the subprotocols ["pentad.bearer", <token>]."""


def _bearer(connection: HTTPConnection) -> str | None:
    header = connection.headers.get("authorization")
    if not header:
        return None
    scheme, _, credential = header.partition(" ")
    return credential.strip() if scheme.lower() == "bearer" and credential.strip() else ""


class SocketAuthenticator(RouteGuard):
    """An app's WebSocket route's guard (`Depends(require(...).socket)`, see Authenticator.socket).

    The token comes from `Authorization: Bearer`, else the subprotocols ["pentad.bearer", <token>] (the
    socket is accepted with "pentad.bearer"), else a first text frame `{"op": "auth", "token": ...}` within
    PENTAD_REALTIME__AUTH_TIMEOUT; never from the URL (logged everywhere) nor from the session cookie (a
    page of another site could open the socket with it). The socket is accepted, then closed with 4401 (no,
    bad or expired credentials), 4403 (the route does not take them) or 4429 (the principal's rate limit);
    while the handler runs the credentials are re-checked (core/realtime/live.py) and the socket closed
    with 4401 or 4403 when they end.
    """

    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator

    async def __call__(self, websocket: WebSocket) -> AsyncIterator[AppSocket]:
        platform = get_platform(websocket)
        token = _bearer(websocket)
        offered = websocket.scope.get("subprotocols") or []
        subprotocol = None
        if token is None and BEARER_SUBPROTOCOL in offered[:-1]:
            subprotocol = BEARER_SUBPROTOCOL
            token = offered[offered.index(BEARER_SUBPROTOCOL) + 1]
        await websocket.accept(subprotocol=subprotocol)
        if token is None:
            token = await _auth_frame(websocket, platform.settings.realtime.auth_timeout)
        principal = platform.principals.get(token) if token else None
        try:
            if principal is None:
                async with platform.database.transaction(writes=False) as session:
                    principal = await AuthService(session, platform).authenticate_bearer(token or "")
            self.authenticator.check(principal)
            await platform.limiter.enforce(
                platform.settings.ratelimit.per_principal, "principal", str(principal.id)
            )
        except InvalidToken:
            raise WebSocketException(SocketCloseCode.UNAUTHORIZED, "invalid credentials") from None
        except PermissionDenied as exc:
            raise WebSocketException(SocketCloseCode.FORBIDDEN, exc.message[:120]) from None
        except TooManyRequests:
            raise WebSocketException(SocketCloseCode.TOO_MANY_REQUESTS, "too many requests") from None
        live = LiveCredentials(platform, principal, token or "", self.authenticator.check)
        socket = AppSocket(websocket, live)
        with live.watching():
            yield socket

    def __repr__(self) -> str:
        return f"{self.authenticator!r}.socket"


async def _auth_frame(websocket: WebSocket, seconds: float) -> str:
    """The token of the first frame, or "" (refused as invalid) when it is missing, late or malformed."""
    try:
        async with asyncio.timeout(seconds):
            text = await websocket.receive_text()
        frame = orjson.loads(text)
    except (TimeoutError, orjson.JSONDecodeError, KeyError, WebSocketDisconnect):
        return ""
    token = frame.get("token") if isinstance(frame, dict) and frame.get("op") == "auth" else None
    return token if isinstance(token, str) else ""


class LiveAuthenticator(RouteGuard):
    """A streaming HTTP route's guard (`Depends(require(...).live)`, see Authenticator.live): the request
    is authenticated as by the Authenticator (Bearer header or session cookie, so EventSource works), and
    the answer is LiveCredentials to wrap the body in: `StreamingResponse(live.stream(body))`."""

    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator

    async def __call__(self, request: Request) -> LiveCredentials:
        principal = await self.authenticator(request)
        token = _bearer(request)
        cookie = token is None
        credential = request.cookies.get(SESSION_COOKIE, "") if cookie else token or ""
        return LiveCredentials(
            get_platform(request), principal, credential, self.authenticator.check, cookie=cookie
        )

    def __repr__(self) -> str:
        return f"{self.authenticator!r}.live"
