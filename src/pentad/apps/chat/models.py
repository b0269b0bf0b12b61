"""The chat app's tables. Every table is per tenant, directly or through its channel.

Read state is one pointer per member (`ChatMember.last_read_seq`), never a row per recipient per message.
Each channel counts its events in `ChatChannel.last_seq`: a new message takes the next number as its `seq`;
an edit, delete, reaction or pin takes the next number as the message's `revision`. Clients resume by
asking for everything with a revision above the last one they saw.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from pentad.core.db.base import Base, EncryptedText, IdMixin, TimestampMixin, utcnow

CHANNEL_KINDS = ("public", "private", "direct", "group")
MEMBER_ROLES = ("owner", "moderator", "member")


class ChatTenant(IdMixin, TimestampMixin, Base):
    """A "chat app": one product embedding chat, with its own users, channels, keys and webhooks."""

    __tablename__ = "chat_tenants"

    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    blocked_words: Mapped[list[str]] = mapped_column(JSON, default=list)
    disabled_at: Mapped[datetime | None] = mapped_column(default=None)


class ChatServerKey(IdMixin, TimestampMixin, Base):
    """A tenant's server-side API key (`pck_…`): only its SHA-256 is stored."""

    __tablename__ = "chat_server_keys"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("chat_tenants.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    secret_hash: Mapped[str] = mapped_column(String(64))
    hint: Mapped[str] = mapped_column(String(32))
    created_by: Mapped[uuid.UUID | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class ChatUser(IdMixin, TimestampMixin, Base):
    """A person (or bot) in one tenant, known to the embedding product by `external_id`."""

    __tablename__ = "chat_users"
    __table_args__ = (
        UniqueConstraint("tenant_id", "external_id"),
        UniqueConstraint("tenant_id", "handle"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chat_tenants.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(128))
    handle: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    image_url: Mapped[str | None] = mapped_column(String(1000), default=None)
    email: Mapped[str | None] = mapped_column(String(320), default=None)
    role: Mapped[str] = mapped_column(String(16), default="user")  # user | moderator | admin | bot
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    pentad_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), unique=True, default=None
    )
    presence: Mapped[str] = mapped_column(String(16), default="offline")  # online | away | offline
    last_seen_at: Mapped[datetime | None] = mapped_column(default=None)
    tokens_valid_after: Mapped[datetime | None] = mapped_column(default=None)
    deactivated_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ChatChannel(IdMixin, TimestampMixin, Base):
    __tablename__ = "chat_channels"
    __table_args__ = (UniqueConstraint("tenant_id", "direct_key"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("chat_tenants.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))  # public | private | direct | group
    name: Mapped[str] = mapped_column(String(200), default="")
    topic: Mapped[str] = mapped_column(String(1000), default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    direct_key: Mapped[str | None] = mapped_column(String(80), default=None)  # both user ids, sorted
    created_by: Mapped[uuid.UUID | None] = mapped_column(default=None)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_message_at: Mapped[datetime | None] = mapped_column(default=None)
    slow_mode_seconds: Mapped[int] = mapped_column(Integer, default=0)
    archived_at: Mapped[datetime | None] = mapped_column(default=None)


class ChatMember(IdMixin, TimestampMixin, Base):
    __tablename__ = "chat_members"
    __table_args__ = (
        UniqueConstraint("channel_id", "user_id"),
        Index("ix_chat_members_user", "user_id"),
    )

    channel_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chat_channels.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chat_users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16), default="member")  # owner | moderator | member
    last_read_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_delivered_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_read_at: Mapped[datetime | None] = mapped_column(default=None)
    last_sent_at: Mapped[datetime | None] = mapped_column(default=None)
    digested_seq: Mapped[int] = mapped_column(BigInteger, default=0)


class ChatInvite(IdMixin, TimestampMixin, Base):
    """An invitation into a private channel or group, pending until the invitee accepts or declines."""

    __tablename__ = "chat_invites"
    __table_args__ = (UniqueConstraint("channel_id", "user_id"),)

    channel_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chat_channels.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chat_users.id", ondelete="CASCADE"), index=True)
    invited_by: Mapped[uuid.UUID | None] = mapped_column(default=None)


class ChatMessage(IdMixin, TimestampMixin, Base):
    """A message or thread reply. `text` is the Markdown source, `html` its safe rendering.

    A delete keeps the row as a tombstone (text, html and payload emptied, `deleted_at` set) so sequence
    numbers, thread counts and resume stay consistent. `payload` carries custom types' JSON, and can carry
    ciphertext for end-to-end encrypted types (the server never needs to read it).
    """

    __tablename__ = "chat_messages"
    __table_args__ = (
        UniqueConstraint("channel_id", "seq"),
        UniqueConstraint("user_id", "client_id"),
        Index("ix_chat_messages_channel_revision", "channel_id", "revision"),
        Index("ix_chat_messages_parent", "parent_id", "seq"),
    )

    channel_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chat_channels.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)
    revision: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("chat_users.id", ondelete="SET NULL"))
    client_id: Mapped[str | None] = mapped_column(String(64), default=None)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("chat_messages.id", ondelete="CASCADE"), default=None
    )
    type: Mapped[str] = mapped_column(String(64), default="text")
    text: Mapped[str] = mapped_column(Text, default="")
    html: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    mentions_channel: Mapped[bool] = mapped_column(Boolean, default=False)
    has_attachments: Mapped[bool] = mapped_column(Boolean, default=False)
    reply_count: Mapped[int] = mapped_column(Integer, default=0)
    last_reply_at: Mapped[datetime | None] = mapped_column(default=None)
    pinned_at: Mapped[datetime | None] = mapped_column(default=None)
    pinned_by: Mapped[uuid.UUID | None] = mapped_column(default=None)
    edited_at: Mapped[datetime | None] = mapped_column(default=None)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)


class ChatMessageEdit(IdMixin, TimestampMixin, Base):
    """A message's earlier version, kept on every edit (newest last)."""

    __tablename__ = "chat_message_edits"

    message_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("chat_messages.id", ondelete="CASCADE"), index=True
    )
    text: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    edited_by: Mapped[uuid.UUID | None] = mapped_column(default=None)


class ChatReaction(IdMixin, TimestampMixin, Base):
    __tablename__ = "chat_reactions"
    __table_args__ = (UniqueConstraint("message_id", "user_id", "emoji"),)

    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chat_messages.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chat_users.id", ondelete="CASCADE"))
    emoji: Mapped[str] = mapped_column(String(64))


class ChatMention(Base):
    """A user mentioned by name in a message; unread-mention counts compare `seq` with the read pointer."""

    __tablename__ = "chat_mentions"
    __table_args__ = (Index("ix_chat_mentions_user_channel", "user_id", "channel_id", "seq"),)

    message_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("chat_messages.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("chat_users.id", ondelete="CASCADE"), primary_key=True
    )
    channel_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chat_channels.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)


class ChatAttachment(IdMixin, TimestampMixin, Base):
    """An uploaded file, stored through core storage; bound to a message when the message is sent."""

    __tablename__ = "chat_attachments"

    channel_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("chat_channels.id", ondelete="CASCADE"), index=True
    )
    uploader_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chat_users.id", ondelete="CASCADE"))
    message_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("chat_messages.id", ondelete="CASCADE"), index=True, default=None
    )
    storage_key: Mapped[str] = mapped_column(String(300))
    thumbnail_key: Mapped[str | None] = mapped_column(String(300), default=None)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int | None] = mapped_column(Integer, default=None)
    height: Mapped[int | None] = mapped_column(Integer, default=None)


class ChatRestriction(IdMixin, TimestampMixin, Base):
    """A ban or mute of one user in a channel, or tenant-wide (channel_id NULL), until expires_at."""

    __tablename__ = "chat_restrictions"
    __table_args__ = (Index("ix_chat_restrictions_user", "user_id", "kind"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chat_tenants.id", ondelete="CASCADE"))
    channel_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("chat_channels.id", ondelete="CASCADE"), default=None
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chat_users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))  # ban | mute
    reason: Mapped[str] = mapped_column(String(500), default="")
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    created_by: Mapped[uuid.UUID | None] = mapped_column(default=None)


class ChatReport(IdMixin, TimestampMixin, Base):
    __tablename__ = "chat_reports"
    __table_args__ = (
        UniqueConstraint("message_id", "reporter_id"),
        Index("ix_chat_reports_tenant_status", "tenant_id", "status"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chat_tenants.id", ondelete="CASCADE"))
    channel_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chat_channels.id", ondelete="CASCADE"))
    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chat_messages.id", ondelete="CASCADE"))
    reporter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chat_users.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(1000), default="")
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | resolved | dismissed
    resolution: Mapped[str] = mapped_column(String(1000), default="")
    resolved_by: Mapped[uuid.UUID | None] = mapped_column(default=None)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)


class ChatWebhook(IdMixin, TimestampMixin, Base):
    """An outgoing webhook of a tenant; `secret` signs each delivery (HMAC-SHA256), encrypted at rest."""

    __tablename__ = "chat_webhooks"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("chat_tenants.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(EncryptedText)
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    last_status: Mapped[str | None] = mapped_column(String(200), default=None)
    last_delivery_at: Mapped[datetime | None] = mapped_column(default=None)


class ChatIncomingHook(IdMixin, TimestampMixin, Base):
    """A URL that posts into one channel as a bot user (`/api/chat/hooks/<id>/<secret>`)."""

    __tablename__ = "chat_incoming_hooks"

    channel_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("chat_channels.id", ondelete="CASCADE"), index=True
    )
    bot_user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chat_users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[uuid.UUID | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class ChatPushSubscription(IdMixin, TimestampMixin, Base):
    """A browser's Web Push subscription; the keys are encrypted at rest."""

    __tablename__ = "chat_push_subscriptions"
    __table_args__ = (UniqueConstraint("user_id", "endpoint_hash"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chat_users.id", ondelete="CASCADE"), index=True)
    endpoint: Mapped[str] = mapped_column(EncryptedText)
    endpoint_hash: Mapped[str] = mapped_column(String(64))
    keys: Mapped[str] = mapped_column(EncryptedText)
    last_error: Mapped[str | None] = mapped_column(String(200), default=None)
