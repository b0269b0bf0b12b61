"""Read receipts: how far each member has read and received a channel."""

from __future__ import annotations

import uuid

from pentad.apps.chat import repository, schemas
from pentad.apps.chat.actions.context import ChatContext
from pentad.apps.chat.events import ReadEvent, channel_topic
from pentad.apps.chat.models import ChatMember
from pentad.apps.chat.views import channel_states
from pentad.core.errors import PermissionDenied
from pentad.core.realtime.publish import publish


async def do_mark(
    chat: ChatContext, channel_id: uuid.UUID, *, read_seq: int | None, delivered_seq: int | None
) -> schemas.ChannelState:
    """Move the caller's read and delivered positions forward (never back, never past the channel's end)."""
    access = await chat.access(channel_id)
    member = access.member
    if member is None:
        raise PermissionDenied("Only members keep read state.", code="not_a_member")
    last = access.channel.last_seq
    read_seq = min(read_seq, last) if read_seq is not None else None
    delivered_seq = min(delivered_seq, last) if delivered_seq is not None else None
    if await repository.advance_read(chat.session, member, read_seq=read_seq, delivered_seq=delivered_seq):
        notify_read(chat, member)
    return (await channel_states(chat.session, chat.actor.user_id, [(access.channel, member)]))[0]


def notify_read(chat: ChatContext, member: ChatMember) -> None:
    publish(
        chat.session,
        channel_topic(member.channel_id),
        ReadEvent(
            channel_id=member.channel_id,
            user_id=member.user_id,
            last_read_seq=member.last_read_seq,
            last_delivered_seq=member.last_delivered_seq,
        ),
    )
