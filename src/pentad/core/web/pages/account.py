"""The home page and the signed-in user's account: password, sessions, two-factor, API keys."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import segno
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from pentad.core.auth.dependencies import request_actor
from pentad.core.auth.permissions import API_KEYS_OWN
from pentad.core.auth.principal import Principal
from pentad.core.auth.schemas import ApiKeyCreate, PasswordChange, TotpCode, TotpDisable, VerifyRequest
from pentad.core.auth.service import AuthService
from pentad.core.errors import AppError
from pentad.core.platform import get_platform
from pentad.core.web.pages.kit import (
    FormField,
    InvalidForm,
    PageAccess,
    SignedIn,
    failure_context,
    parse_form,
    render_page,
    see_other,
)
from pentad.core.web.pages.signin import Service, signed_out

router = APIRouter(include_in_schema=False)

KeyOwner = Annotated[Principal, Depends(PageAccess(API_KEYS_OWN))]


# ------------------------------------------------------------------------ home


@router.get("/")
async def home(request: Request, principal: SignedIn) -> Response:
    apps = [spec for spec in get_platform(request).apps if spec.home_path]
    return render_page(request, "home.html", principal, apps=apps)


# --------------------------------------------------------------------- account


async def _account_page(
    request: Request, service: AuthService, principal: Principal, **context: Any
) -> Response:
    user = await service.get_user(principal.id)
    keys = await service.list_api_keys(principal.id) if principal.has(API_KEYS_OWN) else None
    return render_page(
        request,
        "account.html",
        principal,
        user=user,
        sessions=await service.list_sessions(principal.id),
        api_keys=keys,
        recovery_codes_left=(
            await service.unused_recovery_code_count(user.id) if user.totp_enabled else None
        ),
        needs_verification=not service.recently_verified(principal),
        **context,
    )


async def _verified(
    request: Request, service: AuthService, principal: Principal, password: str, code: str
) -> Principal:
    """The page's principal, re-verified first when the form carried the password (the account page asks
    for it once the sign-in is older than PENTAD_AUTH__REVERIFY_AFTER)."""
    if not password:
        return principal
    body = parse_form(VerifyRequest, password=password, code=code or None)
    return await service.reverify(principal, body.password, body.code, request_actor(request, principal))


@router.get("/account")
async def account(request: Request, service: Service, principal: SignedIn) -> Response:
    return await _account_page(request, service, principal)


@router.post("/account/password")
async def change_password(
    request: Request,
    service: Service,
    principal: SignedIn,
    current_password: FormField = "",
    new_password: FormField = "",
    confirm_password: FormField = "",
) -> Response:
    try:
        body = parse_form(PasswordChange, current_password=current_password, new_password=new_password)
        if new_password != confirm_password:
            raise InvalidForm("The two new passwords differ.")
        await service.change_password(
            principal, body.current_password, body.new_password, request_actor(request, principal)
        )
    except AppError as exc:
        return await _account_page(request, service, principal, **failure_context(exc))
    return see_other("/account?notice=password-changed")


@router.post("/account/sessions/{session_id}/end")
async def end_session(
    session_id: uuid.UUID, request: Request, service: Service, principal: SignedIn
) -> Response:
    try:
        await service.revoke_session(principal.id, session_id, request_actor(request, principal))
    except AppError as exc:
        return await _account_page(request, service, principal, **failure_context(exc))
    if session_id == principal.session_id:
        return signed_out(service.platform)
    return see_other("/account?notice=session-ended#sessions")


@router.post("/account/2fa/setup")
async def begin_two_factor(
    request: Request, service: Service, principal: SignedIn, password: FormField = "", code: FormField = ""
) -> Response:
    try:
        principal = await _verified(request, service, principal, password, code)
        setup = await service.begin_totp_setup(principal)
    except AppError as exc:
        return await _account_page(request, service, principal, **failure_context(exc))
    return render_page(
        request,
        "two_factor_setup.html",
        principal,
        secret=setup.secret,
        qr_data_uri=_qr_data_uri(setup.otpauth_uri),
    )


def _qr_data_uri(uri: str) -> str:
    """The otpauth URI as a QR code image: an <img> keeps the SVG out of the page and its CSP."""
    return str(segno.make(uri, error="m").svg_data_uri(scale=5, dark="#111", light="#fff"))


@router.post("/account/2fa/enable")
async def enable_two_factor(
    request: Request, service: Service, principal: SignedIn, code: FormField = ""
) -> Response:
    try:
        body = parse_form(TotpCode, code=code)
        codes = await service.enable_totp(principal, body.code, request_actor(request, principal))
    except AppError as exc:
        return render_page(
            request, "two_factor_setup.html", principal, secret=None, qr_data_uri=None, **failure_context(exc)
        )
    return render_page(request, "recovery_codes.html", principal, codes=codes, enabled=True)


@router.post("/account/2fa/disable")
async def disable_two_factor(
    request: Request, service: Service, principal: SignedIn, password: FormField = "", code: FormField = ""
) -> Response:
    try:
        body = parse_form(TotpDisable, password=password, code=code)
        await service.disable_totp(principal, body.password, body.code, request_actor(request, principal))
    except AppError as exc:
        return await _account_page(request, service, principal, **failure_context(exc))
    return see_other("/account?notice=2fa-off")


@router.post("/account/2fa/recovery-codes")
async def replace_recovery_codes(
    request: Request, service: Service, principal: SignedIn, code: FormField = ""
) -> Response:
    try:
        body = parse_form(TotpCode, code=code)
        codes = await service.regenerate_recovery_codes(
            principal, body.code, request_actor(request, principal)
        )
    except AppError as exc:
        return await _account_page(request, service, principal, **failure_context(exc))
    return render_page(request, "recovery_codes.html", principal, codes=codes, enabled=False)


@router.post("/account/api-keys")
async def create_api_key(
    request: Request,
    service: Service,
    principal: KeyOwner,
    name: FormField = "",
    expires_in_days: FormField = "",
    password: FormField = "",
    code: FormField = "",
) -> Response:
    try:
        body = parse_form(ApiKeyCreate, name=name, expires_in_days=expires_in_days or None)
        principal = await _verified(request, service, principal, password, code)
        key, token = await service.create_api_key(
            await service.get_user(principal.id),
            name=body.name,
            scopes=body.scopes,
            expires_in_days=body.expires_in_days,
            actor=request_actor(request, principal),
            creator=principal,
        )
    except AppError as exc:
        return await _account_page(request, service, principal, **failure_context(exc))
    return render_page(request, "api_key_created.html", principal, key=key, token=token)


@router.post("/account/api-keys/{key_id}/revoke")
async def revoke_api_key(
    key_id: uuid.UUID, request: Request, service: Service, principal: KeyOwner
) -> Response:
    try:
        await service.revoke_api_key(key_id, request_actor(request, principal), owner_id=principal.id)
    except AppError as exc:
        return await _account_page(request, service, principal, **failure_context(exc))
    return see_other("/account?notice=key-revoked#api-keys")
