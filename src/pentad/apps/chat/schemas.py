"""Request and response bodies of the chat REST API (server API and client API)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

MAX_SEQ = 2**62
"""Largest sequence number or offset accepted: beyond every database's 64-bit integers' reach."""

ChannelKind = Literal["public", "private", "direct", "group"]
MemberRole = Literal["owner", "moderator", "member"]
UserRole = Literal["user", "moderator", "admin", "bot"]
Presence = Literal["online", "away", "offline"]

ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@\-]+$")]
Handle = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]*[A-Za-z0-9_\-]$")
]
ClientId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
Emoji = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\s/]+$")]
MessageType = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.\-]*$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- tenants and server keys


class TenantCreate(Strict):
    slug: Annotated[str, StringConstraints(min_length=2, max_length=64, pattern=r"^[a-z0-9][a-z0-9\-]*$")]
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class TenantUpdate(Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    blocked_words: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] | None = Field(
        None,
        max_length=1000,
        description="Messages containing any of these words (case-insensitive) are refused.",
    )
    disabled: bool | None = None


class Tenant(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    slug: str
    name: str
    blocked_words: list[str]
    disabled_at: datetime | None
    created_at: datetime


class ServerKeyCreate(Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]


class ServerKey(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    hint: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ServerKeyCreated(ServerKey):
    key: str = Field(description="The key itself, shown only now: `pck_…`. Send it as a Bearer token.")


# ---------------------------------------------------------------- users and tokens


class UserUpsert(Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    handle: Handle | None = Field(None, description="Name used in @mentions; default: from the external id.")
    image_url: Annotated[str, StringConstraints(max_length=1000, pattern=r"^https?://")] | None = None
    email: Annotated[str, StringConstraints(max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")] | None = Field(
        None, description="Where unread-mention digests go; unset: no digests."
    )
    role: UserRole = "user"
    data: dict[str, Any] = Field(default_factory=dict, description="Free JSON for the embedding product.")


class ChatUser(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    external_id: str
    handle: str
    name: str
    image_url: str | None
    role: str
    presence: str
    last_seen_at: datetime | None


class ChatUserDetail(ChatUser):
    email: str | None
    data: dict[str, Any]
    deactivated_at: datetime | None
    created_at: datetime


class UserTokenCreate(Strict):
    ttl: int | None = Field(
        None, ge=60, le=2_592_000, description="Seconds; default PENTAD_CHAT__USER_TOKEN_TTL."
    )


class UserToken(BaseModel):
    token: str = Field(description="`pcu_…`: the user's Bearer token for the client API and /ws.")
    expires_at: datetime
    user: ChatUser


# ---------------------------------------------------------------- channels and members


class ChannelCreate(Strict):
    kind: ChannelKind = "public"
    name: Annotated[str, StringConstraints(max_length=200)] = ""
    topic: Annotated[str, StringConstraints(max_length=1000)] = ""
    members: list[uuid.UUID] = Field(
        default_factory=list, max_length=500, description="Chat user ids to add (direct: exactly one other)."
    )
    data: dict[str, Any] = Field(default_factory=dict)


class ServerChannelCreate(Strict):
    kind: ChannelKind = "public"
    name: Annotated[str, StringConstraints(max_length=200)] = ""
    topic: Annotated[str, StringConstraints(max_length=1000)] = ""
    created_by: ExternalId = Field(description="External id of the owner.")
    members: list[ExternalId] = Field(default_factory=list, max_length=500, description="External ids.")
    data: dict[str, Any] = Field(default_factory=dict)


class ChannelUpdate(Strict):
    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    topic: Annotated[str, StringConstraints(max_length=1000)] | None = None
    data: dict[str, Any] | None = None
    slow_mode_seconds: int | None = Field(None, ge=0, le=86_400, description="0 turns slow mode off.")


class Channel(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str
    name: str
    topic: str
    data: dict[str, Any]
    created_by: uuid.UUID | None
    last_seq: int = Field(description="The channel's latest event sequence number.")
    last_message_at: datetime | None
    slow_mode_seconds: int
    archived_at: datetime | None
    created_at: datetime


class ChannelState(Channel):
    """A channel as one member sees it, with read state."""

    role: str | None = Field(description="Your role, or null if you are not a member (public channel).")
    last_read_seq: int
    unread_count: int
    unread_mentions: int
    member_count: int
    members: list[ChatUser] = Field(
        default_factory=list, description="For direct and group channels: everyone in it."
    )


class Member(BaseModel):
    user: ChatUser
    role: str
    last_read_seq: int
    last_delivered_seq: int
    last_read_at: datetime | None
    joined_at: datetime


class MemberAdd(Strict):
    user_ids: list[uuid.UUID] = Field(min_length=1, max_length=500)
    role: MemberRole = "member"


class MemberUpdate(Strict):
    role: MemberRole


class Invite(BaseModel):
    id: uuid.UUID
    channel: Channel
    invited_by: uuid.UUID | None
    created_at: datetime


# ---------------------------------------------------------------- messages


class AttachmentRef(BaseModel):
    id: uuid.UUID
    filename: str
    content_type: str
    size: int
    width: int | None
    height: int | None
    url: str = Field(description="Signed download URL (expires).")
    thumbnail_url: str | None


class ReactionCount(BaseModel):
    emoji: str
    count: int
    user_ids: list[uuid.UUID] = Field(description="The first reactors (up to 20), oldest first.")


class MessageCreate(Strict):
    client_id: ClientId | None = Field(
        None, description="Your id for this send: a retry with the same id returns the original message."
    )
    text: str = Field("", max_length=100_000)
    type: MessageType = Field("text", description="`text`, or a custom type of yours with a JSON payload.")
    payload: dict[str, Any] | None = Field(
        None, description="JSON for custom types (e.g. ciphertext of an end-to-end encrypted message)."
    )
    parent_id: uuid.UUID | None = Field(None, description="Reply in the thread of this message.")
    attachment_ids: list[uuid.UUID] = Field(default_factory=list, max_length=10)
    mentioned_user_ids: list[uuid.UUID] = Field(
        default_factory=list, max_length=100, description="Extra mentions besides @handle in the text."
    )


class MessageUpdate(Strict):
    text: str | None = Field(None, max_length=100_000)
    payload: dict[str, Any] | None = None


class Message(BaseModel):
    id: uuid.UUID
    channel_id: uuid.UUID
    seq: int = Field(description="Position in the channel, assigned when sent; cursors page by it.")
    revision: int = Field(description="Channel sequence of the last change to this message.")
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


class MessagePage(BaseModel):
    messages: list[Message] = Field(description="Oldest first.")
    has_more: bool = Field(description="More exist beyond this page in the direction asked.")
    last_seq: int = Field(description="The channel's latest sequence number now.")


class SyncPage(BaseModel):
    """What changed in a channel since a sequence number (new, edited, deleted, reacted, pinned)."""

    messages: list[Message] = Field(description="Ordered by revision.")
    has_more: bool = Field(description="More changes wait: ask again with `since` = `next_since`.")
    next_since: int = Field(
        description="The cursor: every change with `revision <= next_since` is on this page or an earlier "
        "one. Pass it as the next `since`; once `has_more` is false it is where live events take over."
    )
    last_seq: int = Field(
        description="The channel's latest sequence number now; not the end of this page (page with "
        "`next_since`)."
    )


class MessageEdit(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    text: str
    payload: dict[str, Any] | None
    edited_by: uuid.UUID | None
    created_at: datetime


class ReadUpdate(Strict):
    seq: int = Field(ge=0, le=MAX_SEQ, description="Everything up to and including this seq is read.")


class DeliveredUpdate(Strict):
    seq: int = Field(ge=0, le=MAX_SEQ)


class PresenceUpdate(Strict):
    status: Presence


# ---------------------------------------------------------------- moderation


class RestrictionCreate(Strict):
    user_id: uuid.UUID
    kind: Literal["ban", "mute"]
    reason: Annotated[str, StringConstraints(max_length=500)] = ""
    duration: int | None = Field(None, ge=1, le=31_536_000, description="Seconds; unset: until lifted.")


class Restriction(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    channel_id: uuid.UUID | None
    user_id: uuid.UUID
    kind: str
    reason: str
    expires_at: datetime | None
    created_by: uuid.UUID | None
    created_at: datetime


class ReportCreate(Strict):
    reason: Annotated[str, StringConstraints(max_length=1000)] = ""


class ReportResolve(Strict):
    status: Literal["resolved", "dismissed"]
    resolution: Annotated[str, StringConstraints(max_length=1000)] = ""
    delete_message: bool = False


class Report(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    channel_id: uuid.UUID
    message_id: uuid.UUID
    reporter_id: uuid.UUID
    reason: str
    status: str
    resolution: str
    resolved_by: uuid.UUID | None
    resolved_at: datetime | None
    created_at: datetime
