"""Invitations to a channel: sending, listing one's own, accepting and declining."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from pentad.apps.chat import repository, schemas
from pentad.apps.chat.access import require_permission
from pentad.apps.chat.actions.channels import get_channel
from pentad.apps.chat.actions.context import ChatContext, check_tenant_users
from pentad.apps.chat.actions.members import do_add_member
from pentad.apps.chat.events import UserChannelEvent, user_topic
from pentad.apps.chat.models import ChatChannel, ChatInvite, ChatUser
from pentad.apps.chat.permissions import CHANNEL_MANAGE
from pentad.apps.chat.views import channel_view
from pentad.core.errors import BadRequest, NotFound, PermissionDenied
from pentad.core.realtime.publish import publish


async def do_invite(chat: ChatContext, channel_id: uuid.UUID, user_ids: Sequence[uuid.UUID]) -> int:
    """Invite users who are neither members nor invited yet; the number invited."""
    access = await chat.access(channel_id)
    require_permission(access, CHANNEL_MANAGE)
    if access.channel.kind == "direct":
        raise BadRequest("Direct channels keep their two members.", code="direct_channel")
    users = await check_tenant_users(chat, user_ids)
    present = await repository.member_user_ids(chat.session, channel_id, [u.id for u in users])
    invited = []
    for user in users:
        if user.id in present or await repository.get_invite_for(chat.session, channel_id, user.id):
            continue
        chat.session.add(ChatInvite(channel_id=channel_id, user_id=user.id, invited_by=chat.actor.user_id))
        invited.append(user)
    await chat.session.flush()
    notify_invited(chat, access.channel, invited)
    return len(invited)


def notify_invited(chat: ChatContext, channel: ChatChannel, users: Sequence[ChatUser]) -> None:
    view = channel_view(channel)
    for user in users:
        publish(chat.session, user_topic(user.id), UserChannelEvent(type="invite.received", channel=view))


async def list_invites(chat: ChatContext) -> list[schemas.Invite]:
    rows = await repository.list_invites(chat.session, chat.actor.user_id)
    return [
        schemas.Invite(
            id=invite.id,
            channel=channel_view(channel),
            invited_by=invite.invited_by,
            created_at=invite.created_at,
        )
        for invite, channel in rows
    ]


async def do_answer_invite(
    chat: ChatContext, invite_id: uuid.UUID, *, accept: bool
) -> schemas.ChannelState | None:
    """Accept (join the channel, unless banned from it) or decline; the channel joined, or None."""
    invite = await repository.get_invite(chat.session, invite_id)
    if invite is None or invite.user_id != chat.actor.user_id:
        raise NotFound("No such invitation.", code="invite_not_found")
    channel = await repository.get_channel(chat.session, invite.channel_id)
    if not accept or channel is None:
        await chat.session.delete(invite)
        await chat.session.flush()
        return None
    banned = await repository.banned_channel_ids(chat.session, chat.actor.tenant.id, chat.actor.user_id)
    if channel.id in banned or None in banned:
        raise PermissionDenied("You are banned from this channel.", code="banned")
    await do_add_member(chat, channel, chat.actor.user, "member")
    return await get_channel(chat, channel.id)
