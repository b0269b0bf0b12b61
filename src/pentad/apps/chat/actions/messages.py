"""Reading messages (history, threads, sync, pins, earlier versions) and the checks every message change
shares: content limits and blocked words, thread parents, mentions."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import orjson

from pentad.apps.chat import repository, schemas
from pentad.apps.chat.actions.context import ChatContext, check_message_access
from pentad.apps.chat.exceptions import BlockedWord, MessageNotFound
from pentad.apps.chat.models import ChatMention, ChatMessage
from pentad.core.errors import BadRequest


@lru_cache(maxsize=64)
def _word_pattern(words: tuple[str, ...]) -> re.Pattern[str] | None:
    if not words:
        return None
    return re.compile(r"(?<!\w)(" + "|".join(re.escape(w) for w in words) + r")(?!\w)", re.IGNORECASE)


def check_message_content(
    chat: ChatContext, text: str, message_type: str, payload: dict[str, Any] | None
) -> None:
    settings = chat.settings
    if len(text) > settings.max_message_length:
        raise BadRequest(
            f"The text is longer than {settings.max_message_length} characters.", code="message_too_long"
        )
    if payload is not None and len(orjson.dumps(payload)) > settings.max_payload_bytes:
        raise BadRequest(
            f"The payload is larger than {settings.max_payload_bytes} bytes.", code="payload_too_large"
        )
    if message_type == "text" and not text.strip() and payload is None:
        raise BadRequest("A text message needs text.", code="empty_message")
    pattern = _word_pattern(tuple(chat.actor.tenant.blocked_words))
    if pattern is not None and text and pattern.search(text):
        raise BlockedWord()


async def check_thread_parent(
    chat: ChatContext, channel_id: uuid.UUID, parent_id: uuid.UUID | None, *, replying: bool = True
) -> ChatMessage | None:
    """A thread's first message; once deleted it takes no new replies, but its thread stays readable."""
    if parent_id is None:
        return None
    parent = await repository.get_message(chat.session, parent_id)
    if parent is None or parent.channel_id != channel_id:
        raise MessageNotFound()
    if parent.parent_id is not None:
        raise BadRequest("Reply to the thread's first message, not to a reply.", code="nested_thread")
    if replying and parent.deleted_at is not None:
        raise BadRequest("That message was deleted.", code="message_deleted")
    return parent


async def do_record_mentions(
    chat: ChatContext, message: ChatMessage, handles: set[str], user_ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    """Store who `message` mentions (by @handle or id); only members count, so mentioning someone does
    not leak a private channel to them."""
    candidates = set(user_ids)
    if handles:
        users = await repository.get_users_by_handles(chat.session, chat.actor.tenant.id, handles)
        candidates |= {u.id for u in users}
    candidates.discard(chat.actor.user_id)
    if not candidates:
        return set()
    mentioned = await repository.member_user_ids(chat.session, message.channel_id, candidates)
    for user_id in mentioned:
        chat.session.add(
            ChatMention(
                message_id=message.id, user_id=user_id, channel_id=message.channel_id, seq=message.seq
            )
        )
    if mentioned:
        await chat.session.flush()
    return mentioned


async def get_message(chat: ChatContext, message_id: uuid.UUID) -> schemas.Message:
    message, _ = await check_message_access(chat, message_id)
    return await chat.views.one(message)


async def list_message_history(chat: ChatContext, message_id: uuid.UUID) -> list[schemas.MessageEdit]:
    message, _ = await check_message_access(chat, message_id)
    return [
        schemas.MessageEdit.model_validate(e) for e in await repository.list_edits(chat.session, message.id)
    ]


async def list_pinned(chat: ChatContext, channel_id: uuid.UUID) -> list[schemas.Message]:
    await chat.access(channel_id)
    return await chat.views.build(await repository.list_pinned(chat.session, channel_id, 100))


async def list_messages(
    chat: ChatContext,
    channel_id: uuid.UUID,
    *,
    before: int | None,
    after: int | None,
    limit: int,
    parent_id: uuid.UUID | None = None,
) -> schemas.MessagePage:
    access = await chat.access(channel_id)
    if parent_id is not None:
        await check_thread_parent(chat, channel_id, parent_id, replying=False)
    limit = min(limit, chat.settings.history_page_max)
    rows = await repository.list_messages(
        chat.session, channel_id, parent_id=parent_id, before=before, after=after, limit=limit
    )
    has_more = len(rows) > limit
    rows = rows[:limit]
    if after is None:
        rows.reverse()
    return schemas.MessagePage(
        messages=await chat.views.build(rows), has_more=has_more, last_seq=access.channel.last_seq
    )


async def list_changes(chat: ChatContext, channel_id: uuid.UUID, since: int, limit: int) -> schemas.SyncPage:
    """What changed in a channel after revision `since`, oldest first: what a reconnecting client missed."""
    access = await chat.access(channel_id)
    limit = min(limit, chat.settings.history_page_max)
    rows = await repository.list_changes(chat.session, channel_id, since, limit + 1)
    page = rows[:limit]
    # A thread reply and its parent share a revision; a page never ends between them, or `since=<last
    # revision>` would skip the second one.
    if len(rows) > limit and rows[limit].revision == page[-1].revision:
        page.append(rows[limit])
    has_more = len(rows) > len(page)
    last_seq = access.channel.last_seq
    # The channel row was read before the changes, when every revision up to its last_seq was
    # committed: the final page covers the channel up to there.
    next_since = page[-1].revision if has_more else max(since, last_seq, page[-1].revision if page else 0)
    return schemas.SyncPage(
        messages=await chat.views.build(page), has_more=has_more, next_since=next_since, last_seq=last_seq
    )
