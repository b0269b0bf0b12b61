"""The web shell: server-rendered sign-in, account and admin pages, the offline API docs, static files.

Every page route lives on `router` (left out of the OpenAPI document). A page that needs a session
declares `Depends(PageAccess(...))`: anonymous visitors are sent to /login, signed-in users without the
permission get a 403 page, and every POST must carry the session's CSRF token in the `csrf_token` field.
Forms that work without a session (sign-in, password reset) refuse posts whose Origin is another site.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode, urlsplit

import segno
from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ValidationError
from starlette.responses import FileResponse, RedirectResponse, Response

import pentad
from pentad.core import audit
from pentad.core.audit import Actor
from pentad.core.auth.dependencies import SESSION_COOKIE, auth_service, request_actor, resolve_principal
from pentad.core.auth.models import User
from pentad.core.auth.permissions import (
    API_KEYS_OWN,
    AUDIT_READ,
    JOBS_MANAGE,
    USERS_MANAGE,
    USERS_READ,
    Permission,
)
from pentad.core.auth.principal import Principal
from pentad.core.auth.schemas import (
    ApiKeyCreate,
    LoginRequest,
    MfaRequest,
    PasswordChange,
    PasswordResetConfirm,
    PasswordResetRequest,
    TotpCode,
    TotpDisable,
    UserCreate,
    VerifyRequest,
)
from pentad.core.auth.service import AuthService, csrf_matches, csrf_token
from pentad.core.errors import AppError, BadRequest, NotFound
from pentad.core.platform import Platform, get_platform
from pentad.core.security import CONTENT_SECURITY_POLICY

WEB_DIR = Path(__file__).parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"
VENDOR_DIR = Path(pentad.__file__).resolve().parents[2] / "web" / "node_modules"
"""web/node_modules of the source tree, installed by `make install` from web/package-lock.json."""

VENDOR_FILES = {
    "swagger-ui/swagger-ui-bundle.js": "swagger-ui-dist/swagger-ui-bundle.js",
    "swagger-ui/swagger-ui.css": "swagger-ui-dist/swagger-ui.css",
}
"""The only files of web/node_modules served, as /static/vendor/<key>."""

PUBLIC_PAGES = frozenset(
    {
        "/login",
        "/login/2fa",
        "/forgot-password",
        "/reset-password",
        "/api/docs",
        "/static",
        "/static/vendor/{name:path}",
    }
)
"""Page paths that work without a session; every other page redirects anonymous visitors to /login.
Apps' static files are mounted under /static/<app name> and are public too."""

USERS_PAGE_SIZE = 50
AUDIT_PAGE_SIZE = 50
NO_STORE = {"Cache-Control": "no-store"}

NOTICES = {
    "signed-out": "You are signed out.",
    "password-reset": "Your password was changed. Sign in with the new one.",
    "password-changed": "Your password was changed. Your other sessions were ended.",
    "session-ended": "The session was ended.",
    "2fa-off": "Two-factor authentication is off.",
    "key-revoked": "The API key was revoked.",
    "user-created": "The user was created.",
    "user-updated": "The user was updated.",
}
"""Messages a redirect can ask the next page to show, by key (`?notice=`), so no text travels in URLs."""

FIELD_LABELS = {
    "email": "E-mail",
    "password": "Password",
    "current_password": "Current password",
    "new_password": "New password",
    "code": "Code",
    "name": "Name",
    "display_name": "Display name",
    "expires_in_days": "Expiry",
    "roles": "Roles",
    "mfa_token": "Sign-in step",
    "token": "Reset link",
}

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=TEMPLATES_DIR)

Model = TypeVar("Model", bound=BaseModel)


# ------------------------------------------------------------------ rendering


@dataclass(frozen=True)
class NavLink:
    href: str
    label: str


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else "—"


templates.env.filters["when"] = _when


def _nav(principal: Principal) -> list[NavLink]:
    links = [NavLink("/", "Home"), NavLink("/account", "Account")]
    if principal.has(USERS_READ):
        links.append(NavLink("/admin/users", "Users"))
    if principal.has(AUDIT_READ):
        links.append(NavLink("/admin/audit", "Audit log"))
    if principal.has(JOBS_MANAGE):
        links.append(NavLink("/admin/jobs", "Jobs"))
    return links


def render_page(
    request: Request,
    template: str,
    principal: Principal | None,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
    renderer: Jinja2Templates = templates,
    **context: Any,
) -> Response:
    """A page in the site layout. Pages are never cached: several show secrets exactly once.

    Apps pass their own `renderer`, whose loader also finds the core's templates (base.html)."""
    if principal is not None and principal.session_id is None:
        principal = None
    return renderer.TemplateResponse(
        request,
        template,
        {
            "principal": principal,
            "nav": _nav(principal) if principal is not None else [],
            "csrf_token": _csrf_of(request, principal),
            "notice": NOTICES.get(request.query_params.get("notice", "")),
            **context,
        },
        status_code=status_code,
        headers={**NO_STORE, **(headers or {})},
    )


def _csrf_of(request: Request, principal: Principal | None) -> str:
    if principal is None or principal.session_id is None:
        return ""
    return csrf_token(get_platform(request).signing_secret, principal.session_id)


def failure_context(exc: AppError) -> dict[str, Any]:
    """Render arguments for a failed action: its message and status (a 4xx also rolls the request back)."""
    retry = {k: v for k, v in exc.headers.items() if k.lower() == "retry-after"}
    return {"error": exc.message, "status_code": exc.status, "headers": retry}


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=NO_STORE)


class InvalidForm(BadRequest):
    code = "invalid_form"


def _parse(model: type[Model], **fields: object) -> Model:
    """Validate a form against the API's own request model, so pages and API accept the same input."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        label = FIELD_LABELS.get(field, field.replace("_", " ").capitalize() or "Form")
        message = str(first["msg"]).removeprefix("Value error, ")
        raise InvalidForm(f"{label}: {message}") from None


# ------------------------------------------------------------- access control


class SignInRequired(Exception):
    def __init__(self, next_path: str | None) -> None:
        super().__init__("sign-in required")
        self.next_path = next_path


class PageDenied(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def _session_principal(request: Request) -> Principal | None:
    """The signed-in user of a browser session; API credentials do not open pages."""
    principal = await resolve_principal(request, check_csrf_header=False)
    if principal is None or principal.via != "session" or principal.session_id is None:
        return None
    return principal


class PageAccess:
    """A page's dependency: a browser session holding every listed permission; a POST also needs the
    session's CSRF token in its `csrf_token` form field."""

    def __init__(self, *permissions: Permission) -> None:
        self.permissions = permissions

    async def __call__(self, request: Request) -> Principal:
        principal = await _session_principal(request)
        if principal is None:
            raise SignInRequired(_current_path(request) if request.method == "GET" else None)
        assert principal.session_id is not None
        if request.method == "POST":
            presented = (await request.form()).get("csrf_token")
            secret = get_platform(request).signing_secret
            if not isinstance(presented, str) or not csrf_matches(secret, principal.session_id, presented):
                raise PageDenied("This form has expired or came from another site; reload the page.")
        missing = [p for p in self.permissions if not principal.has(p)]
        if missing:
            raise PageDenied(f"You need the permission {missing[0].key!r} for this page.")
        return principal

    def __repr__(self) -> str:
        return f"PageAccess({', '.join(p.key for p in self.permissions) or 'signed in'})"


def _current_path(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def safe_next(target: str | None) -> str:
    """A local path to go to after sign-in; anything that could leave the site becomes `/`."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    if "\\" in target or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target):
        return "/"
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else "/"


def _check_same_origin(request: Request) -> None:
    """Forms used before there is a session cannot carry a CSRF token; refuse cross-site posts instead."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    # Host only: behind a TLS-terminating proxy that is not listed as trusted, the scheme we see is http
    # while the browser's Origin says https; another site always differs in the host.
    if urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower():
        raise PageDenied("This form was sent from another site.")


async def _on_sign_in_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    query = f"?{urlencode({'next': exc.next_path})}" if exc.next_path not in (None, "/") else ""
    return see_other(f"/login{query}")


async def _on_page_denied(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageDenied)
    principal = getattr(request.state, "principal", None)
    return render_page(
        request, "error.html", principal, status_code=403, title="Not allowed", message=exc.message
    )


Service = Annotated[AuthService, Depends(auth_service)]
SignedIn = Annotated[Principal, Depends(PageAccess())]
KeyOwner = Annotated[Principal, Depends(PageAccess(API_KEYS_OWN))]
UsersReader = Annotated[Principal, Depends(PageAccess(USERS_READ))]
UsersManager = Annotated[Principal, Depends(PageAccess(USERS_MANAGE))]
AuditReader = Annotated[Principal, Depends(PageAccess(AUDIT_READ))]
Field = Annotated[str, Form()]


# --------------------------------------------------------------------- sign-in


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


def _signed_out(platform: Platform) -> Response:
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
    if await _session_principal(request) is not None:
        return see_other(target)
    return render_page(request, "login.html", None, next=target, email="")


@router.post("/login")
async def login(
    request: Request, service: Service, email: Field = "", password: Field = "", next: Field = ""
) -> Response:
    _check_same_origin(request)
    target = safe_next(next)
    actor = request_actor(request)
    try:
        body = _parse(LoginRequest, email=email, password=password)
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
    request: Request, service: Service, mfa_token: Field = "", code: Field = "", next: Field = ""
) -> Response:
    _check_same_origin(request)
    target = safe_next(next)
    actor = request_actor(request)
    try:
        body = _parse(MfaRequest, mfa_token=mfa_token, code=code)
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
    return _signed_out(service.platform)


@router.get("/forgot-password")
async def forgot_password_page(request: Request) -> Response:
    return render_page(request, "forgot_password.html", None, email="", sent=False)


@router.post("/forgot-password")
async def forgot_password(request: Request, service: Service, email: Field = "") -> Response:
    _check_same_origin(request)
    try:
        body = _parse(PasswordResetRequest, email=email)
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
    token: Field = "",
    new_password: Field = "",
    confirm_password: Field = "",
) -> Response:
    _check_same_origin(request)
    try:
        body = _parse(PasswordResetConfirm, token=token, new_password=new_password)
        if new_password != confirm_password:
            raise InvalidForm("The two new passwords differ.")
        await service.reset_password(body.token, body.new_password, request_actor(request))
    except AppError as exc:
        return render_page(request, "reset_password.html", None, token=token, **failure_context(exc))
    return see_other("/login?notice=password-reset")


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
    body = _parse(VerifyRequest, password=password, code=code or None)
    return await service.reverify(principal, body.password, body.code, request_actor(request, principal))


@router.get("/account")
async def account(request: Request, service: Service, principal: SignedIn) -> Response:
    return await _account_page(request, service, principal)


@router.post("/account/password")
async def change_password(
    request: Request,
    service: Service,
    principal: SignedIn,
    current_password: Field = "",
    new_password: Field = "",
    confirm_password: Field = "",
) -> Response:
    try:
        body = _parse(PasswordChange, current_password=current_password, new_password=new_password)
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
        return _signed_out(service.platform)
    return see_other("/account?notice=session-ended#sessions")


@router.post("/account/2fa/setup")
async def begin_two_factor(
    request: Request, service: Service, principal: SignedIn, password: Field = "", code: Field = ""
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
    request: Request, service: Service, principal: SignedIn, code: Field = ""
) -> Response:
    try:
        body = _parse(TotpCode, code=code)
        codes = await service.enable_totp(principal, body.code, request_actor(request, principal))
    except AppError as exc:
        return render_page(
            request, "two_factor_setup.html", principal, secret=None, qr_data_uri=None, **failure_context(exc)
        )
    return render_page(request, "recovery_codes.html", principal, codes=codes, enabled=True)


@router.post("/account/2fa/disable")
async def disable_two_factor(
    request: Request, service: Service, principal: SignedIn, password: Field = "", code: Field = ""
) -> Response:
    try:
        body = _parse(TotpDisable, password=password, code=code)
        await service.disable_totp(principal, body.password, body.code, request_actor(request, principal))
    except AppError as exc:
        return await _account_page(request, service, principal, **failure_context(exc))
    return see_other("/account?notice=2fa-off")


@router.post("/account/2fa/recovery-codes")
async def replace_recovery_codes(
    request: Request, service: Service, principal: SignedIn, code: Field = ""
) -> Response:
    try:
        body = _parse(TotpCode, code=code)
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
    name: Field = "",
    expires_in_days: Field = "",
    password: Field = "",
    code: Field = "",
) -> Response:
    try:
        body = _parse(ApiKeyCreate, name=name, expires_in_days=expires_in_days or None)
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


# ----------------------------------------------------------------------- admin


def _users_url(q: str, notice: str) -> str:
    return "/admin/users?" + urlencode({k: v for k, v in {"q": q, "notice": notice}.items() if v})


async def _users_page(
    request: Request, service: AuthService, principal: Principal, *, q: str, offset: int, **context: Any
) -> Response:
    users, total = await service.list_users(search=q or None, limit=USERS_PAGE_SIZE, offset=offset)
    return render_page(
        request,
        "admin_users.html",
        principal,
        users=users,
        total=total,
        q=q,
        offset=offset,
        page_size=USERS_PAGE_SIZE,
        roles=sorted(get_platform(request).permissions.roles),
        can_manage=principal.has(USERS_MANAGE),
        **context,
    )


@router.get("/admin/users")
async def users(
    request: Request,
    service: Service,
    principal: UsersReader,
    q: Annotated[str, Query(max_length=100)] = "",
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    return await _users_page(request, service, principal, q=q.strip(), offset=offset)


@router.post("/admin/users")
async def create_user(
    request: Request,
    service: Service,
    principal: UsersManager,
    email: Field = "",
    password: Field = "",
    display_name: Field = "",
    roles: Annotated[list[str] | None, Form()] = None,
) -> Response:
    try:
        body = _parse(
            UserCreate, email=email, password=password, display_name=display_name or None, roles=roles or []
        )
        await service.create_user(
            email=body.email,
            password=body.password,
            display_name=body.display_name,
            roles=body.roles,
            actor=request_actor(request, principal),
        )
    except AppError as exc:
        form = {"email": email, "display_name": display_name, "roles": roles or []}
        return await _users_page(
            request, service, principal, q="", offset=0, form=form, **failure_context(exc)
        )
    return see_other(_users_url(body.email, "user-created"))


@router.post("/admin/users/{user_id}/active")
async def set_user_active(
    user_id: uuid.UUID,
    request: Request,
    service: Service,
    principal: UsersManager,
    active: Field = "",
    q: Field = "",
) -> Response:
    try:
        await service.update_user(
            user_id, actor=request_actor(request, principal), is_active=active == "true"
        )
    except AppError as exc:
        return await _users_page(request, service, principal, q=q, offset=0, **failure_context(exc))
    return see_other(_users_url(q, "user-updated"))


@router.post("/admin/users/{user_id}/roles")
async def set_user_roles(
    user_id: uuid.UUID,
    request: Request,
    service: Service,
    principal: UsersManager,
    roles: Annotated[list[str] | None, Form()] = None,
    q: Field = "",
) -> Response:
    try:
        await service.update_user(user_id, actor=request_actor(request, principal), roles=roles or [])
    except AppError as exc:
        return await _users_page(request, service, principal, q=q, offset=0, **failure_context(exc))
    return see_other(_users_url(q, "user-updated"))


@dataclass(frozen=True)
class AuditFilters:
    actor_id: str
    action: str
    resource_type: str
    resource_id: str
    since: str
    until: str

    def query(self, **extra: str) -> str:
        values = {**asdict(self), **extra}
        return urlencode({k: v for k, v in values.items() if v})


def _day(text: str, label: str) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
    except ValueError:
        raise InvalidForm(f"{label}: enter a date as YYYY-MM-DD.") from None


AuditText = Annotated[str, Query(max_length=64)]


@router.get("/admin/audit")
async def audit_log(
    request: Request,
    service: Service,
    principal: AuditReader,
    actor_id: AuditText = "",
    action: AuditText = "",
    resource_type: AuditText = "",
    resource_id: AuditText = "",
    since: AuditText = "",
    until: AuditText = "",
    before: AuditText = "",
) -> Response:
    filters = AuditFilters(
        actor_id.strip(), action.strip(), resource_type.strip(), resource_id.strip(), since, until
    )
    try:
        since_day, until_day = _day(since, "From"), _day(until, "Until")
        try:
            before_id = uuid.UUID(before) if before else None
        except ValueError:
            raise InvalidForm("The page link is broken; start from the newest events.") from None
        events = await audit.list_events(
            service.session,
            actor_id=filters.actor_id or None,
            action=filters.action or None,
            resource_type=filters.resource_type or None,
            resource_id=filters.resource_id or None,
            since=since_day,
            until=until_day + timedelta(days=1) if until_day else None,
            before=before_id,
            limit=AUDIT_PAGE_SIZE,
        )
    except AppError as exc:
        return render_page(
            request,
            "admin_audit.html",
            principal,
            events=[],
            filters=filters,
            older=None,
            **failure_context(exc),
        )
    older = filters.query(before=str(events[-1].id)) if len(events) == AUDIT_PAGE_SIZE else None
    return render_page(
        request,
        "admin_audit.html",
        principal,
        events=[(event, json.dumps(event.details, sort_keys=True)) for event in events],
        filters=filters,
        older=older,
        newest=bool(before),
    )


# ------------------------------------------------------------- API docs, vendor


@router.get("/api/docs")
async def api_docs(request: Request) -> Response:
    """Swagger UI from /static/vendor, started by an external script: works offline under the strict CSP."""
    app: FastAPI = request.app
    return templates.TemplateResponse(
        request,
        "api_docs.html",
        {"title": app.title, "openapi_url": app.openapi_url},
        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY},
    )


@router.get("/static/vendor/{name:path}")
async def vendor_file(name: str) -> Response:
    relative = VENDOR_FILES.get(name)
    path = VENDOR_DIR / relative if relative else None
    if path is None or not path.is_file():
        raise NotFound("No such file.")
    return FileResponse(path)


# ------------------------------------------------------------------- assembly


def install_pages(app: FastAPI, platform: Platform) -> None:
    """Mount the core's pages and static files, and each enabled app's pages."""
    app.add_exception_handler(SignInRequired, _on_sign_in_required)
    app.add_exception_handler(PageDenied, _on_page_denied)
    app.include_router(router)
    for spec in platform.apps:
        for pages in spec.pages:
            app.include_router(pages)
        if spec.static_dir is not None:
            app.mount(
                f"/static/{spec.name}", StaticFiles(directory=spec.static_dir), name=f"static-{spec.name}"
            )
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
