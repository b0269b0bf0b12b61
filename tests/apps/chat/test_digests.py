"""E-mail digests of unread mentions: the `chat.send_digests` job mails each user with an address one
digest of the mentions still unread after the delay, to a real SMTP server on loopback, and never the
same mention twice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from email.message import Message
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from pentad.apps.chat.digests import SEND_DIGESTS
from pentad.apps.chat.models import ChatMessage
from pentad.core.config import Settings
from pentad.core.db.base import utcnow
from pentad.core.jobs.queue import enqueue
from pentad.core.platform import Platform
from tests.apps.chat.factories import ChatTenantFixture, ChatUserFixture, send
from tests.conftest import make_settings
from tests.core.auth.test_password_reset import Inbox
from tests.factories import free_port, run_due_jobs


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def settings(tmp_path: Path, database_url: str, smtp: tuple[Inbox, int]) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        apps=["chat"],
        mail={"host": "127.0.0.1", "port": smtp[1]},
        server={"base_url": "https://pentad.test"},
        chat={"digest_after_minutes": 30},
    )


@pytest.fixture
def inbox(smtp: tuple[Inbox, int]) -> Inbox:
    return smtp[0]


async def _run_digests(platform: Platform) -> None:
    async with platform.database.transaction() as session:
        await enqueue(session, SEND_DIGESTS)
    await run_due_jobs(platform)


async def _age_messages(platform: Platform, minutes: int) -> None:
    """Time passes: every message was sent `minutes` earlier than it was."""
    async with platform.database.transaction() as session:
        for message in await session.scalars(select(ChatMessage)):
            message.created_at -= timedelta(minutes=minutes)


def _part(message: Message, content_type: str) -> str:
    (part,) = (p for p in message.walk() if p.get_content_type() == content_type)
    body = part.get_payload(decode=True)
    assert isinstance(body, bytes)
    return body.decode()


async def _people(tenant: ChatTenantFixture) -> tuple[ChatUserFixture, ChatUserFixture]:
    ada = await tenant.user("ada", name="Ada <Admin>")
    bob = await tenant.user("bob", name="Bob", email="bob@example.com")
    return ada, bob


async def test_unread_mentions_are_mailed_once_after_the_delay(
    tenant: ChatTenantFixture, platform: Platform, inbox: Inbox
) -> None:
    ada, bob = await _people(tenant)
    general = await tenant.channel(ada, bob, name="general")
    ops = await tenant.channel(ada, bob, name="ops")
    await send(tenant.client, ada, general["id"], f"@{bob.handle} look at <b>this</b> & that")
    await send(tenant.client, ada, ops["id"], f"@{bob.handle} and the deploy")
    await send(tenant.client, ada, ops["id"], "no mention here")

    await _run_digests(platform)
    assert inbox.messages == []

    await _age_messages(platform, 31)
    await _run_digests(platform)
    (mail,) = inbox.messages
    assert (mail["To"], mail["Subject"]) == ("bob@example.com", "You were mentioned in 2 chat messages")
    text = _part(mail, "text/plain")
    assert "Ada <Admin> in #general:" in text
    assert "look at <b>this</b> & that" in text
    assert "Ada <Admin> in #ops:" in text
    assert "no mention here" not in text
    assert "https://pentad.test/chat" in text
    html = _part(mail, "text/html")
    assert "look at &lt;b&gt;this&lt;/b&gt; &amp; that" in html
    assert "Ada &lt;Admin&gt;" in html
    assert "<b>this</b>" not in html
    assert 'href="https://pentad.test/chat"' in html

    await _run_digests(platform)
    assert len(inbox.messages) == 1

    await send(tenant.client, ada, general["id"], f"@{bob.handle} one more")
    await _age_messages(platform, 31)
    await _run_digests(platform)
    assert len(inbox.messages) == 2
    assert inbox.messages[1]["Subject"] == "You were mentioned in a chat message"
    assert "look at" not in _part(inbox.messages[1], "text/plain")


async def test_read_mentions_are_not_mailed(
    tenant: ChatTenantFixture, platform: Platform, inbox: Inbox
) -> None:
    ada, bob = await _people(tenant)
    channel = await tenant.channel(ada, bob)
    message = await send(tenant.client, ada, channel["id"], f"@{bob.handle} ping")
    response = await tenant.client.post(
        f"/api/chat/channels/{channel['id']}/read", json={"seq": message["seq"]}, headers=bob.headers
    )
    assert response.status_code == 200

    await _age_messages(platform, 31)
    await _run_digests(platform)
    assert inbox.messages == []


async def test_users_without_an_address_or_deactivated_get_none(
    tenant: ChatTenantFixture, platform: Platform, inbox: Inbox
) -> None:
    ada = await tenant.user("ada")
    carol = await tenant.user("carol")
    dave = await tenant.user("dave", email="dave@example.com")
    channel = await tenant.channel(ada, carol, dave)
    await send(tenant.client, ada, channel["id"], f"@{carol.handle} @{dave.handle} ping")
    response = await tenant.client.post("/api/chat/server/users/dave/deactivate", headers=tenant.headers)
    assert response.status_code == 200

    await _age_messages(platform, 31)
    await _run_digests(platform)
    assert inbox.messages == []


async def test_deleted_messages_are_not_mailed(
    tenant: ChatTenantFixture, platform: Platform, inbox: Inbox
) -> None:
    ada, bob = await _people(tenant)
    channel = await tenant.channel(ada, bob)
    message = await send(tenant.client, ada, channel["id"], f"@{bob.handle} oops")
    response = await tenant.client.delete(f"/api/chat/messages/{message['id']}", headers=ada.headers)
    assert response.status_code == 200

    await _age_messages(platform, 31)
    await _run_digests(platform)
    assert inbox.messages == []


def test_digests_run_every_fifteen_minutes(platform: Platform) -> None:
    (schedule,) = [entry for entry in platform.jobs.registry.cron if entry.job == SEND_DIGESTS]
    assert schedule.schedule == "*/15 * * * *"
    now = utcnow()
    assert schedule.latest_tick(now).minute % 15 == 0
