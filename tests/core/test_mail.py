"""Templated mail, queued encrypted in the caller's transaction and delivered by the `core.send_mail`
job to a real SMTP server on loopback, with retries while the server is away."""

from __future__ import annotations

import json
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import jinja2
import pytest
from aiosmtpd.controller import Controller

from pentad.app import create_app
from pentad.core.db.base import utcnow
from pentad.core.db.engine import Database
from pentad.core.jobs.models import JobStatus
from pentad.core.mail import SEND_MAIL, enqueue_mail, render_mail
from pentad.core.platform import Platform
from tests.conftest import make_settings
from tests.core.auth.test_password_reset import Inbox
from tests.core.jobs.conftest import get_job, set_job
from tests.factories import free_port, run_due_jobs

LINK = "https://pentad.test/reset-password?token=prt_abc&x=<y>"


def _part(message: Message, content_type: str) -> str:
    (part,) = (p for p in message.walk() if p.get_content_type() == content_type)
    body = part.get_payload(decode=True)
    assert isinstance(body, bytes)
    return body.decode()


def test_a_template_renders_subject_text_and_escaped_html() -> None:
    mail = render_mail("password_reset", to="ada@example.com", link=LINK, minutes=30)
    assert (mail.to, mail.subject) == ("ada@example.com", "Reset your Pentad password")
    assert f"within 30 minutes:\n{LINK}\n" in mail.text
    assert mail.html is not None
    assert 'href="https://pentad.test/reset-password?token=prt_abc&amp;x=&lt;y&gt;"' in mail.html
    assert "<y>" not in mail.html


def test_a_missing_template_variable_is_an_error() -> None:
    with pytest.raises(jinja2.UndefinedError):
        render_mail("password_reset", to="ada@example.com", minutes=30)


class Relay:
    """An SMTP server on a loopback port that can be started late, as a relay coming back."""

    def __init__(self) -> None:
        self.inbox = Inbox()
        self.port = free_port()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()


@pytest.fixture
def relay() -> Iterator[Relay]:
    relay = Relay()
    yield relay
    if relay.controller is not None:
        relay.controller.stop()


def _platform(tmp_path: Path, database_url: str, database: Database, relay: Relay | None) -> Platform:
    mail = {"host": "127.0.0.1", "port": relay.port, "timeout": 5} if relay else {}
    settings = make_settings(tmp_path, database_url, mail=mail, jobs={"backoff_base": 60})
    platform: Platform = create_app(settings, database=database, apps=[]).state.platform
    return platform


async def test_queued_mail_is_encrypted_then_delivered(
    tmp_path: Path, database_url: str, database: Database, relay: Relay
) -> None:
    platform = _platform(tmp_path, database_url, database, relay)
    relay.start()
    async with platform.database.transaction() as session:
        job_id = await enqueue_mail(
            session, platform.keyring, "password_reset", to="ada@example.com", link=LINK, minutes=30
        )
    stored = await get_job(platform, job_id)
    assert (stored.name, stored.payload) == (SEND_MAIL, {"template": "password_reset"})
    assert stored.secret is not None
    assert "prt_abc" not in stored.secret + json.dumps(stored.payload)
    assert "ada@example.com" not in stored.secret

    await run_due_jobs(platform)
    (message,) = relay.inbox.messages
    assert (message["To"], message["Subject"]) == ("ada@example.com", "Reset your Pentad password")
    assert message["From"] == platform.settings.mail.sender
    assert LINK in _part(message, "text/plain")
    assert "Choose a new password" in _part(message, "text/html")
    done = await get_job(platform, job_id)
    assert (done.status, done.secret) == (JobStatus.SUCCEEDED, None)


async def test_delivery_is_retried_until_the_relay_answers(
    tmp_path: Path, database_url: str, database: Database, relay: Relay
) -> None:
    platform = _platform(tmp_path, database_url, database, relay)
    async with platform.database.transaction() as session:
        job_id = await enqueue_mail(
            session, platform.keyring, "password_reset", to="ada@example.com", link=LINK, minutes=30
        )
    await run_due_jobs(platform)
    failed = await get_job(platform, job_id)
    assert (failed.status, failed.attempts) == (JobStatus.QUEUED, 1)
    assert failed.last_error is not None
    assert "SMTPConnect" in failed.last_error
    assert relay.inbox.messages == []

    relay.start()
    await set_job(platform, job_id, run_at=utcnow())
    await run_due_jobs(platform)
    assert [m["To"] for m in relay.inbox.messages] == ["ada@example.com"]
    assert (await get_job(platform, job_id)).status == JobStatus.SUCCEEDED


async def test_without_a_relay_the_job_succeeds_and_sends_nothing(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    platform = _platform(tmp_path, database_url, database, None)
    async with platform.database.transaction() as session:
        job_id = await enqueue_mail(
            session, platform.keyring, "password_reset", to="ada@example.com", link=LINK, minutes=30
        )
    await run_due_jobs(platform)
    assert (await get_job(platform, job_id)).status == JobStatus.SUCCEEDED
