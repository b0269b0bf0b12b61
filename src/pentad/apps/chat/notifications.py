"""Notifications of new messages outside the open app: Web Push (placeholder, filled in later)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.chat import schemas
from pentad.apps.chat.models import ChatChannel
from pentad.core.platform import Platform


async def message_posted(
    session: AsyncSession,
    platform: Platform,
    channel: ChatChannel,
    message: schemas.Message,
    mentioned: set[uuid.UUID],
) -> None:
    """Queue push notifications for a new message: mentioned members, and the other members of direct and
    group channels."""
    del session, platform, channel, message, mentioned
