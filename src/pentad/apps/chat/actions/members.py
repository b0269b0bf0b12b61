"""Channel membership: joining, adding, roles, leaving and removing."""

from __future__ import annotations

import uuid

from pentad.apps.chat import repository, schemas
from pentad.apps.chat.access import require_permission
from pentad.apps.chat.actions.channels import get_channel
from pentad.apps.chat.actions.context import ChatContext, check_tenant_users
from pentad.apps.chat.events import MemberEvent, UserChannelEvent, channel_topic, user_topic
from pentad.apps.chat.exceptions import ChannelArchived
from pentad.apps.chat.models import ChatChannel, ChatMember, ChatUser
from pentad.apps.chat.permissions import CHANNEL_MANAGE
from pentad.apps.chat.topics import recheck_channel_reader
from pentad.apps.chat.views import channel_view, member_view, user_view
from pentad.core import audit
from pentad.core.errors import BadRequest, NotFound, PermissionDenied
from pentad.core.realtime.publish import publish


async def list_members(
    chat: ChatContext, channel_id: uuid.UUID, limit: int, offset: int
) -> list[schemas.Member]:
    await chat.access(channel_id)
    rows = await repository.list_members(chat.session, channel_id, limit=limit, offset=offset)
    return [member_view(member, user) for member, user in rows]


async def do_join(chat: ChatContext, channel_id: uuid.UUID) -> schemas.ChannelState:
    access = await chat.access(channel_id)
    if access.member is not None:
        return await get_channel(chat, channel_id)
    if access.channel.kind != "public":
        raise PermissionDenied("Only public channels can be joined freely.", code="not_public")
    if access.channel.archived_at is not None:
        raise ChannelArchived()
    await do_add_member(chat, access.channel, chat.actor.user, "member")
    return await get_channel(chat, channel_id)


async def do_add_member(chat: ChatContext, channel: ChatChannel, user: ChatUser, role: str) -> ChatMember:
    """Make `user` a member (the caller checked that they may), reading from the channel's end; a pending
    invitation of theirs is used up."""
    member = ChatMember(
        channel_id=channel.id,
        user_id=user.id,
        role=role,
        last_read_seq=channel.last_seq,
        last_delivered_seq=channel.last_seq,
    )
    chat.session.add(member)
    invite = await repository.get_invite_for(chat.session, channel.id, user.id)
    if invite is not None:
        await chat.session.delete(invite)
    await chat.session.flush()
    notify_member_added(chat, channel, user, role)
    return member


def notify_member_added(chat: ChatContext, channel: ChatChannel, user: ChatUser, role: str) -> None:
    publish(
        chat.session,
        channel_topic(channel.id),
        MemberEvent(type="member.added", channel_id=channel.id, user=user_view(user), role=role),
    )
    publish(
        chat.session,
        user_topic(user.id),
        UserChannelEvent(type="channel.added", channel=channel_view(channel)),
    )


async def do_add_members(
    chat: ChatContext, channel_id: uuid.UUID, data: schemas.MemberAdd
) -> list[schemas.Member]:
    access = await chat.access(channel_id)
    require_permission(access, CHANNEL_MANAGE)
    if access.channel.kind == "direct":
        raise BadRequest("Direct channels keep their two members.", code="direct_channel")
    users = await check_tenant_users(chat, data.user_ids)
    present = await repository.member_user_ids(chat.session, channel_id, [u.id for u in users])
    added = []
    for user in users:
        if user.id in present:
            continue
        member = await do_add_member(chat, access.channel, user, data.role)
        added.append(member_view(member, user))
    audit.record(
        chat.session,
        chat.audit_actor,
        "chat.members_added",
        resource_type="chat.channel",
        resource_id=channel_id,
        user_ids=[str(m.user.id) for m in added],
        role=data.role,
    )
    return added


async def do_update_member(
    chat: ChatContext, channel_id: uuid.UUID, user_id: uuid.UUID, role: str
) -> schemas.Member:
    access = await chat.access(channel_id)
    require_permission(access, CHANNEL_MANAGE)
    member = await repository.get_member(chat.session, channel_id, user_id)
    user = await repository.get_user(chat.session, user_id)
    if member is None or user is None:
        raise NotFound("That user is not a member of this channel.", code="member_not_found")
    member.role = role
    await chat.session.flush()
    publish(
        chat.session,
        channel_topic(channel_id),
        MemberEvent(type="member.updated", channel_id=channel_id, user=user_view(user), role=role),
    )
    audit.record(
        chat.session,
        chat.audit_actor,
        "chat.member_role_changed",
        resource_type="chat.channel",
        resource_id=channel_id,
        user_id=str(user_id),
        role=role,
    )
    return member_view(member, user)


async def do_remove_member(chat: ChatContext, channel_id: uuid.UUID, user_id: uuid.UUID) -> None:
    access = await chat.access(channel_id)
    if user_id != chat.actor.user_id:
        require_permission(access, CHANNEL_MANAGE)
    elif access.channel.kind == "direct":
        raise BadRequest("You cannot leave a direct conversation.", code="direct_channel")
    user = await repository.get_user(chat.session, user_id)
    if user is None or not await repository.delete_member(chat.session, channel_id, user_id):
        raise NotFound("That user is not a member of this channel.", code="member_not_found")
    notify_member_removed(chat, access.channel, user)
    action = "chat.member_left" if user_id == chat.actor.user_id else "chat.member_removed"
    audit.record(
        chat.session,
        chat.audit_actor,
        action,
        resource_type="chat.channel",
        resource_id=channel_id,
        user_id=str(user_id),
    )


def notify_member_removed(chat: ChatContext, channel: ChatChannel, user: ChatUser) -> None:
    """The channel hears that `user` is gone, they hear that the channel is, and their subscriptions to it
    are authorised again (so they end) once the change commits."""
    publish(
        chat.session,
        channel_topic(channel.id),
        MemberEvent(type="member.removed", channel_id=channel.id, user=user_view(user), role=None),
    )
    publish(
        chat.session,
        user_topic(user.id),
        UserChannelEvent(type="channel.removed", channel=channel_view(channel)),
    )
    recheck_channel_reader(chat.session, channel.id, user)
