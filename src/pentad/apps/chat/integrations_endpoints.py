"""Routes of the chat integrations: a tenant's outgoing webhooks (server API, `pck_` key), a channel's
incoming webhooks (channel managers), and the public URL incoming webhooks post to."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.chat import schemas
from pentad.apps.chat.actions.context import ChatContext
from pentad.apps.chat.dependencies import chat_context, server_tenant
from pentad.apps.chat.incoming_hooks import (
    HookMessage,
    IncomingHook,
    IncomingHookCreate,
    IncomingHookCreated,
    IncomingHookService,
    post_through_hook,
)
from pentad.apps.chat.models import ChatTenant
from pentad.apps.chat.webhooks import Webhook, WebhookCreate, WebhookService, WebhookUpdate, WebhookWithSecret
from pentad.core.auth.dependencies import db_session, request_actor
from pentad.core.errors import problem_responses
from pentad.core.platform import get_platform
from pentad.core.policy import route_policy

router = APIRouter(
    prefix="/api/chat",
    tags=["chat"],
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 429),
)

Session = Annotated[AsyncSession, Depends(db_session)]
ChannelId = Annotated[uuid.UUID, Path(description="Channel id.")]


async def webhook_service(
    request: Request,
    tenant: Annotated[ChatTenant, Depends(server_tenant)],
    session: Session,
) -> WebhookService:
    return WebhookService(
        session, get_platform(request), tenant, request_actor(request, request.state.principal)
    )


async def incoming_hook_service(chat: Annotated[ChatContext, Depends(chat_context)]) -> IncomingHookService:
    return IncomingHookService(chat)


Webhooks = Annotated[WebhookService, Depends(webhook_service)]
IncomingHooks = Annotated[IncomingHookService, Depends(incoming_hook_service)]


# ---------------------------------------------------------------- outgoing webhooks (server API)


@router.get(
    "/server/webhooks", response_model=list[Webhook], tags=["chat server API"], summary="Your webhooks"
)
async def list_webhooks(service: Webhooks) -> list[Webhook]:
    return await service.list()


@router.post(
    "/server/webhooks",
    response_model=WebhookWithSecret,
    status_code=201,
    tags=["chat server API"],
    summary="Register a webhook (its secret is shown once)",
    description="Events of your chat are POSTed to `url` as JSON `{id, type, created_at, data}` (`data`: the "
    "message for message.*, the reaction event with its message for reaction.*), signed with the secret: "
    '`Pentad-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`; `Pentad-Delivery` repeats the '
    "event id on retries. Anything but 2xx is retried with backoff. The URL must be https and resolve to "
    "public addresses (400 `webhook_destination_refused` otherwise).",
)
async def create_webhook(data: WebhookCreate, service: Webhooks) -> WebhookWithSecret:
    return await service.create(data)


@router.get(
    "/server/webhooks/{webhook_id}", response_model=Webhook, tags=["chat server API"], summary="A webhook"
)
async def get_webhook(webhook_id: uuid.UUID, service: Webhooks) -> Webhook:
    return await service.get(webhook_id)


@router.patch(
    "/server/webhooks/{webhook_id}",
    response_model=Webhook,
    tags=["chat server API"],
    summary="Change a webhook's URL or events, or pause it",
)
async def update_webhook(webhook_id: uuid.UUID, data: WebhookUpdate, service: Webhooks) -> Webhook:
    return await service.update(webhook_id, data)


@router.delete(
    "/server/webhooks/{webhook_id}", status_code=204, tags=["chat server API"], summary="Delete a webhook"
)
async def delete_webhook(webhook_id: uuid.UUID, service: Webhooks) -> None:
    await service.delete(webhook_id)


@router.post(
    "/server/webhooks/{webhook_id}/rotate-secret",
    response_model=WebhookWithSecret,
    tags=["chat server API"],
    summary="Replace a webhook's secret (the new one is shown once)",
)
async def rotate_webhook_secret(webhook_id: uuid.UUID, service: Webhooks) -> WebhookWithSecret:
    return await service.rotate_secret(webhook_id)


# ---------------------------------------------------------------- incoming webhooks


@router.get(
    "/channels/{channel_id}/incoming-hooks",
    response_model=list[IncomingHook],
    summary="A channel's incoming webhooks",
)
async def list_incoming_hooks(channel_id: ChannelId, service: IncomingHooks) -> list[IncomingHook]:
    return await service.list(channel_id)


@router.post(
    "/channels/{channel_id}/incoming-hooks",
    response_model=IncomingHookCreated,
    status_code=201,
    summary="Create an incoming webhook (its URL is shown once)",
    description="Anyone holding the URL can post into the channel as the hook's bot user.",
)
async def create_incoming_hook(
    channel_id: ChannelId, data: IncomingHookCreate, service: IncomingHooks
) -> IncomingHookCreated:
    return await service.create(channel_id, data)


@router.delete(
    "/channels/{channel_id}/incoming-hooks/{hook_id}",
    status_code=204,
    summary="Revoke an incoming webhook",
)
async def revoke_incoming_hook(channel_id: ChannelId, hook_id: uuid.UUID, service: IncomingHooks) -> None:
    await service.revoke(channel_id, hook_id)


@router.post(
    "/hooks/{hook_id}/{secret}",
    response_model=schemas.Message,
    status_code=201,
    summary="Post through an incoming webhook",
    description="No credentials: the URL is the credential. 201 when posted, 200 when `client_id` repeats "
    "an earlier post; 404 for a wrong or revoked URL.",
)
@route_policy(public="the secret in the URL is the credential")
async def post_to_hook(
    request: Request,
    hook_id: uuid.UUID,
    secret: Annotated[str, Path(max_length=100)],
    data: HookMessage,
    session: Session,
    response: Response,
) -> schemas.Message:
    message, created = await post_through_hook(
        session, get_platform(request), hook_id, secret, data, request_actor(request)
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return message
