"""Typed results and realtime events of the Pentad chat API, as the SDK receives them.

They mirror the server's schemas (`pentad.apps.chat.schemas`, `events.py`) without importing them: this
package is what an embedding product installs. Unknown fields are ignored, so a newer server that adds
fields does not break an older SDK; an event type this SDK does not know arrives as `UnknownEvent`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError


class Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


# ---------------------------------------------------------------- tenants, users, tokens


class Tenant(Model):
    id: uuid.UUID
    slug: str
    name: str
    blocked_words: list[str]
    disabled_at: datetime | None
    created_at: datetime


class ChatUser(Model):
    id: uuid.UUID
    external_id: str
    handle: str
    name: str
    image_url: str | None
    role: str
    presence: str
    last_seen_at: datetime | None


class ChatUserDetail(ChatUser):
    """A user as the tenant's backend sees it."""

    email: str | None
    data: dict[str, Any]
    deactivated_at: datetime | None
    created_at: datetime


class UserToken(Model):
    token: str = Field(description="`pcu_…`: hand it to the user's client (ChatClient).")
    expires_at: datetime
    user: ChatUser


# ---------------------------------------------------------------- channels and members


class Channel(Model):
    id: uuid.UUID
    kind: str
    name: str
    topic: str
    data: dict[str, Any]
    created_by: uuid.UUID | None
    last_seq: int
    last_message_at: datetime | None
    slow_mode_seconds: int
    archived_at: datetime | None
    created_at: datetime


class ChannelState(Channel):
    """A channel as one member sees it, with read state."""

    role: str | None
    last_read_seq: int
    unread_count: int
    unread_mentions: int
    member_count: int
    members: list[ChatUser] = Field(default_factory=list)


class Member(Model):
    user: ChatUser
    role: str
    last_read_seq: int
    last_delivered_seq: int
    last_read_at: datetime | None
    joined_at: datetime


class Restriction(Model):
    id: uuid.UUID
    channel_id: uuid.UUID | None
    user_id: uuid.UUID
    kind: str
    reason: str
    expires_at: datetime | None
    created_by: uuid.UUID | None
    created_at: datetime


# ---------------------------------------------------------------- messages


class AttachmentRef(Model):
    id: uuid.UUID
    filename: str
    content_type: str
    size: int
    width: int | None
    height: int | None
    url: str
    thumbnail_url: str | None


class ReactionCount(Model):
    emoji: str
    count: int
    user_ids: list[uuid.UUID]


class Message(Model):
    id: uuid.UUID
    channel_id: uuid.UUID
    seq: int = Field(description="Position in the channel, assigned when sent.")
    revision: int = Field(description="Channel sequence number of the last change to this message.")
    client_id: str | None
    user: ChatUser | None
    parent_id: uuid.UUID | None
    type: str
    text: str
    html: str
    payload: dict[str, Any] | None
    mentioned_user_ids: list[uuid.UUID]
    mentions_channel: bool
    attachments: list[AttachmentRef]
    reactions: list[ReactionCount]
    reply_count: int
    last_reply_at: datetime | None
    pinned_at: datetime | None
    edited_at: datetime | None
    deleted_at: datetime | None
    created_at: datetime


class MessagePage(Model):
    messages: list[Message] = Field(description="Oldest first.")
    has_more: bool
    last_seq: int


class SyncPage(Model):
    messages: list[Message] = Field(description="Ordered by revision.")
    has_more: bool = Field(description="More changes wait: ask again with `since=next_since`.")
    next_since: int = Field(description="The next page's `since`: every change up to it has been sent.")
    last_seq: int = Field(description="The channel's newest sequence number, not the end of this page.")


class MessageEdit(Model):
    text: str
    payload: dict[str, Any] | None
    edited_by: uuid.UUID | None
    created_at: datetime


# ---------------------------------------------------------------- realtime events


class MessageEvent(Model):
    """A message was posted, edited (or pinned, or its thread grew) or deleted.

    `synced` is True when the SDK rebuilt the event from `GET /sync` after a gap or a reconnection instead
    of receiving it live: it then carries the message as it is now, and a reply's parent comes as its own
    `message.updated` instead of in `parent`."""

    type: Literal["message.new", "message.updated", "message.deleted"]
    channel_id: uuid.UUID
    seq: int
    message: Message
    parent: Message | None = None
    synced: bool = False


class ReactionEvent(Model):
    type: Literal["reaction.added", "reaction.removed"]
    channel_id: uuid.UUID
    seq: int
    user_id: uuid.UUID
    emoji: str
    message: Message


class ReadEvent(Model):
    type: Literal["read.updated"]
    channel_id: uuid.UUID
    user_id: uuid.UUID
    last_read_seq: int
    last_delivered_seq: int


class TypingEvent(Model):
    type: Literal["typing.start", "typing.stop"]
    channel_id: uuid.UUID
    user: ChatUser
    parent_id: uuid.UUID | None = None


class MemberEvent(Model):
    type: Literal["member.added", "member.removed", "member.updated"]
    channel_id: uuid.UUID
    user: ChatUser
    role: str | None


class ChannelEvent(Model):
    type: Literal["channel.updated", "channel.archived", "channel.unarchived"]
    channel: Channel


class PresenceEvent(Model):
    type: Literal["presence.updated"]
    user: ChatUser


class UserChannelEvent(Model):
    """On your own topic: a channel appeared for you, went away, or you were invited to it."""

    type: Literal["channel.added", "channel.removed", "invite.received"]
    channel: Channel


class MentionEvent(Model):
    type: Literal["mention.new"]
    channel_id: uuid.UUID
    message: Message


class ConnectionEvent(Model):
    """The SDK's own: the realtime connection opened, was lost (it reconnects), or closed for good."""

    type: Literal["connection.state"] = "connection.state"
    state: Literal["connected", "disconnected", "closed"]
    code: int | None = Field(None, description="The WebSocket close code, when the server gave one.")


class UnknownEvent(Model):
    """An event type this version of the SDK does not know (a newer server): its raw data."""

    model_config = ConfigDict(extra="allow")

    type: str


KnownEvent = Annotated[
    MessageEvent
    | ReactionEvent
    | ReadEvent
    | TypingEvent
    | MemberEvent
    | ChannelEvent
    | PresenceEvent
    | UserChannelEvent
    | MentionEvent
    | ConnectionEvent,
    Field(discriminator="type"),
]
ChatEvent = (
    MessageEvent
    | ReactionEvent
    | ReadEvent
    | TypingEvent
    | MemberEvent
    | ChannelEvent
    | PresenceEvent
    | UserChannelEvent
    | MentionEvent
    | ConnectionEvent
    | UnknownEvent
)
SequencedEvent = MessageEvent | ReactionEvent
"""Events that took a channel sequence number: the ones resume and gap detection are about."""

_known_events: TypeAdapter[KnownEvent] = TypeAdapter(KnownEvent)


def parse_event(data: dict[str, Any]) -> ChatEvent:
    """The typed event of a realtime payload; UnknownEvent for a type this SDK does not know."""
    try:
        return _known_events.validate_python(data)
    except ValidationError as exc:
        if [error["type"] for error in exc.errors()] != ["union_tag_invalid"]:
            raise
        return UnknownEvent.model_validate(data)
