"""Chat's domain event `chat.message_sent`, observed by a tiny app that does not import chat's code paths:
one delivery per stored message, none for a send that was refused."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from pentad.app import create_app
from pentad.apps.chat.events import MESSAGE_SENT, MessageSent
from pentad.apps.chat.spec import APP as CHAT
from pentad.core.apps import AppSpec
from pentad.core.context import JobContext
from pentad.core.db.engine import Database
from pentad.core.events import Event, EventSubscriber
from pentad.core.platform import Platform
from tests.apps.chat.factories import create_tenant, send
from tests.conftest import make_settings
from tests.factories import run_due_jobs

received: list[Event[MessageSent]] = []


async def _observe(_context: JobContext, event: Event[Any]) -> None:
    received.append(event)


OBSERVER = AppSpec(
    name="observer",
    title="Observer",
    subscribers=[EventSubscriber(MESSAGE_SENT.name, _observe, name="observer.message_sent")],
)


@pytest.fixture
async def chat(tmp_path: Path, database_url: str, database: Database) -> Any:
    received.clear()
    settings = make_settings(tmp_path, database_url, apps=["chat"])
    app = create_app(settings, database=database, apps=[CHAT, OBSERVER])
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield app.state.platform, client


async def test_each_sent_message_is_delivered_as_chat_message_sent(
    chat: tuple[Platform, httpx.AsyncClient],
) -> None:
    platform, client = chat
    tenant = await create_tenant(platform, client)
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    channel = await tenant.channel(alice, bob)
    first = await send(client, alice, channel["id"], "hello")
    reply = await send(client, bob, channel["id"], "hi", parent_id=first["id"])
    refused = await client.post(
        f"/api/chat/channels/{channel['id']}/messages", json={"text": ""}, headers=alice.headers
    )
    assert refused.status_code == 400
    await run_due_jobs(platform)

    assert [event.payload for event in received] == [
        MessageSent(
            tenant_id=tenant.id,
            channel_id=uuid.UUID(channel["id"]),
            message_id=uuid.UUID(first["id"]),
            seq=first["seq"],
            user_id=alice.id,
            parent_id=None,
        ),
        MessageSent(
            tenant_id=tenant.id,
            channel_id=uuid.UUID(channel["id"]),
            message_id=uuid.UUID(reply["id"]),
            seq=reply["seq"],
            user_id=bob.id,
            parent_id=uuid.UUID(first["id"]),
        ),
    ]
    assert len({event.id for event in received}) == 2
