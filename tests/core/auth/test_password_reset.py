"""Password reset by e-mailed single-use token, sent by the mail job to a real SMTP server on loopback."""

from __future__ import annotations

import re
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from pentad.app import create_app
from pentad.core.db.engine import Database
from pentad.core.platform import Platform
from tests.conftest import make_settings
from tests.factories import DEFAULT_PASSWORD, bearer, create_user, free_port, login, run_due_jobs


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


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
async def mail_client(
    tmp_path: Path, database_url: str, database: Database, smtp: tuple[Inbox, int]
) -> tuple[httpx.AsyncClient, Platform, Inbox]:
    inbox, port = smtp
    settings = make_settings(
        tmp_path,
        database_url,
        mail={"host": "127.0.0.1", "port": port},
        server={"base_url": "https://pentad.test"},
    )
    app = create_app(settings, database=database, apps=[])
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver"), app.state.platform, inbox


def _token_from(message: Message) -> str:
    (text,) = (part for part in message.walk() if part.get_content_type() == "text/plain")
    body = text.get_payload(decode=True)
    assert isinstance(body, bytes)
    match = re.search(r"https://pentad\.test/reset-password\?token=(\S+)", body.decode())
    assert match, body
    return match.group(1)


async def test_reset_link_sets_a_new_password_once(
    mail_client: tuple[httpx.AsyncClient, Platform, Inbox],
) -> None:
    client, platform, inbox = mail_client
    user = await create_user(platform)
    old_session = await login(client, user.email)

    response = await client.post("/api/auth/password-reset", json={"email": user.email})
    assert response.status_code == 202
    await run_due_jobs(platform)
    assert len(inbox.messages) == 1
    assert inbox.messages[0]["To"] == user.email
    token = _token_from(inbox.messages[0])

    done = await client.post(
        "/api/auth/password-reset/confirm", json={"token": token, "new_password": "a fresh long passphrase"}
    )
    assert done.status_code == 204
    await login(client, user.email, "a fresh long passphrase")
    wrong = await client.post("/api/auth/login", json={"email": user.email, "password": DEFAULT_PASSWORD})
    assert wrong.status_code == 401
    # Every session that existed before the reset is gone.
    assert (await client.get("/api/me", headers=bearer(old_session["access_token"]))).status_code == 401

    again = await client.post(
        "/api/auth/password-reset/confirm", json={"token": token, "new_password": "yet another passphrase"}
    )
    assert again.status_code == 401
    assert again.json()["code"] == "invalid_token"


async def test_unknown_address_gets_the_same_answer_and_no_mail(
    mail_client: tuple[httpx.AsyncClient, Platform, Inbox],
) -> None:
    client, platform, inbox = mail_client
    response = await client.post("/api/auth/password-reset", json={"email": "nobody@example.com"})
    assert response.status_code == 202
    await run_due_jobs(platform)
    assert inbox.messages == []


async def test_a_newer_link_replaces_the_older_one(
    mail_client: tuple[httpx.AsyncClient, Platform, Inbox],
) -> None:
    client, platform, inbox = mail_client
    user = await create_user(platform)
    await client.post("/api/auth/password-reset", json={"email": user.email})
    await client.post("/api/auth/password-reset", json={"email": user.email})
    await run_due_jobs(platform)
    first, second = (_token_from(m) for m in inbox.messages)
    stale = await client.post(
        "/api/auth/password-reset/confirm", json={"token": first, "new_password": "a fresh long passphrase"}
    )
    assert stale.status_code == 401
    fresh = await client.post(
        "/api/auth/password-reset/confirm", json={"token": second, "new_password": "a fresh long passphrase"}
    )
    assert fresh.status_code == 204


async def test_weak_new_password_changes_nothing(
    mail_client: tuple[httpx.AsyncClient, Platform, Inbox],
) -> None:
    client, platform, inbox = mail_client
    user = await create_user(platform)
    await client.post("/api/auth/password-reset", json={"email": user.email})
    await run_due_jobs(platform)
    token = _token_from(inbox.messages[0])
    weak = await client.post(
        "/api/auth/password-reset/confirm", json={"token": token, "new_password": "short"}
    )
    assert weak.status_code == 400
    await login(client, user.email)
    ok = await client.post(
        "/api/auth/password-reset/confirm", json={"token": token, "new_password": "a fresh long passphrase"}
    )
    assert ok.status_code == 204
