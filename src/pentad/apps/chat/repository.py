"""All SQL of the chat app."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    Exists,
    Select,
    and_,
    bindparam,
    delete,
    exists,
    func,
    inspect,
    literal,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from pentad.apps.chat.models import (
    ChatAttachment,
    ChatChannel,
    ChatIncomingHook,
    ChatInvite,
    ChatMember,
    ChatMention,
    ChatMessage,
    ChatMessageEdit,
    ChatPushSubscription,
    ChatReaction,
    ChatReport,
    ChatRestriction,
    ChatServerKey,
    ChatTenant,
    ChatUser,
    ChatWebhook,
)
from pentad.core.db.base import utcnow

UNREAD_CAP = 1000
"""Unread counts stop at this (shown as "999+"): counting a million unread rows on every list is waste."""


# ---------------------------------------------------------------- tenants and keys


async def get_tenant(session: AsyncSession, tenant_id: uuid.UUID) -> ChatTenant | None:
    return await session.get(ChatTenant, tenant_id)


async def get_tenant_by_slug(session: AsyncSession, slug: str) -> ChatTenant | None:
    return (await session.execute(select(ChatTenant).where(ChatTenant.slug == slug))).scalar_one_or_none()


async def list_tenants(session: AsyncSession) -> Sequence[ChatTenant]:
    return (await session.execute(select(ChatTenant).order_by(ChatTenant.slug))).scalars().all()


async def get_server_key(session: AsyncSession, key_id: uuid.UUID) -> ChatServerKey | None:
    return await session.get(ChatServerKey, key_id)


async def list_server_keys(session: AsyncSession, tenant_id: uuid.UUID) -> Sequence[ChatServerKey]:
    query = (
        select(ChatServerKey).where(ChatServerKey.tenant_id == tenant_id).order_by(ChatServerKey.created_at)
    )
    return (await session.execute(query)).scalars().all()


# ---------------------------------------------------------------- users


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> ChatUser | None:
    return await session.get(ChatUser, user_id)


async def get_user_with_tenant(
    session: AsyncSession, user_id: uuid.UUID
) -> tuple[ChatUser, ChatTenant] | None:
    query = select(ChatUser, ChatTenant).join(ChatTenant, ChatTenant.id == ChatUser.tenant_id)
    row = (await session.execute(query.where(ChatUser.id == user_id))).first()
    return (row[0], row[1]) if row else None


_Row = TypeVar("_Row", ChatUser, ChatTenant)


def detached_copy(row: _Row) -> _Row:
    """A copy of a loaded user or tenant that belongs to no session (its columns only), to cache."""
    mapper = inspect(type(row))
    copy: _Row = mapper.class_manager.new_instance()
    for column in mapper.column_attrs:
        set_committed_value(copy, column.key, getattr(row, column.key))
    make_transient_to_detached(copy)
    return copy


def adopt(session: AsyncSession, cached: _Row) -> _Row:
    """A cached copy (detached_copy) as this session's own row, without a query: changes to it are
    flushed as usual. `cached` itself stays untouched, so requests never share a row."""
    return session.sync_session.merge(cached, load=False)


async def get_user_by_external_id(
    session: AsyncSession, tenant_id: uuid.UUID, external_id: str
) -> ChatUser | None:
    query = select(ChatUser).where(ChatUser.tenant_id == tenant_id, ChatUser.external_id == external_id)
    return (await session.execute(query)).scalar_one_or_none()


async def get_user_by_pentad_user(session: AsyncSession, pentad_user_id: uuid.UUID) -> ChatUser | None:
    query = select(ChatUser).where(ChatUser.pentad_user_id == pentad_user_id)
    return (await session.execute(query)).scalar_one_or_none()


async def handle_taken(
    session: AsyncSession, tenant_id: uuid.UUID, handle: str, exclude: uuid.UUID | None
) -> bool:
    query = select(ChatUser.id).where(ChatUser.tenant_id == tenant_id, ChatUser.handle == handle)
    if exclude is not None:
        query = query.where(ChatUser.id != exclude)
    return (await session.execute(query.limit(1))).first() is not None


async def get_users(session: AsyncSession, user_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, ChatUser]:
    ids = set(user_ids)
    if not ids:
        return {}
    rows = (await session.execute(select(ChatUser).where(ChatUser.id.in_(ids)))).scalars()
    return {user.id: user for user in rows}


async def get_users_by_handles(
    session: AsyncSession, tenant_id: uuid.UUID, handles: Iterable[str]
) -> Sequence[ChatUser]:
    wanted = {handle.lower() for handle in handles}
    if not wanted:
        return []
    query = select(ChatUser).where(ChatUser.tenant_id == tenant_id, func.lower(ChatUser.handle).in_(wanted))
    return (await session.execute(query)).scalars().all()


async def list_users(
    session: AsyncSession, tenant_id: uuid.UUID, *, query_text: str | None, limit: int, offset: int
) -> Sequence[ChatUser]:
    query = select(ChatUser).where(ChatUser.tenant_id == tenant_id, ChatUser.deactivated_at.is_(None))
    if query_text:
        pattern = f"%{query_text.lower()}%"
        query = query.where(
            or_(func.lower(ChatUser.name).like(pattern), func.lower(ChatUser.handle).like(pattern))
        )
    query = query.order_by(ChatUser.name, ChatUser.id).limit(limit).offset(offset)
    return (await session.execute(query)).scalars().all()


# ---------------------------------------------------------------- channels and members


async def get_channel(session: AsyncSession, channel_id: uuid.UUID) -> ChatChannel | None:
    return await session.get(ChatChannel, channel_id)


async def get_direct_channel(
    session: AsyncSession, tenant_id: uuid.UUID, direct_key: str, *, latest: bool = False
) -> ChatChannel | None:
    query = select(ChatChannel).where(
        ChatChannel.tenant_id == tenant_id, ChatChannel.direct_key == direct_key
    )
    if latest:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def get_member(session: AsyncSession, channel_id: uuid.UUID, user_id: uuid.UUID) -> ChatMember | None:
    query = select(ChatMember).where(ChatMember.channel_id == channel_id, ChatMember.user_id == user_id)
    return (await session.execute(query)).scalar_one_or_none()


@dataclass(frozen=True, slots=True)
class ChannelStanding:
    channel: ChatChannel
    member: ChatMember | None
    banned: bool
    muted: bool
    tenant_webhooks: bool | None


def _restricted(kind: str) -> Exists:
    """A ban or mute of the user (:user_id, in :tenant_id) in force (at :now) in the enclosing query's
    channel, or tenant-wide."""
    return exists().where(
        ChatRestriction.tenant_id == bindparam("tenant_id"),
        ChatRestriction.user_id == bindparam("user_id"),
        ChatRestriction.kind == kind,
        or_(ChatRestriction.channel_id.is_(None), ChatRestriction.channel_id == ChatChannel.id),
        or_(ChatRestriction.expires_at.is_(None), ChatRestriction.expires_at > bindparam("now")),
    )


def _standing_statement(*, with_webhooks: bool) -> Select[ChatChannel, ChatMember, bool, bool, bool | None]:
    webhooks = (
        exists().where(ChatWebhook.tenant_id == ChatChannel.tenant_id, ChatWebhook.active.is_(True))
        if with_webhooks
        else null()
    )
    return (
        select(ChatChannel, ChatMember, _restricted("ban"), _restricted("mute"), webhooks)
        .outerjoin(
            ChatMember,
            and_(ChatMember.channel_id == ChatChannel.id, ChatMember.user_id == bindparam("user_id")),
        )
        .where(ChatChannel.id == bindparam("channel_id"))
    )


# Built once: building this statement and its cache key cost more CPU than the rest of a send's Python.
_STANDING = _standing_statement(with_webhooks=False)
_STANDING_WITH_WEBHOOKS = _standing_statement(with_webhooks=True)


async def get_channel_standing(
    session: AsyncSession,
    channel_id: uuid.UUID,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    with_webhooks: bool = False,
) -> ChannelStanding | None:
    """The channel, the user's membership and whether a ban or a mute of theirs holds there, in one
    statement (every channel operation starts with it); with_webhooks: also whether the channel's tenant
    has an active webhook (else `tenant_webhooks` is None)."""
    query = _STANDING_WITH_WEBHOOKS if with_webhooks else _STANDING
    parameters = {"channel_id": channel_id, "tenant_id": tenant_id, "user_id": user_id, "now": utcnow()}
    row = (await session.execute(query, parameters)).first()
    if row is None:
        return None
    channel, member, banned, muted, tenant_webhooks = row
    return ChannelStanding(
        channel, member, bool(banned), bool(muted), None if tenant_webhooks is None else bool(tenant_webhooks)
    )


async def list_member_channels(
    session: AsyncSession, user_id: uuid.UUID, *, include_archived: bool
) -> Sequence[tuple[ChatChannel, ChatMember]]:
    query = select(ChatChannel, ChatMember).join(ChatMember, ChatMember.channel_id == ChatChannel.id)
    query = query.where(ChatMember.user_id == user_id)
    if not include_archived:
        query = query.where(ChatChannel.archived_at.is_(None))
    query = query.order_by(ChatChannel.last_message_at.desc(), ChatChannel.created_at.desc())
    return [(row[0], row[1]) for row in (await session.execute(query)).all()]


async def list_member_channel_ids(session: AsyncSession, user_id: uuid.UUID, limit: int) -> list[uuid.UUID]:
    query = select(ChatMember.channel_id).where(ChatMember.user_id == user_id).limit(limit)
    return list((await session.execute(query)).scalars())


async def list_public_channels(
    session: AsyncSession, tenant_id: uuid.UUID, *, limit: int, offset: int
) -> Sequence[ChatChannel]:
    query = (
        select(ChatChannel)
        .where(
            ChatChannel.tenant_id == tenant_id,
            ChatChannel.kind == "public",
            ChatChannel.archived_at.is_(None),
        )
        .order_by(ChatChannel.name, ChatChannel.id)
        .limit(limit)
        .offset(offset)
    )
    return (await session.execute(query)).scalars().all()


async def list_members(
    session: AsyncSession, channel_id: uuid.UUID, *, limit: int, offset: int
) -> Sequence[tuple[ChatMember, ChatUser]]:
    query = (
        select(ChatMember, ChatUser)
        .join(ChatUser, ChatUser.id == ChatMember.user_id)
        .where(ChatMember.channel_id == channel_id)
        .order_by(ChatMember.created_at, ChatMember.id)
        .limit(limit)
        .offset(offset)
    )
    return [(row[0], row[1]) for row in (await session.execute(query)).all()]


async def count_members(session: AsyncSession, channel_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    if not channel_ids:
        return {}
    query = (
        select(ChatMember.channel_id, func.count())
        .where(ChatMember.channel_id.in_(channel_ids))
        .group_by(ChatMember.channel_id)
    )
    return {row[0]: int(row[1]) for row in (await session.execute(query)).all()}


async def list_member_users(
    session: AsyncSession, channel_ids: Sequence[uuid.UUID], cap: int
) -> dict[uuid.UUID, list[ChatUser]]:
    """The users of small (direct, group) channels, for channel lists."""
    if not channel_ids:
        return {}
    query = (
        select(ChatMember.channel_id, ChatUser)
        .join(ChatUser, ChatUser.id == ChatMember.user_id)
        .where(ChatMember.channel_id.in_(channel_ids))
        .order_by(ChatMember.created_at)
    )
    found: dict[uuid.UUID, list[ChatUser]] = {}
    for channel_id, user in (await session.execute(query)).all():
        users = found.setdefault(channel_id, [])
        if len(users) < cap:
            users.append(user)
    return found


async def member_user_ids(
    session: AsyncSession, channel_id: uuid.UUID, user_ids: Iterable[uuid.UUID]
) -> set[uuid.UUID]:
    ids = set(user_ids)
    if not ids:
        return set()
    query = select(ChatMember.user_id).where(ChatMember.channel_id == channel_id, ChatMember.user_id.in_(ids))
    return set((await session.execute(query)).scalars())


async def delete_member(session: AsyncSession, channel_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    result = await session.execute(
        delete(ChatMember).where(ChatMember.channel_id == channel_id, ChatMember.user_id == user_id)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def advance_read(
    session: AsyncSession, member: ChatMember, *, read_seq: int | None, delivered_seq: int | None
) -> bool:
    """Move the member's pointers forward (never back); True if one moved."""
    changed = False
    if read_seq is not None and read_seq > member.last_read_seq:
        member.last_read_seq = read_seq
        member.last_read_at = utcnow()
        changed = True
    if delivered_seq is not None and delivered_seq > member.last_delivered_seq:
        member.last_delivered_seq = delivered_seq
        changed = True
    if member.last_read_seq > member.last_delivered_seq:
        member.last_delivered_seq = member.last_read_seq
    if changed:
        await session.flush()
    return changed


def _next_seq_statement(*, message_at: bool, returning: bool) -> Any:
    values: dict[str, object] = {"last_seq": ChatChannel.last_seq + 1}
    if message_at:
        values["last_message_at"] = bindparam("seq_message_at")
    statement = (
        update(ChatChannel)
        .where(ChatChannel.id == bindparam("seq_channel_id"))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return statement.returning(ChatChannel.last_seq) if returning else statement


# Built once (they run on every send, edit and reaction); keyed by (message_at given, UPDATE … RETURNING).
_NEXT_SEQ = {
    (message_at, returning): _next_seq_statement(message_at=message_at, returning=returning)
    for message_at in (False, True)
    for returning in (False, True)
}
_READ_SEQ = select(ChatChannel.last_seq).where(ChatChannel.id == bindparam("seq_channel_id"))


async def next_seq(
    session: AsyncSession, channel_id: uuid.UUID, *, message_at: datetime | None = None
) -> int:
    """Take the channel's next sequence number. The row lock it takes orders concurrent senders, so numbers
    become visible in commit order (no reader ever sees 7 before 6). One statement where the database
    returns the updated value (UPDATE … RETURNING: SQLite, PostgreSQL); MariaDB reads it back."""
    returning = session.get_bind().dialect.update_returning
    parameters: dict[str, object] = {"seq_channel_id": channel_id}
    if message_at is not None:
        parameters["seq_message_at"] = message_at
    statement = _NEXT_SEQ[(message_at is not None, returning)]
    if returning:
        return int((await session.execute(statement, parameters)).scalar_one())
    await session.execute(statement, parameters)
    return int((await session.execute(_READ_SEQ, {"seq_channel_id": channel_id})).scalar_one())


async def count_unread(
    session: AsyncSession, channel_id: uuid.UUID, user_id: uuid.UUID, after_seq: int
) -> tuple[int, int]:
    """(unread top-level messages by others, unread mentions of the user), both capped at UNREAD_CAP.

    Thread replies are not unread messages, but a mention in one is an unread mention."""
    unread = (
        select(literal(1))
        .where(
            ChatMessage.channel_id == channel_id,
            ChatMessage.seq > after_seq,
            ChatMessage.parent_id.is_(None),
            ChatMessage.deleted_at.is_(None),
            or_(ChatMessage.user_id.is_(None), ChatMessage.user_id != user_id),
        )
        .limit(UNREAD_CAP)
        .subquery()
    )
    count = (await session.execute(select(func.count()).select_from(unread))).scalar_one()
    named = select(ChatMention.message_id).where(
        ChatMention.user_id == user_id, ChatMention.channel_id == channel_id, ChatMention.seq > after_seq
    )
    mentions = (
        select(literal(1))
        .where(
            ChatMessage.channel_id == channel_id,
            ChatMessage.seq > after_seq,
            ChatMessage.deleted_at.is_(None),
            or_(ChatMessage.user_id.is_(None), ChatMessage.user_id != user_id),
            or_(ChatMessage.mentions_channel.is_(True), ChatMessage.id.in_(named)),
        )
        .limit(UNREAD_CAP)
        .subquery()
    )
    mention_count = (await session.execute(select(func.count()).select_from(mentions))).scalar_one()
    return int(count), int(mention_count)


# ---------------------------------------------------------------- invites


async def get_invite(session: AsyncSession, invite_id: uuid.UUID) -> ChatInvite | None:
    return await session.get(ChatInvite, invite_id)


async def get_invite_for(
    session: AsyncSession, channel_id: uuid.UUID, user_id: uuid.UUID
) -> ChatInvite | None:
    query = select(ChatInvite).where(ChatInvite.channel_id == channel_id, ChatInvite.user_id == user_id)
    return (await session.execute(query)).scalar_one_or_none()


async def list_invites(session: AsyncSession, user_id: uuid.UUID) -> Sequence[tuple[ChatInvite, ChatChannel]]:
    query = (
        select(ChatInvite, ChatChannel)
        .join(ChatChannel, ChatChannel.id == ChatInvite.channel_id)
        .where(ChatInvite.user_id == user_id)
        .order_by(ChatInvite.created_at)
    )
    return [(row[0], row[1]) for row in (await session.execute(query)).all()]


# ---------------------------------------------------------------- messages


async def get_message(session: AsyncSession, message_id: uuid.UUID) -> ChatMessage | None:
    return await session.get(ChatMessage, message_id)


async def get_message_by_client_id(
    session: AsyncSession, user_id: uuid.UUID, client_id: str, *, latest: bool = False
) -> ChatMessage | None:
    """`latest`: a locking read, which sees rows committed after this transaction's snapshot (MariaDB's
    repeatable read would otherwise hide the concurrent retry that just won)."""
    query = select(ChatMessage).where(ChatMessage.user_id == user_id, ChatMessage.client_id == client_id)
    if latest:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def list_messages(
    session: AsyncSession,
    channel_id: uuid.UUID,
    *,
    parent_id: uuid.UUID | None,
    before: int | None,
    after: int | None,
    limit: int,
) -> list[ChatMessage]:
    """A page of `limit + 1` messages (the extra one says there are more), returned oldest first.

    With `after` the page starts just after that seq and goes forward; otherwise it ends just before
    `before` (or at the newest) and goes back.
    """
    query = select(ChatMessage).where(ChatMessage.channel_id == channel_id)
    query = query.where(ChatMessage.parent_id == parent_id if parent_id else ChatMessage.parent_id.is_(None))
    if after is not None:
        query = query.where(ChatMessage.seq > after).order_by(ChatMessage.seq).limit(limit + 1)
        return list((await session.execute(query)).scalars())
    if before is not None:
        query = query.where(ChatMessage.seq < before)
    query = query.order_by(ChatMessage.seq.desc()).limit(limit + 1)
    return list((await session.execute(query)).scalars())


async def list_changes(
    session: AsyncSession, channel_id: uuid.UUID, since: int, limit: int
) -> list[ChatMessage]:
    query = (
        select(ChatMessage)
        .where(ChatMessage.channel_id == channel_id, ChatMessage.revision > since)
        .order_by(ChatMessage.revision, ChatMessage.id)
        .limit(limit + 1)
    )
    return list((await session.execute(query)).scalars())


async def list_pinned(session: AsyncSession, channel_id: uuid.UUID, limit: int) -> Sequence[ChatMessage]:
    query = (
        select(ChatMessage)
        .where(ChatMessage.channel_id == channel_id, ChatMessage.pinned_at.is_not(None))
        .order_by(ChatMessage.pinned_at.desc())
        .limit(limit)
    )
    return (await session.execute(query)).scalars().all()


async def list_edits(session: AsyncSession, message_id: uuid.UUID) -> Sequence[ChatMessageEdit]:
    query = (
        select(ChatMessageEdit)
        .where(ChatMessageEdit.message_id == message_id)
        .order_by(ChatMessageEdit.created_at)
    )
    return (await session.execute(query)).scalars().all()


async def mentions_of(
    session: AsyncSession, message_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """Per message, the mentioned users' ids in ascending order (as a send reports them)."""
    if not message_ids:
        return {}
    query = (
        select(ChatMention.message_id, ChatMention.user_id)
        .where(ChatMention.message_id.in_(message_ids))
        .order_by(ChatMention.user_id)
    )
    found: dict[uuid.UUID, list[uuid.UUID]] = {}
    for message_id, user_id in (await session.execute(query)).all():
        found.setdefault(message_id, []).append(user_id)
    return found


async def attachments_of(
    session: AsyncSession, message_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[ChatAttachment]]:
    if not message_ids:
        return {}
    query = (
        select(ChatAttachment)
        .where(ChatAttachment.message_id.in_(message_ids))
        .order_by(ChatAttachment.created_at)
    )
    found: dict[uuid.UUID, list[ChatAttachment]] = {}
    for attachment in (await session.execute(query)).scalars():
        assert attachment.message_id is not None
        found.setdefault(attachment.message_id, []).append(attachment)
    return found


async def reactions_of(
    session: AsyncSession, message_ids: Sequence[uuid.UUID], users_per_emoji: int
) -> dict[uuid.UUID, list[tuple[str, int, list[uuid.UUID]]]]:
    """Per message: (emoji, count, the first reactors' ids) in order of first use."""
    if not message_ids:
        return {}
    query = (
        select(ChatReaction.message_id, ChatReaction.emoji, ChatReaction.user_id)
        .where(ChatReaction.message_id.in_(message_ids))
        .order_by(ChatReaction.created_at, ChatReaction.id)
    )
    grouped: dict[uuid.UUID, dict[str, list[uuid.UUID]]] = {}
    counts: dict[tuple[uuid.UUID, str], int] = {}
    for message_id, emoji, user_id in (await session.execute(query)).all():
        users = grouped.setdefault(message_id, {}).setdefault(emoji, [])
        counts[(message_id, emoji)] = counts.get((message_id, emoji), 0) + 1
        if len(users) < users_per_emoji:
            users.append(user_id)
    return {
        message_id: [(emoji, counts[(message_id, emoji)], users) for emoji, users in by_emoji.items()]
        for message_id, by_emoji in grouped.items()
    }


async def get_reaction(
    session: AsyncSession, message_id: uuid.UUID, user_id: uuid.UUID, emoji: str
) -> ChatReaction | None:
    query = select(ChatReaction).where(
        ChatReaction.message_id == message_id, ChatReaction.user_id == user_id, ChatReaction.emoji == emoji
    )
    return (await session.execute(query)).scalar_one_or_none()


async def unbound_attachments(
    session: AsyncSession, attachment_ids: Sequence[uuid.UUID], channel_id: uuid.UUID, uploader_id: uuid.UUID
) -> Sequence[ChatAttachment]:
    query = select(ChatAttachment).where(
        ChatAttachment.id.in_(attachment_ids),
        ChatAttachment.channel_id == channel_id,
        ChatAttachment.uploader_id == uploader_id,
        ChatAttachment.message_id.is_(None),
    )
    return (await session.execute(query)).scalars().all()


async def delete_mentions(session: AsyncSession, message_id: uuid.UUID) -> None:
    await session.execute(delete(ChatMention).where(ChatMention.message_id == message_id))


async def delete_edits(session: AsyncSession, message_id: uuid.UUID) -> None:
    await session.execute(delete(ChatMessageEdit).where(ChatMessageEdit.message_id == message_id))


# ---------------------------------------------------------------- moderation


async def list_restrictions(
    session: AsyncSession, tenant_id: uuid.UUID, channel_id: uuid.UUID | None
) -> Sequence[ChatRestriction]:
    query = select(ChatRestriction).where(
        ChatRestriction.tenant_id == tenant_id,
        ChatRestriction.channel_id == channel_id if channel_id else ChatRestriction.channel_id.is_(None),
        or_(ChatRestriction.expires_at.is_(None), ChatRestriction.expires_at > utcnow()),
    )
    return (await session.execute(query.order_by(ChatRestriction.created_at))).scalars().all()


async def get_restriction(session: AsyncSession, restriction_id: uuid.UUID) -> ChatRestriction | None:
    return await session.get(ChatRestriction, restriction_id)


async def banned_channel_ids(
    session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID
) -> set[uuid.UUID | None]:
    """Channels the user is banned from (None in the set: banned from the whole tenant)."""
    query = select(ChatRestriction.channel_id).where(
        ChatRestriction.tenant_id == tenant_id,
        ChatRestriction.user_id == user_id,
        ChatRestriction.kind == "ban",
        or_(ChatRestriction.expires_at.is_(None), ChatRestriction.expires_at > utcnow()),
    )
    return set((await session.execute(query)).scalars())


async def get_report(session: AsyncSession, report_id: uuid.UUID) -> ChatReport | None:
    return await session.get(ChatReport, report_id)


async def get_report_by(
    session: AsyncSession, message_id: uuid.UUID, reporter_id: uuid.UUID
) -> ChatReport | None:
    query = select(ChatReport).where(
        ChatReport.message_id == message_id, ChatReport.reporter_id == reporter_id
    )
    return (await session.execute(query)).scalar_one_or_none()


async def list_reports(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    channel_ids: Sequence[uuid.UUID] | None,
    status: str,
    limit: int,
) -> Sequence[ChatReport]:
    query = select(ChatReport).where(ChatReport.tenant_id == tenant_id, ChatReport.status == status)
    if channel_ids is not None:
        query = query.where(ChatReport.channel_id.in_(channel_ids))
    return (await session.execute(query.order_by(ChatReport.created_at).limit(limit))).scalars().all()


async def moderated_channel_ids(session: AsyncSession, user_id: uuid.UUID) -> list[uuid.UUID]:
    query = select(ChatMember.channel_id).where(
        ChatMember.user_id == user_id, ChatMember.role.in_(("owner", "moderator"))
    )
    return list((await session.execute(query)).scalars())


# ---------------------------------------------------------------- web push


async def get_push_subscription(
    session: AsyncSession, user_id: uuid.UUID, endpoint_hash: str
) -> ChatPushSubscription | None:
    query = select(ChatPushSubscription).where(
        ChatPushSubscription.user_id == user_id, ChatPushSubscription.endpoint_hash == endpoint_hash
    )
    return (await session.execute(query)).scalar_one_or_none()


async def list_push_subscriptions(
    session: AsyncSession, user_id: uuid.UUID
) -> Sequence[ChatPushSubscription]:
    """Newest first."""
    query = (
        select(ChatPushSubscription)
        .where(ChatPushSubscription.user_id == user_id)
        .order_by(ChatPushSubscription.created_at.desc(), ChatPushSubscription.id.desc())
    )
    return (await session.execute(query)).scalars().all()


async def delete_push_subscriptions(
    session: AsyncSession,
    endpoint_hash: str,
    *,
    user_id: uuid.UUID | None = None,
    except_user_id: uuid.UUID | None = None,
) -> int:
    statement = delete(ChatPushSubscription).where(ChatPushSubscription.endpoint_hash == endpoint_hash)
    if user_id is not None:
        statement = statement.where(ChatPushSubscription.user_id == user_id)
    if except_user_id is not None:
        statement = statement.where(ChatPushSubscription.user_id != except_user_id)
    result = await session.execute(statement)
    return int(result.rowcount)  # type: ignore[attr-defined]


async def push_targets(
    session: AsyncSession,
    channel_id: uuid.UUID,
    *,
    user_ids: Iterable[uuid.UUID],
    all_members: bool,
    sender_id: uuid.UUID | None,
) -> list[uuid.UUID]:
    """Push subscriptions of the channel's active members to notify: `user_ids`, or every member."""
    ids = set(user_ids)
    if not all_members and not ids:
        return []
    query = (
        select(ChatPushSubscription.id)
        .join(
            ChatMember,
            and_(ChatMember.user_id == ChatPushSubscription.user_id, ChatMember.channel_id == channel_id),
        )
        .join(ChatUser, ChatUser.id == ChatPushSubscription.user_id)
        .where(ChatUser.deactivated_at.is_(None))
        .order_by(ChatPushSubscription.user_id, ChatPushSubscription.created_at)
    )
    if sender_id is not None:
        query = query.where(ChatPushSubscription.user_id != sender_id)
    if not all_members:
        query = query.where(ChatPushSubscription.user_id.in_(ids))
    return list((await session.execute(query)).scalars())


# ---------------------------------------------------------------- webhooks, incoming hooks, digests


async def get_webhook(session: AsyncSession, webhook_id: uuid.UUID) -> ChatWebhook | None:
    return await session.get(ChatWebhook, webhook_id)


async def list_webhooks(
    session: AsyncSession, tenant_id: uuid.UUID, *, active_only: bool = False
) -> Sequence[ChatWebhook]:
    query = select(ChatWebhook).where(ChatWebhook.tenant_id == tenant_id)
    if active_only:
        query = query.where(ChatWebhook.active.is_(True))
    return (await session.execute(query.order_by(ChatWebhook.created_at, ChatWebhook.id))).scalars().all()


async def get_incoming_hook(session: AsyncSession, hook_id: uuid.UUID) -> ChatIncomingHook | None:
    return await session.get(ChatIncomingHook, hook_id)


async def list_incoming_hooks(
    session: AsyncSession, channel_id: uuid.UUID
) -> Sequence[tuple[ChatIncomingHook, ChatUser]]:
    query = (
        select(ChatIncomingHook, ChatUser)
        .join(ChatUser, ChatUser.id == ChatIncomingHook.bot_user_id)
        .where(ChatIncomingHook.channel_id == channel_id, ChatIncomingHook.revoked_at.is_(None))
        .order_by(ChatIncomingHook.created_at, ChatIncomingHook.id)
    )
    return [(row[0], row[1]) for row in (await session.execute(query)).all()]


def _due_mentions(before: datetime) -> Select[uuid.UUID]:
    """Mentions still unread and not yet e-mailed, in messages sent before `before`, of users with an
    address; the caller picks the columns."""
    return (
        select(ChatMention.user_id)
        .join(
            ChatMember,
            and_(ChatMember.channel_id == ChatMention.channel_id, ChatMember.user_id == ChatMention.user_id),
        )
        .join(ChatUser, ChatUser.id == ChatMention.user_id)
        .join(ChatTenant, ChatTenant.id == ChatUser.tenant_id)
        .join(ChatMessage, ChatMessage.id == ChatMention.message_id)
        .where(
            ChatMention.seq > ChatMember.last_read_seq,
            ChatMention.seq > ChatMember.digested_seq,
            ChatUser.email.is_not(None),
            ChatUser.deactivated_at.is_(None),
            ChatTenant.disabled_at.is_(None),
            ChatMessage.deleted_at.is_(None),
            ChatMessage.created_at < before,
        )
    )


async def list_digest_recipients(session: AsyncSession, before: datetime, limit: int) -> list[ChatUser]:
    """Up to `limit` users who have mentions due for an e-mail digest (see _due_mentions)."""
    user_ids = _due_mentions(before).distinct().limit(limit).subquery()
    query = select(ChatUser).where(ChatUser.id.in_(select(user_ids.c.user_id))).order_by(ChatUser.id)
    return list((await session.execute(query)).scalars())


async def list_digest_mentions(
    session: AsyncSession, user_ids: Sequence[uuid.UUID], before: datetime
) -> Sequence[tuple[uuid.UUID, ChatMessage, ChatChannel]]:
    """(mentioned user id, message, channel) of the users' due mentions, oldest first."""
    if not user_ids:
        return []
    query = (
        _due_mentions(before)
        .add_columns(ChatMessage, ChatChannel)
        .join(ChatChannel, ChatChannel.id == ChatMention.channel_id)
        .where(ChatMention.user_id.in_(user_ids))
        .order_by(ChatMessage.created_at, ChatMessage.id)
    )
    return [(row[0], row[1], row[2]) for row in (await session.execute(query)).all()]


async def advance_digested(
    session: AsyncSession, channel_id: uuid.UUID, user_id: uuid.UUID, seq: int
) -> None:
    await session.execute(
        update(ChatMember)
        .where(
            ChatMember.channel_id == channel_id, ChatMember.user_id == user_id, ChatMember.digested_seq < seq
        )
        .values(digested_seq=seq)
        .execution_options(synchronize_session=False)
    )
