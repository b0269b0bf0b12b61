"""FastAPI dependencies of the chat app: who is chatting, which tenant's backend is calling."""

from __future__ import annotations

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.chat import repository
from pentad.apps.chat.access import ChatActor
from pentad.apps.chat.actions.context import ChatContext
from pentad.apps.chat.models import ChatTenant
from pentad.apps.chat.permissions import CHAT_ADMIN, CHAT_SERVER, CHAT_USE
from pentad.apps.chat.tenancy import TENANT_PRINCIPAL, TenantService, actor_for
from pentad.core.auth.dependencies import db_session, request_actor, require
from pentad.core.auth.principal import Principal
from pentad.core.errors import PermissionDenied
from pentad.core.platform import get_platform


async def chat_actor(
    request: Request,
    principal: Principal = Depends(require(CHAT_USE)),
    session: AsyncSession = Depends(db_session),
) -> ChatActor:
    return await actor_for(session, get_platform(request), principal)


async def chat_context(
    request: Request,
    actor: ChatActor = Depends(chat_actor),
    session: AsyncSession = Depends(db_session),
) -> ChatContext:
    return ChatContext(session, get_platform(request), actor, request_actor(request, actor.principal))


async def server_tenant(
    principal: Principal = Depends(require(CHAT_SERVER)),
    session: AsyncSession = Depends(db_session),
) -> ChatTenant:
    """The tenant whose server key authenticated this request."""
    if principal.kind != TENANT_PRINCIPAL:
        message = "The server API takes a tenant server key (`pck_…`)."
        raise PermissionDenied(message, code="server_key_required")
    tenant = await repository.get_tenant(session, principal.id)
    if tenant is None:
        raise PermissionDenied("This tenant no longer exists.", code="tenant_gone")
    return tenant


async def server_tenant_service(
    request: Request,
    tenant: ChatTenant = Depends(server_tenant),
    session: AsyncSession = Depends(db_session),
) -> TenantService:
    return TenantService(session, get_platform(request), request_actor(request, request.state.principal))


async def admin_tenant_service(
    request: Request,
    principal: Principal = Depends(require(CHAT_ADMIN)),
    session: AsyncSession = Depends(db_session),
) -> TenantService:
    return TenantService(session, get_platform(request), request_actor(request, principal))
