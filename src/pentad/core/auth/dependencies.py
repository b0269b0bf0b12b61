"""Request-level authentication and authorisation: who is calling, and may they do this.

Every non-public route declares `Depends(require(PERMISSION))`, `Depends(require())` (any principal) or
`Depends(signed_in_user)`; tests/core/test_route_table.py calls every operation to prove none forgot.
"""

from __future__ import annotations

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.core.audit import Actor
from pentad.core.auth.exceptions import InvalidToken
from pentad.core.auth.permissions import Permission
from pentad.core.auth.principal import Principal
from pentad.core.auth.service import AuthService, csrf_matches
from pentad.core.errors import NotAuthenticated, PermissionDenied
from pentad.core.platform import get_platform
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


class Requirement:
    """A dependency that demands an authenticated principal holding every listed permission."""

    def __init__(self, *permissions: Permission, users_only: bool = False) -> None:
        self.permissions = permissions
        self.users_only = users_only

    async def __call__(self, request: Request) -> Principal:
        principal = await resolve_principal(request)
        if principal is None:
            raise NotAuthenticated()
        if self.users_only and not principal.is_user:
            raise PermissionDenied("This needs a user account, not a service token.")
        missing = [p for p in self.permissions if not principal.has(p)]
        if missing:
            raise PermissionDenied(f"You need the permission {missing[0].key!r} for this.")
        return principal

    def __repr__(self) -> str:
        return f"Requirement({', '.join(p.key for p in self.permissions) or 'authenticated'})"


def require(*permissions: Permission) -> Requirement:
    return Requirement(*permissions)


def require_user(*permissions: Permission) -> Requirement:
    """A user (never a service token) holding every listed permission."""
    return Requirement(*permissions, users_only=True)


signed_in_user = Requirement(users_only=True)
"""Any signed-in user (not a service token)."""
