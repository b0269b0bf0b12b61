"""Thin routes of the accounts API: /api/auth, /api/me, /api/users, /api/service-tokens, /api/audit."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import AwareDatetime
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.core import audit
from pentad.core.auth.dependencies import (
    auth_service,
    db_session,
    request_actor,
    require,
    require_user,
    signed_in_user,
)
from pentad.core.auth.permissions import (
    ACCOUNT_SECURITY,
    API_KEYS_OWN,
    AUDIT_READ,
    SERVICE_TOKENS_MANAGE,
    USERS_MANAGE,
    USERS_READ,
)
from pentad.core.auth.principal import Principal
from pentad.core.auth.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
    AuditEventRead,
    AuditPage,
    GrantCreate,
    GrantRead,
    LoginRequest,
    Me,
    MfaChallenge,
    MfaRequest,
    PasswordChange,
    PasswordResetAccepted,
    PasswordResetConfirm,
    PasswordResetRequest,
    PermissionRead,
    RecoveryCodes,
    RefreshRequest,
    RolesRead,
    ServiceTokenCreate,
    ServiceTokenCreated,
    ServiceTokenRead,
    SessionRead,
    SessionToken,
    TokenResponse,
    TotpCode,
    TotpDisable,
    TotpSetupResponse,
    UserCreate,
    UserPage,
    UserRead,
    UserUpdate,
    Verified,
    VerifyRequest,
)
from pentad.core.auth.service import AuthService, TokenPair
from pentad.core.db.base import utcnow
from pentad.core.errors import problem_responses
from pentad.core.policy import route_policy

Service = Annotated[AuthService, Depends(auth_service)]
User = Annotated[Principal, Depends(signed_in_user)]
AccountSecurity = Annotated[Principal, Depends(require_user(ACCOUNT_SECURITY))]
"""Password, second factor and sessions: a signed-in person, or an API key whose scopes name
core.account.security; never a service token (docs/security.md)."""

PUBLIC_ERRORS = problem_responses(400, 401, 413, 422, 429)
PROTECTED_ERRORS = problem_responses(400, 401, 403, 404, 409, 413, 422, 429)

auth_router = APIRouter(prefix="/api/auth", tags=["auth"], responses=PUBLIC_ERRORS)
me_router = APIRouter(prefix="/api/me", tags=["account"], responses=PROTECTED_ERRORS)
users_router = APIRouter(prefix="/api/users", tags=["users"], responses=PROTECTED_ERRORS)
admin_router = APIRouter(prefix="/api", tags=["admin"], responses=PROTECTED_ERRORS)


def _token_response(pair: TokenPair) -> TokenResponse:
    now = utcnow()
    return TokenResponse(
        access_token=pair.access_token,
        expires_in=int((pair.access_expires_at - now).total_seconds()),
        refresh_token=pair.refresh_token,
        refresh_expires_in=int((pair.refresh_expires_at - now).total_seconds()),
    )


# ------------------------------------------------------------------- /api/auth


@auth_router.post(
    "/login",
    response_model=TokenResponse | MfaChallenge,
    summary="Log in with e-mail and password",
    description="Returns tokens, or an MFA challenge when two-factor authentication is on.",
)
@route_policy(public="the credentials are the body")
async def login(body: LoginRequest, request: Request, service: Service) -> TokenResponse | MfaChallenge:
    actor = request_actor(request)
    user = await service.check_password_login(body.email, body.password, actor)
    if user.totp_enabled:
        return MfaChallenge(mfa_token=service.issue_mfa_token(user))
    pair = await service.start_api_session(user, actor, request.headers.get("user-agent"), mfa=False)
    return _token_response(pair)


@auth_router.post("/mfa", response_model=TokenResponse, summary="Complete a login with a 2FA code")
@route_policy(public="the MFA token is the credential")
async def complete_mfa(body: MfaRequest, request: Request, service: Service) -> TokenResponse:
    actor = request_actor(request)
    user = await service.complete_mfa(body.mfa_token, body.code, actor)
    pair = await service.start_api_session(user, actor, request.headers.get("user-agent"), mfa=True)
    return _token_response(pair)


@auth_router.post(
    "/refresh",
    response_model=TokenResponse,
    summary="Exchange a refresh token for new tokens",
    description="Refresh tokens are single use. Presenting one twice revokes the whole session.",
)
@route_policy(public="the refresh token is the credential")
async def refresh(body: RefreshRequest, request: Request, service: Service) -> TokenResponse:
    return _token_response(await service.refresh(body.refresh_token, request_actor(request)))


@auth_router.post(
    "/session-token",
    response_model=SessionToken,
    summary="Exchange the browser session cookie for a short-lived access token",
    description="For the signed-in page's own scripts, e.g. to authenticate the realtime socket. Needs the "
    "session cookie and the page's X-CSRF-Token header; the token is revoked with the session.",
    responses=problem_responses(403),
)
async def session_token(service: Service, principal: User) -> SessionToken:
    token, expires = service.session_access_token(principal)
    return SessionToken(access_token=token, expires_in=int((expires - utcnow()).total_seconds()))


@auth_router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End the current session",
    responses=problem_responses(403),
)
async def logout(request: Request, service: Service, principal: User) -> Response:
    await service.logout(principal, request_actor(request, principal))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@auth_router.post(
    "/logout-all",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End every session of the current user",
    responses=problem_responses(403),
)
async def logout_all(request: Request, service: Service, principal: AccountSecurity) -> Response:
    await service.logout_everywhere(principal, request_actor(request, principal))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@auth_router.post(
    "/password-reset",
    response_model=PasswordResetAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    summary="E-mail a password reset link",
    description="Answers 202 whether or not the account exists, so it reveals nothing.",
)
@route_policy(public="answers the same for every address")
async def request_password_reset(
    body: PasswordResetRequest, request: Request, service: Service
) -> PasswordResetAccepted:
    await service.request_password_reset(body.email, request_actor(request))
    return PasswordResetAccepted()


@auth_router.post(
    "/password-reset/confirm", status_code=status.HTTP_204_NO_CONTENT, summary="Set a new password"
)
@route_policy(public="the reset token is the credential")
async def confirm_password_reset(body: PasswordResetConfirm, request: Request, service: Service) -> Response:
    await service.reset_password(body.token, body.new_password, request_actor(request))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --------------------------------------------------------------------- /api/me


@me_router.get("", response_model=Me, summary="Who am I")
async def read_me(principal: Annotated[Principal, Depends(require())]) -> Me:
    return Me(
        id=principal.id,
        kind=principal.kind,
        email=principal.label if principal.is_user else None,
        display_name=principal.display_name or principal.label,
        roles=sorted(principal.roles),
        permissions=sorted(principal.permissions),
        via=principal.via,
        two_factor_enabled=principal.two_factor_enabled,
    )


@me_router.post("/password", status_code=status.HTTP_204_NO_CONTENT, summary="Change my password")
async def change_password(
    body: PasswordChange, request: Request, service: Service, principal: AccountSecurity
) -> Response:
    await service.change_password(
        principal, body.current_password, body.new_password, request_actor(request, principal)
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@me_router.post(
    "/verify",
    response_model=Verified,
    summary="Confirm it is me (re-enter the password, and a code when 2FA is on)",
    description="Two-factor set-up and new API keys need a session that proved its password within "
    "`PENTAD_AUTH__REVERIFY_AFTER` seconds (sign-in counts); this renews the proof. Wrong passwords and "
    "codes count against the account's login budget and are audited. See docs/security.md.",
)
async def verify_me(
    body: VerifyRequest, request: Request, service: Service, principal: AccountSecurity
) -> Verified:
    verified = await service.reverify(principal, body.password, body.code, request_actor(request, principal))
    until = service.verified_until(verified)
    assert until is not None
    return Verified(verified_until=until)


@me_router.get("/sessions", response_model=list[SessionRead], summary="My active sessions")
async def list_my_sessions(service: Service, principal: AccountSecurity) -> list[SessionRead]:
    sessions = await service.list_sessions(principal.id)
    return [
        SessionRead.model_validate(s).model_copy(update={"current": s.id == principal.session_id})
        for s in sessions
    ]


@me_router.delete(
    "/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT, summary="End one of my sessions"
)
async def revoke_my_session(
    session_id: uuid.UUID, request: Request, service: Service, principal: AccountSecurity
) -> Response:
    await service.revoke_session(principal.id, session_id, request_actor(request, principal))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@me_router.post("/2fa/setup", response_model=TotpSetupResponse, summary="Start two-factor set-up")
async def begin_totp(service: Service, principal: AccountSecurity) -> TotpSetupResponse:
    setup = await service.begin_totp_setup(principal)
    return TotpSetupResponse(secret=setup.secret, otpauth_uri=setup.otpauth_uri, qr_svg=setup.qr_svg)


@me_router.post("/2fa/enable", response_model=RecoveryCodes, summary="Confirm two-factor set-up")
async def enable_totp(
    body: TotpCode, request: Request, service: Service, principal: AccountSecurity
) -> RecoveryCodes:
    codes = await service.enable_totp(principal, body.code, request_actor(request, principal))
    return RecoveryCodes(recovery_codes=codes)


@me_router.post("/2fa/disable", status_code=status.HTTP_204_NO_CONTENT, summary="Turn two-factor off")
async def disable_totp(
    body: TotpDisable, request: Request, service: Service, principal: AccountSecurity
) -> Response:
    await service.disable_totp(principal, body.password, body.code, request_actor(request, principal))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@me_router.post("/2fa/recovery-codes", response_model=RecoveryCodes, summary="Replace my recovery codes")
async def regenerate_codes(
    body: TotpCode, request: Request, service: Service, principal: AccountSecurity
) -> RecoveryCodes:
    codes = await service.regenerate_recovery_codes(principal, body.code, request_actor(request, principal))
    return RecoveryCodes(recovery_codes=codes)


ApiKeyOwner = Annotated[Principal, Depends(require(API_KEYS_OWN))]


@me_router.get("/api-keys", response_model=list[ApiKeyRead], summary="My API keys")
async def list_my_api_keys(service: Service, principal: ApiKeyOwner) -> list[ApiKeyRead]:
    return [ApiKeyRead.model_validate(k) for k in await service.list_api_keys(principal.id)]


@me_router.post(
    "/api-keys",
    response_model=ApiKeyCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key",
)
async def create_my_api_key(
    body: ApiKeyCreate, request: Request, service: Service, principal: ApiKeyOwner
) -> ApiKeyCreated:
    user = await service.get_user(principal.id)
    key, token = await service.create_api_key(
        user,
        name=body.name,
        scopes=body.scopes,
        expires_in_days=body.expires_in_days,
        actor=request_actor(request, principal),
        creator=principal,
    )
    return ApiKeyCreated.model_validate({**ApiKeyRead.model_validate(key).model_dump(), "token": token})


@me_router.delete(
    "/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke one of my API keys"
)
async def revoke_my_api_key(
    key_id: uuid.UUID, request: Request, service: Service, principal: ApiKeyOwner
) -> Response:
    await service.revoke_api_key(key_id, request_actor(request, principal), owner_id=principal.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# ------------------------------------------------------------------ /api/users

UsersReader = Annotated[Principal, Depends(require(USERS_READ))]
UsersManager = Annotated[Principal, Depends(require(USERS_MANAGE))]


@users_router.get("", response_model=UserPage, summary="List users")
async def list_users(
    service: Service,
    principal: UsersReader,
    q: Annotated[str | None, Query(max_length=100, description="Search e-mail and name")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> UserPage:
    users, total = await service.list_users(search=q, limit=limit, offset=offset)
    return UserPage(items=[UserRead.model_validate(u) for u in users], total=total)


@users_router.post("", response_model=UserRead, status_code=status.HTTP_201_CREATED, summary="Create a user")
async def create_user(
    body: UserCreate, request: Request, service: Service, principal: UsersManager
) -> UserRead:
    user = await service.create_user(
        email=body.email,
        password=body.password,
        display_name=body.display_name,
        roles=body.roles,
        actor=request_actor(request, principal),
    )
    return UserRead.model_validate(user)


@users_router.get("/{user_id}", response_model=UserRead, summary="Get a user")
async def get_user(user_id: uuid.UUID, service: Service, principal: UsersReader) -> UserRead:
    return UserRead.model_validate(await service.get_user(user_id))


@users_router.patch("/{user_id}", response_model=UserRead, summary="Change a user's name, roles or status")
async def update_user(
    user_id: uuid.UUID, body: UserUpdate, request: Request, service: Service, principal: UsersManager
) -> UserRead:
    user = await service.update_user(
        user_id,
        actor=request_actor(request, principal),
        display_name=body.display_name,
        is_active=body.is_active,
        roles=body.roles,
    )
    return UserRead.model_validate(user)


@users_router.get("/{user_id}/grants", response_model=list[GrantRead], summary="A user's resource grants")
async def list_grants(user_id: uuid.UUID, service: Service, principal: UsersReader) -> list[GrantRead]:
    return [GrantRead.model_validate(g) for g in await service.list_grants(user_id)]


@users_router.post(
    "/{user_id}/grants",
    response_model=GrantRead,
    status_code=status.HTTP_201_CREATED,
    summary="Grant a role on a resource",
)
async def create_grant(
    user_id: uuid.UUID, body: GrantCreate, request: Request, service: Service, principal: UsersManager
) -> GrantRead:
    grant = await service.grant(
        user_id, body.resource_type, body.resource_id, body.role, actor=request_actor(request, principal)
    )
    return GrantRead.model_validate(grant)


@users_router.delete(
    "/{user_id}/grants/{grant_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Remove a grant"
)
async def delete_grant(
    user_id: uuid.UUID, grant_id: uuid.UUID, request: Request, service: Service, principal: UsersManager
) -> Response:
    await service.revoke_grant(user_id, grant_id, actor=request_actor(request, principal))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# ----------------------------------------------------- roles, service tokens, audit


@admin_router.get("/roles", response_model=RolesRead, summary="Permissions and the roles that bundle them")
async def list_roles(request: Request, principal: UsersReader) -> RolesRead:
    registry = request.app.state.platform.permissions
    return RolesRead(
        permissions=[PermissionRead(key=p.key, description=p.description) for p in registry.permissions],
        roles={role: sorted(perms) for role, perms in registry.roles.items()},
        resource_roles={
            kind: {role: sorted(perms) for role, perms in roles.items()}
            for kind, roles in registry.resource_roles.items()
        },
    )


TokenManager = Annotated[Principal, Depends(require(SERVICE_TOKENS_MANAGE))]


@admin_router.get("/service-tokens", response_model=list[ServiceTokenRead], summary="List service tokens")
async def list_service_tokens(service: Service, principal: TokenManager) -> list[ServiceTokenRead]:
    return [ServiceTokenRead.model_validate(t) for t in await service.list_service_tokens()]


@admin_router.post(
    "/service-tokens",
    response_model=ServiceTokenCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Issue a service token for a machine client",
)
async def create_service_token(
    body: ServiceTokenCreate, request: Request, service: Service, principal: TokenManager
) -> ServiceTokenCreated:
    stored, token = await service.create_service_token(
        name=body.name, scopes=body.scopes, expires_in_days=body.expires_in_days,
        actor=request_actor(request, principal),
    )  # fmt: skip
    return ServiceTokenCreated.model_validate(
        {**ServiceTokenRead.model_validate(stored).model_dump(), "token": token}
    )


@admin_router.delete(
    "/service-tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke a service token"
)
async def revoke_service_token(
    token_id: uuid.UUID, request: Request, service: Service, principal: TokenManager
) -> Response:
    await service.revoke_service_token(token_id, request_actor(request, principal))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@admin_router.get("/audit", response_model=AuditPage, summary="Query the audit log, newest first")
async def list_audit_events(
    session: Annotated[AsyncSession, Depends(db_session)],
    principal: Annotated[Principal, Depends(require(AUDIT_READ))],
    actor_id: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    resource_type: Annotated[str | None, Query(max_length=64)] = None,
    resource_id: Annotated[str | None, Query(max_length=64)] = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    before: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> AuditPage:
    events = await audit.list_events(
        session,
        actor_id=actor_id, action=action, resource_type=resource_type, resource_id=resource_id,
        since=since, until=until, before=before, limit=limit,
    )  # fmt: skip
    return AuditPage(
        items=[AuditEventRead.model_validate(e) for e in events],
        next_before=events[-1].id if len(events) == limit else None,
    )


routers = (auth_router, me_router, users_router, admin_router)
