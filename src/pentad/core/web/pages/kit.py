"""The page kit: what a server-rendered page of the core or of an app uses.

`render_page` renders a template in the site layout (navigation, the session's CSRF token, `?notice=`
messages), never cached. A page that needs a session declares `Depends(PageAccess(PERMISSION, ...))`:
anonymous visitors are sent to /login (`SignInRequired`), signed-in users without the permission get a 403
page (`PageDenied`), and every POST must carry the session's CSRF token in its `csrf_token` field. Forms
that work without a session (sign-in) call `check_same_origin` instead. `parse_form` validates a form
against the API's own request model, `failure_context` renders a refused action, `see_other` redirects
after a POST, `safe_next` keeps a return path on the site.

Apps import this module only; the core's own pages (sign-in, account, admin, API docs) are its siblings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode, urlsplit

from fastapi import Depends, FastAPI, Form, Request
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ValidationError
from starlette.responses import RedirectResponse, Response

from pentad.core.auth.dependencies import resolve_principal
from pentad.core.auth.permissions import AUDIT_READ, JOBS_MANAGE, USERS_READ, Permission
from pentad.core.auth.principal import Principal
from pentad.core.auth.service import csrf_matches, csrf_token
from pentad.core.errors import AppError, BadRequest
from pentad.core.platform import get_platform
from pentad.core.web.assets import static_url

WEB_DIR = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = WEB_DIR / "templates"
"""The site layout (base.html) and the core's pages; an app's Jinja2Templates lists it after its own."""
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
templates.env.globals["static_url"] = static_url


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
            "csrf_token": csrf_of(request, principal),
            "notice": NOTICES.get(request.query_params.get("notice", "")),
            # Hashed, immutable URLs of static files (core/web/assets.py), in apps' templates too.
            "static_url": static_url,
            **context,
        },
        status_code=status_code,
        headers={**NO_STORE, **(headers or {})},
    )


def csrf_of(request: Request, principal: Principal | None) -> str:
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


def parse_form(model: type[Model], **fields: object) -> Model:
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


async def session_principal(request: Request) -> Principal | None:
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
        principal = await session_principal(request)
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


def check_same_origin(request: Request) -> None:
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


SignedIn = Annotated[Principal, Depends(PageAccess())]
FormField = Annotated[str, Form()]


def add_page_error_handlers(app: FastAPI) -> None:
    """Turn SignInRequired into the redirect to /login and PageDenied into the 403 page."""
    app.add_exception_handler(SignInRequired, _on_sign_in_required)
    app.add_exception_handler(PageDenied, _on_page_denied)
