"""Who acts, where: what every chat action takes, and the checks several areas share."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.chat import repository
from pentad.apps.chat.access import ChannelAccess, ChatActor, channel_access
from pentad.apps.chat.exceptions import ChannelNotFound, ChatUserNotFound, MessageNotFound
from pentad.apps.chat.models import ChatMessage, ChatUser
from pentad.apps.chat.settings import ChatSettings
from pentad.apps.chat.views import MessageViews
from pentad.core.audit import Actor
from pentad.core.errors import PermissionDenied
from pentad.core.platform import Platform


class ChatContext:
    """One request's (or job's) chat actor with its session and platform. It holds no rules: those are the
    action modules' functions, which take it as their first argument."""

    __slots__ = ("actor", "audit_actor", "platform", "session", "settings", "views")

    def __init__(
        self, session: AsyncSession, platform: Platform, actor: ChatActor, audit_actor: Actor
    ) -> None:
        self.session = session
        self.platform = platform
        self.actor = actor
        self.audit_actor = audit_actor
        self.settings = platform.app_settings(ChatSettings)
        self.views = MessageViews(session, platform)

    async def access(self, channel_id: uuid.UUID, *, with_webhooks: bool = False) -> ChannelAccess:
        return await channel_access(
            self.session, self.platform, self.actor, channel_id, with_webhooks=with_webhooks
        )


async def check_message_access(chat: ChatContext, message_id: uuid.UUID) -> tuple[ChatMessage, ChannelAccess]:
    """A message and the caller's standing in its channel; MessageNotFound if they may not read it."""
    message = await repository.get_message(chat.session, message_id)
    if message is None:
        raise MessageNotFound()
    try:
        access = await chat.access(message.channel_id)
    except ChannelNotFound:
        raise MessageNotFound() from None
    return message, access


async def check_tenant_users(chat: ChatContext, user_ids: Sequence[uuid.UUID]) -> list[ChatUser]:
    """The active users of the caller's tenant with these ids, in order, without repeats."""
    found = await repository.get_users(chat.session, user_ids)
    users = []
    for user_id in dict.fromkeys(user_ids):
        user = found.get(user_id)
        if user is None or user.tenant_id != chat.actor.tenant.id or user.deactivated_at is not None:
            raise ChatUserNotFound()
        users.append(user)
    return users


async def check_not_banned_in_tenant(chat: ChatContext) -> None:
    banned = await repository.banned_channel_ids(chat.session, chat.actor.tenant.id, chat.actor.user_id)
    if None in banned:
        raise PermissionDenied("You are banned from this chat.", code="banned")
