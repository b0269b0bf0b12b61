"""The chat server API: tenant administration (/api/chat/tenants, Pentad admins) and the server API
(/api/chat/server, a tenant's own backend with its `pck_` key): users, user tokens, channels, moderation."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Request, Response, status
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.chat import repository, schemas
from pentad.apps.chat.access import ChatActor
from pentad.apps.chat.actions import channels, members, send
from pentad.apps.chat.actions.context import ChatContext
from pentad.apps.chat.dependencies import admin_tenant_service, server_tenant, server_tenant_service
from pentad.apps.chat.models import ChatTenant
from pentad.apps.chat.tenancy import TenantService, mint_user_token
from pentad.core.auth.dependencies import db_session, request_actor
from pentad.core.errors import NotFound, also_answers, problem_responses
from pentad.core.platform import get_platform

admin_router = APIRouter(
    prefix="/api/chat/tenants",
    tags=["chat admin"],
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 429),
)
server_router = APIRouter(
    prefix="/api/chat/server",
    tags=["chat server API"],
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 429),
)

Admin = Annotated[TenantService, Depends(admin_tenant_service)]
ServerTenants = Annotated[TenantService, Depends(server_tenant_service)]
Tenant = Annotated[ChatTenant, Depends(server_tenant)]
Session = Annotated[AsyncSession, Depends(db_session)]
ExternalIdPath = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@\-]+$")]


# ---------------------------------------------------------------- tenant administration


@admin_router.get("", response_model=list[schemas.Tenant], summary="List chat tenants")
async def list_tenants(service: Admin) -> list[schemas.Tenant]:
    return [schemas.Tenant.model_validate(t) for t in await repository.list_tenants(service.session)]


@admin_router.post("", response_model=schemas.Tenant, status_code=201, summary="Create a chat tenant")
async def create_tenant(data: schemas.TenantCreate, service: Admin) -> schemas.Tenant:
    return schemas.Tenant.model_validate(await service.create_tenant(data))


@admin_router.get("/{tenant_id}", response_model=schemas.Tenant, summary="Get a chat tenant")
async def get_tenant(tenant_id: uuid.UUID, service: Admin) -> schemas.Tenant:
    return schemas.Tenant.model_validate(await service.get_tenant(tenant_id))


@admin_router.patch(
    "/{tenant_id}", response_model=schemas.Tenant, summary="Update, disable or enable a tenant"
)
async def update_tenant(tenant_id: uuid.UUID, data: schemas.TenantUpdate, service: Admin) -> schemas.Tenant:
    return schemas.Tenant.model_validate(await service.update_tenant(tenant_id, data))


@admin_router.get(
    "/{tenant_id}/keys", response_model=list[schemas.ServerKey], summary="A tenant's server keys"
)
async def list_keys(tenant_id: uuid.UUID, service: Admin) -> list[schemas.ServerKey]:
    await service.get_tenant(tenant_id)
    return [
        schemas.ServerKey.model_validate(k)
        for k in await repository.list_server_keys(service.session, tenant_id)
    ]


@admin_router.post(
    "/{tenant_id}/keys",
    response_model=schemas.ServerKeyCreated,
    status_code=201,
    summary="Create a server key (shown once)",
)
async def create_key(
    tenant_id: uuid.UUID, data: schemas.ServerKeyCreate, service: Admin
) -> schemas.ServerKeyCreated:
    return await service.create_server_key(tenant_id, data.name)


@admin_router.delete("/{tenant_id}/keys/{key_id}", status_code=204, summary="Revoke a server key")
async def revoke_key(tenant_id: uuid.UUID, key_id: uuid.UUID, service: Admin) -> None:
    await service.revoke_server_key(tenant_id, key_id)


# ---------------------------------------------------------------- server API: tenant and users


@server_router.get("/tenant", response_model=schemas.Tenant, summary="This key's tenant")
async def server_get_tenant(tenant: Tenant) -> schemas.Tenant:
    return schemas.Tenant.model_validate(tenant)


class BlockedWordsUpdate(BaseModel):
    blocked_words: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(max_length=1000)


@server_router.put(
    "/tenant/blocked-words", response_model=schemas.Tenant, summary="Set the blocked-word filter"
)
async def set_blocked_words(
    data: BlockedWordsUpdate, tenant: Tenant, service: ServerTenants
) -> schemas.Tenant:
    updated = await service.update_tenant(tenant.id, schemas.TenantUpdate(blocked_words=data.blocked_words))
    return schemas.Tenant.model_validate(updated)


@server_router.put(
    "/users/{external_id}",
    response_model=schemas.ChatUserDetail,
    status_code=status.HTTP_200_OK,
    summary="Create or update a user by your id for them",
    responses=also_answers(201, schemas.ChatUserDetail, "The user was created."),
    description="Idempotent: 201 when created, 200 when updated.",
)
async def upsert_user(
    external_id: ExternalIdPath,
    data: schemas.UserUpsert,
    tenant: Tenant,
    service: ServerTenants,
    response: Response,
) -> schemas.ChatUserDetail:
    user, created = await service.upsert_user(tenant, external_id, data)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return schemas.ChatUserDetail.model_validate(user)


@server_router.get("/users/{external_id}", response_model=schemas.ChatUserDetail, summary="Get a user")
async def server_get_user(
    external_id: ExternalIdPath, tenant: Tenant, service: ServerTenants
) -> schemas.ChatUserDetail:
    return schemas.ChatUserDetail.model_validate(await service.get_user(tenant, external_id))


@server_router.post(
    "/users/{external_id}/tokens",
    response_model=schemas.UserToken,
    status_code=201,
    summary="Mint a user token for a client",
    description="Short-lived (`ttl`, default PENTAD_CHAT__USER_TOKEN_TTL). Hand it to the user's client.",
)
async def create_user_token(
    request: Request,
    external_id: ExternalIdPath,
    tenant: Tenant,
    service: ServerTenants,
    data: schemas.UserTokenCreate | None = None,
) -> schemas.UserToken:
    user = await service.get_user(tenant, external_id)
    if user.deactivated_at is not None:
        raise NotFound("This user is deactivated.", code="chat_user_deactivated")
    return mint_user_token(get_platform(request), user, data.ttl if data else None)


@server_router.post(
    "/users/{external_id}/revoke-tokens", status_code=204, summary="Revoke all of a user's tokens"
)
async def revoke_user_tokens(external_id: ExternalIdPath, tenant: Tenant, service: ServerTenants) -> None:
    await service.revoke_user_tokens(tenant, external_id)


@server_router.post(
    "/users/{external_id}/deactivate", response_model=schemas.ChatUserDetail, summary="Deactivate"
)
async def deactivate_user(
    external_id: ExternalIdPath, tenant: Tenant, service: ServerTenants
) -> schemas.ChatUserDetail:
    return schemas.ChatUserDetail.model_validate(
        await service.set_user_active(tenant, external_id, active=False)
    )


@server_router.post(
    "/users/{external_id}/reactivate", response_model=schemas.ChatUserDetail, summary="Reactivate"
)
async def reactivate_user(
    external_id: ExternalIdPath, tenant: Tenant, service: ServerTenants
) -> schemas.ChatUserDetail:
    return schemas.ChatUserDetail.model_validate(
        await service.set_user_active(tenant, external_id, active=True)
    )


# ---------------------------------------------------------------- server API: channels, messages, moderation


async def _acting(
    request: Request, session: AsyncSession, tenant: ChatTenant, external_id: str
) -> ChatContext:
    """A ChatContext acting for one of the tenant's users with the backend's full channel permissions."""
    service = TenantService(session, get_platform(request), request_actor(request, request.state.principal))
    user = await service.get_user(tenant, external_id)
    actor = ChatActor(user, tenant, request.state.principal, elevated=True)
    return ChatContext(session, get_platform(request), actor, request_actor(request, request.state.principal))


@server_router.post(
    "/channels",
    response_model=schemas.ChannelState,
    status_code=201,
    summary="Create a channel for users",
    responses=also_answers(200, schemas.ChannelState, "The direct channel existed already."),
)
async def server_create_channel(
    request: Request, data: schemas.ServerChannelCreate, tenant: Tenant, session: Session, response: Response
) -> schemas.ChannelState:
    chat = await _acting(request, session, tenant, data.created_by)
    listed = [
        (await repository.get_user_by_external_id(session, tenant.id, external_id))
        for external_id in data.members
    ]
    if any(m is None for m in listed):
        raise NotFound("A listed member does not exist; upsert users first.", code="chat_user_not_found")
    create = schemas.ChannelCreate(
        kind=data.kind,
        name=data.name,
        topic=data.topic,
        data=data.data,
        members=[m.id for m in listed if m is not None],
    )
    channel, created = await channels.do_create_channel(chat, create)
    if not created:
        response.status_code = 200
    return channel


class ServerMembers(BaseModel):
    user_ids: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        min_length=1, max_length=500, description="External ids."
    )
    role: schemas.MemberRole = "member"


@server_router.post(
    "/channels/{channel_id}/members",
    response_model=list[schemas.Member],
    status_code=201,
    summary="Add members",
)
async def server_add_members(
    request: Request, channel_id: uuid.UUID, data: ServerMembers, tenant: Tenant, session: Session
) -> list[schemas.Member]:
    channel = await repository.get_channel(session, channel_id)
    if channel is None or channel.tenant_id != tenant.id or channel.created_by is None:
        raise NotFound("No such channel.", code="channel_not_found")
    owner = await repository.get_user(session, channel.created_by)
    assert owner is not None
    chat = await _acting(request, session, tenant, owner.external_id)
    ids = []
    for external_id in data.user_ids:
        user = await repository.get_user_by_external_id(session, tenant.id, external_id)
        if user is None:
            raise NotFound(f"No user {external_id!r}; upsert users first.", code="chat_user_not_found")
        ids.append(user.id)
    return await members.do_add_members(chat, channel_id, schemas.MemberAdd(user_ids=ids, role=data.role))


class ServerMessage(schemas.MessageCreate):
    user_id: Annotated[str, Field(min_length=1, max_length=128)] = Field(
        description="External id of the sender."
    )


@server_router.post(
    "/channels/{channel_id}/messages",
    response_model=schemas.Message,
    status_code=201,
    summary="Send a message as one of your users",
    responses=also_answers(200, schemas.Message, "A retry with a known `client_id`: the original message."),
    description="The user must be a member. Idempotent with `client_id` like the client API.",
)
async def server_send_message(
    request: Request,
    channel_id: uuid.UUID,
    data: ServerMessage,
    tenant: Tenant,
    session: Session,
    response: Response,
) -> schemas.Message:
    chat = await _acting(request, session, tenant, data.user_id)
    message, created = await send.do_send_message(
        chat, channel_id, schemas.MessageCreate(**data.model_dump(exclude={"user_id"}))
    )
    if not created:
        response.status_code = 200
    return message


class TenantRestrictionCreate(BaseModel):
    user_id: Annotated[str, Field(min_length=1, max_length=128)] = Field(description="External id.")
    kind: Literal["ban", "mute"]
    reason: Annotated[str, Field(max_length=500)] = ""
    duration: int | None = Field(None, ge=1, le=31_536_000, description="Seconds; unset: until lifted.")


@server_router.get(
    "/restrictions", response_model=list[schemas.Restriction], summary="Tenant-wide bans and mutes"
)
async def list_tenant_restrictions(tenant: Tenant, session: Session) -> list[schemas.Restriction]:
    return [
        schemas.Restriction.model_validate(r)
        for r in await repository.list_restrictions(session, tenant.id, None)
    ]


@server_router.post(
    "/restrictions",
    response_model=schemas.Restriction,
    status_code=201,
    summary="Ban or mute a user tenant-wide",
)
async def create_tenant_restriction(
    data: TenantRestrictionCreate, tenant: Tenant, service: ServerTenants
) -> schemas.Restriction:
    restriction = await service.restrict_tenant_wide(
        tenant, data.user_id, data.kind, reason=data.reason, duration=data.duration
    )
    return schemas.Restriction.model_validate(restriction)


@server_router.delete(
    "/restrictions/{restriction_id}", status_code=204, summary="Lift a tenant-wide ban or mute"
)
async def delete_tenant_restriction(
    restriction_id: uuid.UUID, tenant: Tenant, service: ServerTenants
) -> None:
    await service.lift_tenant_restriction(tenant, restriction_id)
