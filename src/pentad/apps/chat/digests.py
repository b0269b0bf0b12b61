"""E-mail digests of unread mentions: who was mentioned and has not looked for a while gets one e-mail.

The cron job `chat.send_digests` (every 15 minutes) finds users with an e-mail address whose mentions are
still unread PENTAD_CHAT__DIGEST_AFTER_MINUTES after they were made, and queues one e-mail per user
listing them. Each member's `digested_seq` then moves past what was mailed, in the same transaction as
the queued e-mail, so a mention is mailed at most once (reading it stops it being mailed at all).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.chat import repository
from pentad.apps.chat.models import ChatChannel, ChatMessage
from pentad.apps.chat.settings import ChatSettings
from pentad.core.context import AppContext
from pentad.core.db.base import utcnow
from pentad.core.mail import enqueue_mail

if TYPE_CHECKING:
    from pentad.core.context import JobContext

SEND_DIGESTS = "chat.send_digests"
TEMPLATE = "chat_digest"
RECIPIENTS_PER_BATCH = 100
MENTIONS_SHOWN = 20
SNIPPET_CHARS = 200


def _channel_label(channel: ChatChannel) -> str:
    if channel.name:
        return f"#{channel.name}"
    return "a direct message" if channel.kind == "direct" else "a group conversation"


def _snippet(message: ChatMessage) -> str:
    text = " ".join(message.text.split())
    if not text:
        return f"({message.type} message)"
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"


async def send_digest_batch(session: AsyncSession, platform: AppContext, before: datetime) -> int:
    """Queue the digests of up to RECIPIENTS_PER_BATCH users, for mentions made before `before`; returns
    how many users got one."""
    recipients = await repository.list_digest_recipients(session, before, RECIPIENTS_PER_BATCH)
    rows = await repository.list_digest_mentions(session, [user.id for user in recipients], before)
    authors = await repository.get_users(session, {m.user_id for _, m, _ in rows if m.user_id})
    mentions: dict[uuid.UUID, list[tuple[ChatMessage, ChatChannel]]] = defaultdict(list)
    for user_id, message, channel in rows:
        mentions[user_id].append((message, channel))
    link = platform.base_url.rstrip("/") + "/chat"
    for user in recipients:
        found = mentions.get(user.id)
        if not found or user.email is None:
            continue
        shown: list[dict[str, Any]] = []
        for message, channel in found[-MENTIONS_SHOWN:]:
            author = authors.get(message.user_id) if message.user_id else None
            shown.append(
                {
                    "channel": _channel_label(channel),
                    "author": author.name if author else "Someone",
                    "snippet": _snippet(message),
                }
            )
        await enqueue_mail(
            session,
            platform.keyring,
            TEMPLATE,
            to=user.email,
            name=user.name,
            count=len(found),
            mentions=shown,
            more=len(found) - len(shown),
            link=link,
        )
        last_seq: dict[uuid.UUID, int] = {}
        for message, channel in found:
            last_seq[channel.id] = max(last_seq.get(channel.id, 0), message.seq)
        for channel_id, seq in last_seq.items():
            await repository.advance_digested(session, channel_id, user.id, seq)
    return len(recipients)


async def send_digests(context: JobContext, _payload: dict[str, Any]) -> None:
    """Job `chat.send_digests`: every due digest, a batch of users per transaction."""
    platform = context.platform
    before = utcnow() - timedelta(minutes=platform.app_settings(ChatSettings).digest_after_minutes)
    while True:
        async with platform.database.transaction() as session:
            handled = await send_digest_batch(session, platform, before)
        if handled < RECIPIENTS_PER_BATCH:
            return
