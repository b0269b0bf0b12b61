"""Channels: listing, creating (direct conversations once per pair), renaming, slow mode, archiving."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy.exc import IntegrityError

from pentad.apps.chat import repository, schemas
from pentad.apps.chat.access import require_permission
from pentad.apps.chat.actions.context import ChatContext, check_not_banned_in_tenant, check_tenant_users
from pentad.apps.chat.events import ChannelChange, ChannelEvent, UserChannelEvent, channel_topic, user_topic
from pentad.apps.chat.models import ChatChannel, ChatMember, ChatUser
from pentad.apps.chat.permissions import CHANNEL_MANAGE, CHANNEL_MODERATE
from pentad.apps.chat.views import channel_states, channel_view
from pentad.core import audit
from pentad.core.db.base import utcnow
from pentad.core.errors import BadRequest
from pentad.core.realtime.publish import publish


async def list_channels(chat: ChatContext, *, include_archived: bool = False) -> list[schemas.ChannelState]:
    rows = await repository.list_member_channels(
        chat.session, chat.actor.user_id, include_archived=include_archived
    )
    banned = await repository.banned_channel_ids(chat.session, chat.actor.tenant.id, chat.actor.user_id)
    if None in banned:
        return []
    return await channel_states(
        chat.session, chat.actor.user_id, [(c, m) for c, m in rows if c.id not in banned]
    )


async def get_channel(chat: ChatContext, channel_id: uuid.UUID) -> schemas.ChannelState:
    access = await chat.access(channel_id)
    return (await channel_states(chat.session, chat.actor.user_id, [(access.channel, access.member)]))[0]


async def list_public_channels(chat: ChatContext, limit: int, offset: int) -> list[schemas.Channel]:
    channels = await repository.list_public_channels(
        chat.session, chat.actor.tenant.id, limit=limit, offset=offset
    )
    banned = await repository.banned_channel_ids(chat.session, chat.actor.tenant.id, chat.actor.user_id)
    if None in banned:
        return []
    return [channel_view(c) for c in channels if c.id not in banned]


def check_new_channel(chat: ChatContext, data: schemas.ChannelCreate, others: list[ChatUser]) -> str | None:
    """The direct key of a direct conversation (one other member), else None; named channels need a name."""
    if data.kind == "direct":
        if len(others) != 1 or others[0].id == chat.actor.user_id:
            raise BadRequest("A direct channel has exactly one other member.", code="direct_needs_one")
        return ":".join(sorted(str(u) for u in (chat.actor.user_id, others[0].id)))
    if data.kind in ("public", "private") and not data.name.strip():
        raise BadRequest("Public and private channels need a name.", code="name_required")
    return None


async def do_create_channel(
    chat: ChatContext, data: schemas.ChannelCreate
) -> tuple[schemas.ChannelState, bool]:
    """Create a channel with the caller as owner. A direct channel with the same person is returned
    again rather than duplicated (second value False)."""
    session, tenant = chat.session, chat.actor.tenant
    await check_not_banned_in_tenant(chat)
    others = await check_tenant_users(chat, data.members)
    direct_key = check_new_channel(chat, data, others)
    if direct_key is not None:
        existing = await repository.get_direct_channel(session, tenant.id, direct_key)
        if existing is not None:
            return await get_channel(chat, existing.id), False
    channel = ChatChannel(
        tenant_id=tenant.id,
        kind=data.kind,
        name=data.name.strip(),
        topic=data.topic,
        data=data.data,
        created_by=chat.actor.user_id,
        direct_key=direct_key,
        last_seq=0,
    )
    try:
        async with session.begin_nested():
            session.add(channel)
            await session.flush()
    except IntegrityError:
        # The same direct conversation was created concurrently: answer with that one.
        if direct_key is None:
            raise
        existing = await repository.get_direct_channel(session, tenant.id, direct_key, latest=True)
        if existing is None:
            raise
        return await get_channel(chat, existing.id), False
    owner_role = "member" if data.kind == "direct" else "owner"
    session.add(ChatMember(channel_id=channel.id, user_id=chat.actor.user_id, role=owner_role))
    for user in others:
        if user.id != chat.actor.user_id:
            session.add(ChatMember(channel_id=channel.id, user_id=user.id, role="member"))
    await session.flush()
    notify_channel_added(chat, channel, [chat.actor.user, *others])
    audit.record(
        session,
        chat.audit_actor,
        "chat.channel_created",
        resource_type="chat.channel",
        resource_id=channel.id,
        kind=channel.kind,
    )
    return await get_channel(chat, channel.id), True


def notify_channel_added(chat: ChatContext, channel: ChatChannel, users: Iterable[ChatUser]) -> None:
    view = channel_view(channel)
    for user in users:
        publish(chat.session, user_topic(user.id), UserChannelEvent(type="channel.added", channel=view))


async def do_update_channel(
    chat: ChatContext, channel_id: uuid.UUID, data: schemas.ChannelUpdate
) -> schemas.ChannelState:
    access = await chat.access(channel_id)
    channel = access.channel
    if data.slow_mode_seconds is not None:
        require_permission(access, CHANNEL_MODERATE)
        channel.slow_mode_seconds = data.slow_mode_seconds
    if data.name is not None or data.topic is not None or data.data is not None:
        require_permission(access, CHANNEL_MANAGE)
        if channel.kind == "direct":
            raise BadRequest("Direct channels have no name or topic.", code="direct_channel")
        if data.name is not None:
            channel.name = data.name.strip()
        if data.topic is not None:
            channel.topic = data.topic
        if data.data is not None:
            channel.data = data.data
    await chat.session.flush()
    notify_channel_changed(chat, channel, "channel.updated")
    audit.record(
        chat.session,
        chat.audit_actor,
        "chat.channel_updated",
        resource_type="chat.channel",
        resource_id=channel.id,
        changes=data.model_dump(exclude_none=True, exclude={"data"}),
    )
    return await get_channel(chat, channel_id)


async def do_set_archived(
    chat: ChatContext, channel_id: uuid.UUID, *, archived: bool
) -> schemas.ChannelState:
    access = await chat.access(channel_id)
    require_permission(access, CHANNEL_MANAGE)
    channel = access.channel
    channel.archived_at = utcnow() if archived else None
    await chat.session.flush()
    kind: ChannelChange = "channel.archived" if archived else "channel.unarchived"
    notify_channel_changed(chat, channel, kind)
    audit.record(
        chat.session,
        chat.audit_actor,
        f"chat.{kind.replace('.', '_')}",
        resource_type="chat.channel",
        resource_id=channel.id,
    )
    return await get_channel(chat, channel_id)


def notify_channel_changed(chat: ChatContext, channel: ChatChannel, kind: ChannelChange) -> None:
    publish(chat.session, channel_topic(channel.id), ChannelEvent(type=kind, channel=channel_view(channel)))
