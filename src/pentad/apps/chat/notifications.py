"""Notifications of new messages outside the open app: Web Push to the recipients' devices."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.chat import push, repository, schemas
from pentad.apps.chat.models import ChatChannel
from pentad.apps.chat.settings import ChatSettings
from pentad.core.jobs.queue import enqueue
from pentad.core.platform import Platform

PREVIEW_CHARS = 120
SMALL_CHANNEL_KINDS = ("direct", "group")


def _title(channel: ChatChannel, message: schemas.Message) -> str:
    sender = message.user.name if message.user is not None else "Someone"
    if channel.kind == "direct" or not channel.name:
        return sender
    return f"{sender} in {'#' if channel.kind in ('public', 'private') else ''}{channel.name}"


def _preview(message: schemas.Message) -> str:
    text = " ".join(message.text.split())
    if len(text) > PREVIEW_CHARS:
        return text[: PREVIEW_CHARS - 1] + "…"
    if text:
        return text
    return "Sent an attachment" if message.attachments else "New message"


async def message_posted(
    session: AsyncSession,
    platform: Platform,
    channel: ChatChannel,
    message: schemas.Message,
    mentioned: set[uuid.UUID],
) -> None:
    """Queue push notifications for a new message: mentioned members, and the other members of direct and
    group channels; never the sender, nor deactivated users. One job per device."""
    if not mentioned and channel.kind not in SMALL_CHANNEL_KINDS:
        return
    targets = await repository.push_targets(
        session,
        channel.id,
        user_ids=mentioned,
        all_members=channel.kind in SMALL_CHANNEL_KINDS,
        sender_id=message.user.id if message.user is not None else None,
    )
    if not targets:
        return
    tenant = await repository.get_tenant(session, channel.tenant_id)
    # Pentad's own chat page lives in the default tenant; other tenants' service workers link themselves.
    own_pages = tenant is not None and tenant.slug == platform.app_settings(ChatSettings).default_tenant
    notification = push.PushNotification(
        title=_title(channel, message),
        body=_preview(message),
        url=f"/chat?channel={channel.id}" if own_pages else None,
        channel_id=channel.id,
        message_id=message.id,
    )
    payload = notification.model_dump(mode="json")
    for subscription_id in targets:
        await enqueue(
            session, push.PUSH_SEND_JOB, {"subscription_id": str(subscription_id), "notification": payload}
        )
