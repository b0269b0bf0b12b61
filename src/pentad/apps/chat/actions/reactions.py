"""Emoji reactions to messages."""

from __future__ import annotations

import uuid

from pentad.apps.chat import repository, schemas, webhooks
from pentad.apps.chat.access import require_post
from pentad.apps.chat.actions.context import ChatContext, check_message_access
from pentad.apps.chat.events import ReactionEvent, channel_topic
from pentad.apps.chat.models import ChatReaction
from pentad.core.errors import Conflict
from pentad.core.realtime.publish import publish


async def do_react(chat: ChatContext, message_id: uuid.UUID, emoji: str, *, add: bool) -> schemas.Message:
    """Add or take back the caller's reaction; doing what is already done changes nothing."""
    message, access = await check_message_access(chat, message_id)
    require_post(access)
    if message.deleted_at is not None:
        raise Conflict("A deleted message cannot be reacted to.", code="message_deleted")
    existing = await repository.get_reaction(chat.session, message.id, chat.actor.user_id, emoji)
    if add == (existing is not None):
        return await chat.views.one(message)
    if add:
        chat.session.add(ChatReaction(message_id=message.id, user_id=chat.actor.user_id, emoji=emoji))
    else:
        assert existing is not None
        await chat.session.delete(existing)
    message.revision = await repository.next_seq(chat.session, message.channel_id)
    await chat.session.flush()
    view = await chat.views.one(message)
    event = notify_reaction(chat, view, emoji, add=add)
    await webhooks.dispatch(chat.session, chat.actor.tenant.id, event.type, event)
    return view


def notify_reaction(chat: ChatContext, view: schemas.Message, emoji: str, *, add: bool) -> ReactionEvent:
    event = ReactionEvent(
        type="reaction.added" if add else "reaction.removed",
        channel_id=view.channel_id,
        seq=view.revision,
        user_id=chat.actor.user_id,
        emoji=emoji,
        message=view,
    )
    publish(chat.session, channel_topic(view.channel_id), event)
    return event
