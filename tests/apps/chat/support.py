"""Checks shared by the chat behaviour tests: the audit trail, database snapshots, Pentad credentials and
many stored messages at once."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from pentad.apps.chat.models import ChatChannel, ChatMessage
from pentad.core.audit import AuditEvent
from pentad.core.db.base import Base, utcnow
from pentad.core.platform import Platform
from tests.apps.chat.factories import ChatUserFixture
from tests.factories import create_admin, create_user, issue_api_key


async def audit_events(platform: Platform, action: str) -> list[AuditEvent]:
    async with platform.database.transaction(writes=False) as session:
        query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.at)
        return list((await session.execute(query)).scalars())


async def admin_key(platform: Platform) -> str:
    """An API key of a Pentad admin (every permission, chat.admin included)."""
    return await issue_api_key(platform, await create_admin(platform))


async def member_key(platform: Platform) -> str:
    """An API key of an ordinary Pentad member."""
    return await issue_api_key(platform, await create_user(platform))


SNAPSHOT_TABLES = sorted(
    name for name in Base.metadata.tables if name.startswith("chat_") or name == "audit_events"
)


async def snapshot(platform: Platform) -> dict[str, list[str]]:
    """Every row of every chat table and of the audit log, to show that a refused request changed nothing."""
    found: dict[str, list[str]] = {}
    async with platform.database.transaction(writes=False) as session:
        for name in SNAPSHOT_TABLES:
            rows = (await session.execute(select(Base.metadata.tables[name]))).all()
            found[name] = sorted(repr(tuple(row)) for row in rows)
    return found


def changed_tables(before: dict[str, list[str]], after: dict[str, list[str]]) -> dict[str, Any]:
    return {
        name: {
            "gone": sorted(set(before[name]) - set(after[name])),
            "new": sorted(set(after[name]) - set(before[name])),
        }
        for name in before
        if before[name] != after[name]
    }


async def insert_messages(
    platform: Platform, user: ChatUserFixture, channel_id: uuid.UUID | str, count: int, prefix: str = "m"
) -> None:
    """Store `count` messages by `user` as sending them would (next sequence numbers, the channel's counter
    moved on), in one statement: a thousand sends through the API take long and test nothing more here."""
    channel_uuid = uuid.UUID(str(channel_id))
    async with platform.database.transaction() as session:
        channel = await session.get(ChatChannel, channel_uuid)
        assert channel is not None
        first = channel.last_seq + 1
        now = utcnow()
        session.add_all(
            ChatMessage(
                channel_id=channel_uuid,
                seq=first + number,
                revision=first + number,
                user_id=user.id,
                text=f"{prefix} {number}",
                html=f"<p>{prefix} {number}</p>",
                created_at=now,
            )
            for number in range(count)
        )
        channel.last_seq = first + count - 1
        channel.last_message_at = now
