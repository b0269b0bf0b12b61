"""Changing a sent message: editing (earlier versions kept), deleting (a tombstone), pinning."""

from __future__ import annotations

import uuid

from pentad.apps.chat import markdown, repository, schemas, webhooks
from pentad.apps.chat.access import require_permission, require_post
from pentad.apps.chat.actions.context import ChatContext, check_message_access
from pentad.apps.chat.actions.messages import check_message_content, do_record_mentions
from pentad.apps.chat.events import MessageChange, MessageEvent, channel_topic
from pentad.apps.chat.models import ChatMessage, ChatMessageEdit
from pentad.apps.chat.permissions import CHANNEL_MODERATE, CHANNEL_POST
from pentad.core import audit
from pentad.core.db.base import utcnow
from pentad.core.errors import Conflict, PermissionDenied
from pentad.core.realtime.publish import publish


async def do_update_message(
    chat: ChatContext, message_id: uuid.UUID, data: schemas.MessageUpdate
) -> schemas.Message:
    message, access = await check_message_access(chat, message_id)
    if message.user_id != chat.actor.user_id:
        raise PermissionDenied("Only the author can edit a message.", code="not_author")
    require_post(access)
    if message.deleted_at is not None:
        raise Conflict("A deleted message cannot be edited.", code="message_deleted")
    text = data.text if data.text is not None else message.text
    payload = data.payload if data.payload is not None else message.payload
    check_message_content(chat, text, message.type, payload)
    if text == message.text and payload == message.payload:
        return await chat.views.one(message)
    chat.session.add(
        ChatMessageEdit(
            message_id=message.id, text=message.text, payload=message.payload, edited_by=chat.actor.user_id
        )
    )
    handles, mentions_channel = markdown.mentioned_handles(text)
    message.text, message.payload = text, payload
    message.html = markdown.render(text) if text else ""
    message.mentions_channel = mentions_channel
    message.edited_at = utcnow()
    message.revision = await repository.next_seq(chat.session, message.channel_id)
    await repository.delete_mentions(chat.session, message.id)
    await chat.session.flush()
    await do_record_mentions(chat, message, handles, [])
    return await _changed(chat, message, "message.updated")


async def do_delete_message(chat: ChatContext, message_id: uuid.UUID) -> schemas.Message:
    """The author, or a moderator (audited), deletes a message; deleting it again changes nothing."""
    message, access = await check_message_access(chat, message_id)
    own = message.user_id == chat.actor.user_id
    if not own:
        require_permission(access, CHANNEL_MODERATE)
    if message.deleted_at is not None:
        return await chat.views.one(message)
    # A tombstone keeps nothing of what was said: no text, no earlier versions, no files offered.
    message.text, message.html, message.payload = "", "", None
    message.has_attachments = False
    message.deleted_at = utcnow()
    message.pinned_at = None
    message.revision = await repository.next_seq(chat.session, message.channel_id)
    await repository.delete_mentions(chat.session, message.id)
    await repository.delete_edits(chat.session, message.id)
    if not own:
        audit.record(
            chat.session,
            chat.audit_actor,
            "chat.message_deleted_by_moderator",
            resource_type="chat.message",
            resource_id=message.id,
            channel_id=str(message.channel_id),
            author_id=str(message.user_id),
        )
    return await _changed(chat, message, "message.deleted")


async def do_set_pinned(chat: ChatContext, message_id: uuid.UUID, *, pinned: bool) -> schemas.Message:
    """Moderators pin in named channels; any member in direct and group conversations."""
    message, access = await check_message_access(chat, message_id)
    require_permission(
        access, CHANNEL_MODERATE if access.channel.kind in ("public", "private") else CHANNEL_POST
    )
    if message.deleted_at is not None:
        raise Conflict("A deleted message cannot be pinned.", code="message_deleted")
    if (message.pinned_at is not None) == pinned:
        return await chat.views.one(message)
    message.pinned_at = utcnow() if pinned else None
    message.pinned_by = chat.actor.user_id if pinned else None
    message.revision = await repository.next_seq(chat.session, message.channel_id)
    return await _changed(chat, message, "message.updated")


async def _changed(chat: ChatContext, message: ChatMessage, kind: MessageChange) -> schemas.Message:
    await chat.session.flush()
    view = await chat.views.one(message)
    notify_message_changed(chat, view, kind)
    await webhooks.dispatch(chat.session, chat.actor.tenant.id, kind, view)
    return view


def notify_message_changed(chat: ChatContext, view: schemas.Message, kind: MessageChange) -> None:
    """The message's new state on its channel, under the revision the change took."""
    publish(
        chat.session,
        channel_topic(view.channel_id),
        MessageEvent(type=kind, channel_id=view.channel_id, seq=view.revision, message=view),
    )
