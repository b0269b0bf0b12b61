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

from pentad.apps.chat.schemas import Channel, ChatUser, Message


def channel_topic(channel_id: uuid.UUID) -> str:
    return f"chat.channel.{channel_id}"


def user_topic(user_id: uuid.UUID) -> str:
    return f"chat.user.{user_id}"


class MessageEvent(BaseModel):
    type: Literal["message.new", "message.updated", "message.deleted"]
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
    type: Literal["member.added", "member.removed", "member.updated"]
    channel_id: uuid.UUID
    user: ChatUser
    role: str | None


class ChannelEvent(BaseModel):
    type: Literal["channel.updated", "channel.archived", "channel.unarchived"]
    channel: Channel


class PresenceEvent(BaseModel):
    type: Literal["presence.updated"] = "presence.updated"
    user: ChatUser


class UserChannelEvent(BaseModel):
    """On the user's own topic: a channel appeared or went away for them."""

    type: Literal["channel.added", "channel.removed", "invite.received"]
    channel: Channel


class MentionEvent(BaseModel):
    type: Literal["mention.new"] = "mention.new"
    channel_id: uuid.UUID
    message: Message
