"""Sending a message: the hot path of chat (see bench/chat.py)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from pentad.apps.chat import markdown, notifications, repository, schemas, webhooks
from pentad.apps.chat.access import ChannelAccess, require_post
from pentad.apps.chat.actions.context import ChatContext
from pentad.apps.chat.actions.messages import check_message_content, check_thread_parent, do_record_mentions
from pentad.apps.chat.events import MentionEvent, MessageEvent, channel_topic, emit_message_sent, user_topic
from pentad.apps.chat.exceptions import ClientIdReused, SlowMode
from pentad.apps.chat.models import ChatMember, ChatMessage
from pentad.apps.chat.permissions import CHANNEL_MODERATE
from pentad.apps.chat.settings import APP_NAME
from pentad.core.db.base import utcnow
from pentad.core.db.hooks import on_commit
from pentad.core.errors import BadRequest
from pentad.core.realtime.publish import publish


def check_slow_mode(access: ChannelAccess, member: ChatMember, now: datetime) -> None:
    seconds = access.channel.slow_mode_seconds
    if not seconds or access.has(CHANNEL_MODERATE) or member.last_sent_at is None:
        return
    wait = seconds - (now - member.last_sent_at).total_seconds()
    if wait > 0:
        raise SlowMode(int(wait) + 1)


async def do_send_message(
    chat: ChatContext, channel_id: uuid.UUID, data: schemas.MessageCreate
) -> tuple[schemas.Message, bool]:
    """Post a message; (message, created). A retry with the same client_id returns the original."""
    session = chat.session
    if data.client_id is not None:
        existing = await repository.get_message_by_client_id(session, chat.actor.user_id, data.client_id)
        if existing is not None:
            return await _replay(chat, existing, channel_id), False
    # The same statement tells whether the tenant has webhooks at all: most have none, and the send then
    # skips their lookup.
    access = await chat.access(channel_id, with_webhooks=True)
    require_post(access)
    check_message_content(chat, data.text, data.type, data.payload)
    parent = await check_thread_parent(chat, channel_id, data.parent_id)
    member = access.member
    assert member is not None
    now = utcnow()
    check_slow_mode(access, member, now)
    handles, mentions_channel = markdown.mentioned_handles(data.text)
    message = ChatMessage(
        channel_id=channel_id,
        user_id=chat.actor.user_id,
        client_id=data.client_id,
        parent_id=parent.id if parent else None,
        type=data.type,
        text=data.text,
        html=markdown.render(data.text) if data.text else "",
        payload=data.payload,
        mentions_channel=mentions_channel,
        has_attachments=bool(data.attachment_ids),
        created_at=now,
    )
    message_at = now if parent is None else None
    if data.client_id is None or session.get_bind().dialect.name == "sqlite":
        # No race to lose: without a client_id nothing can collide, and SQLite's write transactions
        # (BEGIN IMMEDIATE) run one at a time, so the check above already saw any earlier retry.
        message.seq = message.revision = await repository.next_seq(session, channel_id, message_at=message_at)
        session.add(message)
        await session.flush()
    else:
        try:
            # The sequence number is taken inside the savepoint: a send that loses a client_id race gives
            # it back, so the channel's numbers stay gapless.
            async with session.begin_nested():
                message.seq = message.revision = await repository.next_seq(
                    session, channel_id, message_at=message_at
                )
                session.add(message)
                await session.flush()
        except IntegrityError:
            # A concurrent retry with the same client_id won the race; answer with its message.
            existing = await repository.get_message_by_client_id(
                session, chat.actor.user_id, data.client_id, latest=True
            )
            if existing is None:
                raise
            return await _replay(chat, existing, channel_id), False
    seq = message.seq
    await _bind_attachments(chat, message, data.attachment_ids)
    mentioned = await do_record_mentions(chat, message, handles, data.mentioned_user_ids)
    member.last_sent_at = now
    await repository.advance_read(session, member, read_seq=seq, delivered_seq=seq)
    parent_view = None
    if parent is not None:
        parent.reply_count += 1
        parent.last_reply_at = now
        parent.revision = seq
        await session.flush()
        parent_view = await chat.views.one(parent)
    view = await chat.views.new(message, chat.actor.user, sorted(mentioned))
    notify_message_new(chat, view, parent_view, mentioned)
    if access.tenant_webhooks:
        await webhooks.dispatch(session, chat.actor.tenant.id, "message.new", view)
    await emit_message_sent(session, chat.actor.tenant.id, message)
    await notifications.message_posted(session, chat.platform, access.channel, view, mentioned)
    count_when_committed(chat)
    return view, True


def count_when_committed(chat: ChatContext) -> None:
    """`pentad_chat_messages_sent_total` counts the send once it has committed (a refused one never)."""
    sent = chat.platform.metrics.for_app(APP_NAME).counter("messages_sent", "Chat messages posted.")

    async def count() -> None:
        sent.inc()

    on_commit(chat.session, count)


def notify_message_new(
    chat: ChatContext, view: schemas.Message, parent: schemas.Message | None, mentioned: set[uuid.UUID]
) -> None:
    """message.new on the channel (with the thread's parent, whose reply count moved), mention.new to each
    member mentioned. The sender has read their own message: every subscriber can tell from message.new,
    so no read.updated goes out (it would double the fan-out of every send)."""
    channel_id = view.channel_id
    publish(
        chat.session,
        channel_topic(channel_id),
        MessageEvent(type="message.new", channel_id=channel_id, seq=view.seq, message=view, parent=parent),
    )
    for user_id in mentioned:
        publish(chat.session, user_topic(user_id), MentionEvent(channel_id=channel_id, message=view))


async def _replay(chat: ChatContext, existing: ChatMessage, channel_id: uuid.UUID) -> schemas.Message:
    if existing.channel_id != channel_id:
        raise ClientIdReused()
    await chat.access(channel_id)
    return await chat.views.one(existing)


async def _bind_attachments(
    chat: ChatContext, message: ChatMessage, attachment_ids: Sequence[uuid.UUID]
) -> None:
    if not attachment_ids:
        return
    found = await repository.unbound_attachments(
        chat.session, attachment_ids, message.channel_id, chat.actor.user_id
    )
    if len(found) != len(set(attachment_ids)):
        raise BadRequest(
            "Attach only files you uploaded to this channel and have not sent yet.", code="bad_attachment"
        )
    for attachment in found:
        attachment.message_id = message.id
    await chat.session.flush()
