"""Incoming webhooks: a secret URL that posts into one channel as a bot user
(`/api/chat/hooks/<id>/<secret>`).

A channel manager creates one; the URL is shown once (only the secret's SHA-256 is stored). A post goes
through actions.send.do_send_message as the bot, so Markdown, blocked words, mutes, slow mode and idempotency
with client_id apply as to anyone. Posts are rate-limited per hook.
"""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.chat import repository, schemas
from pentad.apps.chat.access import ChatActor, require_permission
from pentad.apps.chat.actions import members, send
from pentad.apps.chat.actions.context import ChatContext
from pentad.apps.chat.models import ChatChannel, ChatIncomingHook, ChatUser
from pentad.apps.chat.permissions import CHANNEL_MANAGE, CHAT_USE
from pentad.apps.chat.tenancy import USER_PRINCIPAL
from pentad.apps.chat.views import user_view
from pentad.core import audit
from pentad.core.audit import Actor
from pentad.core.auth import tokens
from pentad.core.auth.principal import Principal
from pentad.core.db.base import utcnow
from pentad.core.errors import BadRequest, NotFound
from pentad.core.platform import Platform

POSTS_PER_HOOK = "60/minute"
_BOT_HANDLE_CHARS = re.compile(r"[^a-z0-9_\-]+")


class IncomingHookCreate(schemas.Strict):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] = Field(
        description="Also the name of the bot user that posts."
    )


class IncomingHook(BaseModel):
    id: uuid.UUID
    channel_id: uuid.UUID
    name: str
    bot: schemas.ChatUser
    created_by: uuid.UUID | None
    created_at: datetime


class IncomingHookCreated(IncomingHook):
    url: str = Field(description='POST {"text": …} here to post; shown only now. Keep it secret.')


class HookMessage(schemas.Strict):
    text: str = Field(min_length=1, max_length=100_000, description="Markdown, like any message.")
    client_id: schemas.ClientId | None = Field(
        None, description="Your id for this post: a retry with the same id does not post twice."
    )


class IncomingHookNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("No such incoming webhook, or it was revoked.", code="hook_not_found")


def _hook_view(hook: ChatIncomingHook, bot: ChatUser) -> IncomingHook:
    return IncomingHook(
        id=hook.id,
        channel_id=hook.channel_id,
        name=hook.name,
        bot=user_view(bot),
        created_by=hook.created_by,
        created_at=hook.created_at,
    )


class IncomingHookService:
    """Incoming webhooks of a channel, managed by whoever may manage the channel."""

    def __init__(self, chat: ChatContext) -> None:
        self.chat = chat
        self.session = chat.session

    async def _managed_channel(self, channel_id: uuid.UUID) -> ChatChannel:
        access = await self.chat.access(channel_id)
        require_permission(access, CHANNEL_MANAGE)
        return access.channel

    async def list(self, channel_id: uuid.UUID) -> list[IncomingHook]:
        await self._managed_channel(channel_id)
        rows = await repository.list_incoming_hooks(self.session, channel_id)
        return [_hook_view(hook, bot) for hook, bot in rows]

    async def create(self, channel_id: uuid.UUID, data: IncomingHookCreate) -> IncomingHookCreated:
        channel = await self._managed_channel(channel_id)
        if channel.kind == "direct":
            raise BadRequest("Direct channels keep their two members.", code="direct_channel")
        bot = await self._bot(data.name)
        if not await repository.member_user_ids(self.session, channel.id, [bot.id]):
            await members.do_add_members(
                self.chat, channel.id, schemas.MemberAdd(user_ids=[bot.id], role="member")
            )
        secret = secrets.token_urlsafe(32)
        hook = ChatIncomingHook(
            channel_id=channel.id,
            bot_user_id=bot.id,
            name=data.name,
            secret_hash=tokens.hash_secret(secret),
            created_by=self.chat.actor.user_id,
        )
        self.session.add(hook)
        await self.session.flush()
        audit.record(
            self.session,
            self.chat.audit_actor,
            "chat.incoming_hook_created",
            resource_type="chat.channel",
            resource_id=channel.id,
            hook_id=str(hook.id),
            name=hook.name,
        )
        base_url = self.chat.platform.settings.server.base_url.rstrip("/")
        url = f"{base_url}/api/chat/hooks/{hook.id}/{secret}"
        return IncomingHookCreated(**_hook_view(hook, bot).model_dump(), url=url)

    async def _bot(self, name: str) -> ChatUser:
        """The tenant's bot user of this name: reused by every hook of that name, created on first use."""
        tenant_id = self.chat.actor.tenant.id
        slug = _BOT_HANDLE_CHARS.sub("-", name.lower()).strip("-")[:50] or "hook"
        external_id = f"bot:hook-{slug}"
        found = await repository.get_user_by_external_id(self.session, tenant_id, external_id)
        if found is not None and found.role == "bot" and found.deactivated_at is None:
            return found
        if found is not None:
            external_id = f"{external_id}-{uuid.uuid4().hex[:8]}"
        handle = f"{slug}-bot"
        if await repository.handle_taken(self.session, tenant_id, handle, None):
            handle = f"{handle}-{uuid.uuid4().hex[:6]}"
        bot = ChatUser(
            tenant_id=tenant_id, external_id=external_id, handle=handle, name=name, role="bot", data={}
        )
        try:
            async with self.session.begin_nested():
                self.session.add(bot)
        except IntegrityError:
            # A concurrent create of a hook with the same name made the bot first.
            raced = await repository.get_user_by_external_id(self.session, tenant_id, external_id)
            if raced is None:
                raise
            return raced
        return bot

    async def revoke(self, channel_id: uuid.UUID, hook_id: uuid.UUID) -> None:
        await self._managed_channel(channel_id)
        hook = await repository.get_incoming_hook(self.session, hook_id)
        if hook is None or hook.channel_id != channel_id or hook.revoked_at is not None:
            raise IncomingHookNotFound()
        hook.revoked_at = utcnow()
        await self.session.flush()
        audit.record(
            self.session,
            self.chat.audit_actor,
            "chat.incoming_hook_revoked",
            resource_type="chat.channel",
            resource_id=channel_id,
            hook_id=str(hook.id),
        )


async def post_through_hook(
    session: AsyncSession,
    platform: Platform,
    hook_id: uuid.UUID,
    secret: str,
    data: HookMessage,
    request: Actor,
) -> tuple[schemas.Message, bool]:
    """Post `data` as the hook's bot, through the same rules as any message (Markdown, blocked words,
    idempotency with client_id); (message, created). `request` says where the call came from."""
    hook = await repository.get_incoming_hook(session, hook_id)
    if hook is None or hook.revoked_at is not None or not tokens.secret_matches(secret, hook.secret_hash):
        raise IncomingHookNotFound()
    await platform.limiter.enforce(POSTS_PER_HOOK, "chat-incoming-hook", str(hook.id))
    bot = await repository.get_user(session, hook.bot_user_id)
    tenant = await repository.get_tenant(session, bot.tenant_id) if bot else None
    if bot is None or bot.deactivated_at is not None or tenant is None or tenant.disabled_at is not None:
        raise IncomingHookNotFound()
    principal = Principal(
        kind=USER_PRINCIPAL,
        id=bot.id,
        label=f"{tenant.slug}:{bot.external_id}",
        roles=frozenset(),
        permissions=frozenset({CHAT_USE.key}),
        via="chat_incoming_hook",
        credential_id=hook.id,
        display_name=bot.name,
    )
    actor = ChatActor(bot, tenant, principal)
    chat = ChatContext(session, platform, actor, principal.actor(request.ip_address, request.request_id))
    return await send.do_send_message(
        chat, hook.channel_id, schemas.MessageCreate(text=data.text, client_id=data.client_id)
    )
