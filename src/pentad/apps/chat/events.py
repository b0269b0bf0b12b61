"""Realtime events of the chat app and who may subscribe to their topics.

`chat.channel.{channel_id}`: everything that happens in a channel, for anyone who may read it. Events that
change a message carry `seq`, the channel sequence number they took: a client that sees `seq` jump by more
than one missed something and calls `GET /api/chat/channels/{id}/sync?since=<last seq seen>`.
`chat.user.{user_id}`: one user's own events (added to a channel, invited, mentioned), for that user only.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.chat.models import ChatMessage
from pentad.apps.chat.schemas import Channel, ChatUser, Message
from pentad.core.events import DomainEvent, emit


def channel_topic(channel_id: uuid.UUID) -> str:
    return f"chat.channel.{channel_id}"


def user_topic(user_id: uuid.UUID) -> str:
    return f"chat.user.{user_id}"


MessageChange = Literal["message.new", "message.updated", "message.deleted"]
ChannelChange = Literal["channel.updated", "channel.archived", "channel.unarchived"]
MemberChange = Literal["member.added", "member.removed", "member.updated"]
UserChannelChange = Literal["channel.added", "channel.removed", "invite.received"]


class MessageEvent(BaseModel):
    type: MessageChange
    channel_id: uuid.UUID
    seq: int
    message: Message
    parent: Message | None = None


class ReactionEvent(BaseModel):
    type: Literal["reaction.added", "reaction.removed"]
    channel_id: uuid.UUID
    seq: int
    user_id: uuid.UUID
    emoji: str
    message: Message


class ReadEvent(BaseModel):
    type: Literal["read.updated"] = "read.updated"
    channel_id: uuid.UUID
    user_id: uuid.UUID
    last_read_seq: int
    last_delivered_seq: int


class TypingEvent(BaseModel):
    type: Literal["typing.start", "typing.stop"]
    channel_id: uuid.UUID
    user: ChatUser
    parent_id: uuid.UUID | None = None


class MemberEvent(BaseModel):
    type: MemberChange
    channel_id: uuid.UUID
    user: ChatUser
    role: str | None


class ChannelEvent(BaseModel):
    type: ChannelChange
    channel: Channel


class PresenceEvent(BaseModel):
    type: Literal["presence.updated"] = "presence.updated"
    user: ChatUser


class UserChannelEvent(BaseModel):
    """On the user's own topic: a channel appeared or went away for them."""

    type: UserChannelChange
    channel: Channel


class MentionEvent(BaseModel):
    type: Literal["mention.new"] = "mention.new"
    channel_id: uuid.UUID
    message: Message


class MessageSent(BaseModel):
    """Domain event `chat.message_sent` (core/events.py), for other apps: a message was stored."""

    tenant_id: uuid.UUID
    channel_id: uuid.UUID
    message_id: uuid.UUID
    seq: int
    user_id: uuid.UUID | None
    parent_id: uuid.UUID | None


MESSAGE_SENT = DomainEvent("chat.message_sent", MessageSent, "A message was stored in a channel.")
DOMAIN_EVENTS = [MESSAGE_SENT]


async def emit_message_sent(session: AsyncSession, tenant_id: uuid.UUID, message: ChatMessage) -> None:
    """Tell subscribing apps, once the send commits, that `message` was stored."""
    event = MessageSent(
        tenant_id=tenant_id,
        channel_id=message.channel_id,
        message_id=message.id,
        seq=message.seq,
        user_id=message.user_id,
        parent_id=message.parent_id,
    )
    await emit(session, MESSAGE_SENT.name, event)
