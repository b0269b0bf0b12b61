"""Sign-in, second factor, sign-out and password reset: the pages that work before there is a session."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from pentad.core.audit import Actor
from pentad.core.auth.dependencies import SESSION_COOKIE, auth_service, request_actor
from pentad.core.auth.models import User
from pentad.core.auth.schemas import LoginRequest, MfaRequest, PasswordResetConfirm, PasswordResetRequest
from pentad.core.auth.service import AuthService
from pentad.core.errors import AppError
from pentad.core.platform import Platform
from pentad.core.web.pages.kit import (
    FormField,
    InvalidForm,
    SignedIn,
    check_same_origin,
    failure_context,
    parse_form,
    render_page,
    safe_next,
    see_other,
    session_principal,
)

router = APIRouter(include_in_schema=False)

Service = Annotated[AuthService, Depends(auth_service)]


def _set_session_cookie(response: Response, platform: Platform, value: str) -> None:
    settings = platform.settings.auth
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=settings.refresh_token_ttl,
        path="/",
        secure=settings.cookie_secure,
        httponly=True,
        samesite="lax",
    )


def signed_out(platform: Platform) -> Response:
    response = see_other("/login?notice=signed-out")
    settings = platform.settings.auth
    response.delete_cookie(
        SESSION_COOKIE, path="/", secure=settings.cookie_secure, httponly=True, samesite="lax"
    )
    return response


async def _start_session(
    request: Request, service: AuthService, user: User, actor: Actor, *, mfa: bool, target: str
) -> Response:
    browser = await service.start_browser_session(user, actor, request.headers.get("user-agent"), mfa=mfa)
    response = see_other(target)
    _set_session_cookie(response, service.platform, browser.cookie_value)
    return response


@router.get("/login")
async def login_page(request: Request, next: str = "") -> Response:
    target = safe_next(next)
    if await session_principal(request) is not None:
        return see_other(target)
    return render_page(request, "login.html", None, next=target, email="")


@router.post("/login")
async def login(
    request: Request, service: Service, email: FormField = "", password: FormField = "", next: FormField = ""
) -> Response:
    check_same_origin(request)
    target = safe_next(next)
    actor = request_actor(request)
    try:
        body = parse_form(LoginRequest, email=email, password=password)
        user = await service.check_password_login(body.email, body.password, actor)
    except AppError as exc:
        return render_page(request, "login.html", None, next=target, email=email, **failure_context(exc))
    if user.totp_enabled:
        return render_page(
            request, "login_2fa.html", None, next=target, mfa_token=service.issue_mfa_token(user)
        )
    return await _start_session(request, service, user, actor, mfa=False, target=target)


@router.post("/login/2fa")
async def login_second_factor(
    request: Request, service: Service, mfa_token: FormField = "", code: FormField = "", next: FormField = ""
) -> Response:
    check_same_origin(request)
    target = safe_next(next)
    actor = request_actor(request)
    try:
        body = parse_form(MfaRequest, mfa_token=mfa_token, code=code)
        user = await service.complete_mfa(body.mfa_token, body.code, actor)
    except AppError as exc:
        if exc.code == "invalid_token":
            return render_page(request, "login.html", None, next=target, email="", **failure_context(exc))
        return render_page(
            request, "login_2fa.html", None, next=target, mfa_token=mfa_token, **failure_context(exc)
        )
    return await _start_session(request, service, user, actor, mfa=True, target=target)


@router.post("/logout")
async def logout(request: Request, service: Service, principal: SignedIn) -> Response:
    await service.logout(principal, request_actor(request, principal))
    return signed_out(service.platform)


@router.get("/forgot-password")
async def forgot_password_page(request: Request) -> Response:
    return render_page(request, "forgot_password.html", None, email="", sent=False)


@router.post("/forgot-password")
async def forgot_password(request: Request, service: Service, email: FormField = "") -> Response:
    check_same_origin(request)
    try:
        body = parse_form(PasswordResetRequest, email=email)
        await service.request_password_reset(body.email, request_actor(request))
    except AppError as exc:
        return render_page(
            request, "forgot_password.html", None, email=email, sent=False, **failure_context(exc)
        )
    return render_page(request, "forgot_password.html", None, email=body.email, sent=True)


@router.get("/reset-password")
async def reset_password_page(request: Request, token: str = "") -> Response:
    return render_page(request, "reset_password.html", None, token=token)


@router.post("/reset-password")
async def reset_password(
    request: Request,
    service: Service,
    token: FormField = "",
    new_password: FormField = "",
    confirm_password: FormField = "",
) -> Response:
    check_same_origin(request)
    try:
        body = parse_form(PasswordResetConfirm, token=token, new_password=new_password)
        if new_password != confirm_password:
            raise InvalidForm("The two new passwords differ.")
        await service.reset_password(body.token, body.new_password, request_actor(request))
    except AppError as exc:
        return render_page(request, "reset_password.html", None, token=token, **failure_context(exc))
    return see_other("/login?notice=password-reset")
