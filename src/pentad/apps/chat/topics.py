"""Authorisation of the chat realtime topics (see events.py for what they carry), and ending it at once
when a membership ends."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.chat.access import channel_access
from pentad.apps.chat.events import channel_topic
from pentad.apps.chat.models import ChatUser
from pentad.apps.chat.permissions import CHAT_USE
from pentad.apps.chat.tenancy import actor_for
from pentad.core.errors import AppError
from pentad.core.realtime.publish import recheck
from pentad.core.realtime.topics import TopicAccess, TopicSpec


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


async def _may_read_channel(access: TopicAccess) -> bool:
    """Subscribe and presence: whoever may read the channel (members, or anyone in the tenant if public),
    never the banned. Clients do not publish here: everything on the topic comes from the server."""
    channel_id = _uuid(access.params["channel_id"])
    if channel_id is None or access.action == "publish":
        return False
    try:
        actor = await actor_for(access.session, access.platform, access.principal)
        await channel_access(access.session, access.platform, actor, channel_id)
    except AppError:
        return False
    return True


async def _is_own_user_topic(access: TopicAccess) -> bool:
    user_id = _uuid(access.params["user_id"])
    if user_id is None or access.action != "subscribe":
        return False
    try:
        actor = await actor_for(access.session, access.platform, access.principal)
    except AppError:
        return False
    return actor.user_id == user_id


# CHAT_USE is what every client-API route reading channels and messages requires (dependencies.chat_actor).
TOPICS = (
    TopicSpec(
        "chat.channel.{channel_id}", _may_read_channel, history_size=500, presence=True, requires=CHAT_USE
    ),
    TopicSpec("chat.user.{user_id}", _is_own_user_topic, history_size=100, requires=CHAT_USE),
)


def recheck_channel_reader(session: AsyncSession, channel_id: uuid.UUID, user: ChatUser) -> None:
    """Once the change commits, `user`'s sockets on the channel (through a user token or the linked Pentad
    account) are authorised again on every node: one removed, who left or was banned stops receiving the
    channel at once, as REST refuses at once."""
    recheck(session, (user.id, user.pentad_user_id), channel_topic(channel_id))
