"""Typing indicators and presence: signals to the channels, of which only the user's status is stored."""

from __future__ import annotations

import uuid

from pentad.apps.chat import repository, schemas
from pentad.apps.chat.access import require_post
from pentad.apps.chat.actions.context import ChatContext
from pentad.apps.chat.events import PresenceEvent, TypingEvent, channel_topic
from pentad.apps.chat.views import user_view
from pentad.core.auth.cache import forget_on_commit
from pentad.core.db.base import utcnow
from pentad.core.realtime.publish import publish

PRESENCE_FANOUT_CHANNELS = 200


async def do_typing(
    chat: ChatContext, channel_id: uuid.UUID, *, active: bool, parent_id: uuid.UUID | None
) -> None:
    """Those who may post tell the channel they started or stopped typing (in a thread, with parent_id)."""
    access = await chat.access(channel_id)
    require_post(access)
    publish(
        chat.session,
        channel_topic(channel_id),
        TypingEvent(
            type="typing.start" if active else "typing.stop",
            channel_id=channel_id,
            user=user_view(chat.actor.user),
            parent_id=parent_id,
        ),
    )


async def do_set_presence(chat: ChatContext, status: str) -> schemas.ChatUser:
    """Store the caller's status; a change is told to (up to PRESENCE_FANOUT_CHANNELS of) their channels."""
    user = chat.actor.user
    changed = user.presence != status
    user.presence = status
    user.last_seen_at = utcnow()
    await chat.session.flush()
    # The cached chat actor (tenancy.ACTOR_ROWS) holds the old status and time until forgotten.
    forget_on_commit(chat.session, chat.platform.principals, user.id)
    view = user_view(user)
    if changed:
        await notify_presence(chat, view)
    return view


async def notify_presence(chat: ChatContext, view: schemas.ChatUser) -> None:
    channel_ids = await repository.list_member_channel_ids(chat.session, view.id, PRESENCE_FANOUT_CHANNELS)
    for channel_id in channel_ids:
        publish(chat.session, channel_topic(channel_id), PresenceEvent(user=view))
