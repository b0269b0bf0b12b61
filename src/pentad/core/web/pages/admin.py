"""Administration pages: users and their roles, the audit log."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from starlette.responses import Response

from pentad.core import audit
from pentad.core.auth.dependencies import request_actor
from pentad.core.auth.permissions import AUDIT_READ, USERS_MANAGE, USERS_READ
from pentad.core.auth.principal import Principal
from pentad.core.auth.schemas import UserCreate
from pentad.core.auth.service import AuthService
from pentad.core.errors import AppError
from pentad.core.platform import get_platform
from pentad.core.web.pages.kit import (
    FormField,
    InvalidForm,
    PageAccess,
    failure_context,
    parse_form,
    render_page,
    see_other,
)
from pentad.core.web.pages.signin import Service

router = APIRouter(include_in_schema=False)

USERS_PAGE_SIZE = 50
AUDIT_PAGE_SIZE = 50

UsersReader = Annotated[Principal, Depends(PageAccess(USERS_READ))]
UsersManager = Annotated[Principal, Depends(PageAccess(USERS_MANAGE))]
AuditReader = Annotated[Principal, Depends(PageAccess(AUDIT_READ))]


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
    email: FormField = "",
    password: FormField = "",
    display_name: FormField = "",
    roles: Annotated[list[str] | None, Form()] = None,
) -> Response:
    try:
        body = parse_form(
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
    active: FormField = "",
    q: FormField = "",
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
    q: FormField = "",
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
