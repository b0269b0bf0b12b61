"""Outgoing e-mail: templated messages delivered by the durable job `core.send_mail` over any SMTP relay.

Services call `enqueue_mail` inside their transaction: the message is rendered at once (text and HTML from
the Jinja2 templates in core/mail_templates/ and the apps' folders (AppSpec.mail_templates):
`<name>.subject.txt`, `<name>.txt` and `<name>.html`)
and stored in the job row ENCRYPTED with the platform's key ring, bound to the job's id, because a message
may carry a secret (a password-reset link). Only the template name stays readable (admins see it on the
jobs page). The worker decrypts it to send, retries failed deliveries with backoff, and deletes the
ciphertext once the message is sent; a dead-lettered message keeps it until it is retried or pruned.
Without a relay (PENTAD_MAIL__HOST unset) the job logs a warning without the content and succeeds.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import structlog
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.core.config import MailSettings
from pentad.core.context import JobContext
from pentad.core.crypto import KeyRing
from pentad.core.jobs.queue import SecretPayload, enqueue
from pentad.core.jobs.registry import JobSpec

logger = structlog.get_logger("pentad.mail")

TEMPLATES_DIR = Path(__file__).parent / "mail_templates"
SEND_MAIL = "core.send_mail"

_loader = FileSystemLoader(TEMPLATES_DIR)
_templates = Environment(
    loader=_loader,
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


def add_template_folder(folder: Path) -> None:
    """Render templates from an app's folder too (searched after the core's, so an app names its templates
    `<app>_<name>`; they may extend the core's `base.html`)."""
    if str(folder) not in _loader.searchpath:
        _loader.searchpath.append(str(folder))


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    text: str
    html: str | None = None


def render_mail(template: str, *, to: str, **context: Any) -> Mail:
    """Render template `template` for recipient `to`; a variable the template uses but `context` lacks
    is an error, not an empty string."""
    values = {"to": to, **context}
    subject = _templates.get_template(f"{template}.subject.txt").render(values).strip()
    text = _templates.get_template(f"{template}.txt").render(values)
    html = _templates.get_template(f"{template}.html").render(values)
    return Mail(to=to, subject=subject, text=text, html=html)


async def enqueue_mail(
    session: AsyncSession, keyring: KeyRing, template: str, *, to: str, **context: Any
) -> uuid.UUID:
    """Render a templated message and queue its delivery in the caller's transaction."""
    mail = render_mail(template, to=to, **context)
    job_id = await enqueue(
        session, SEND_MAIL, {"template": template}, secret=SecretPayload(keyring, asdict(mail))
    )
    assert job_id is not None
    return job_id


class Mailer:
    def __init__(self, settings: MailSettings) -> None:
        self.settings = settings

    def build(self, mail: Mail) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.settings.sender
        message["To"] = mail.to
        message["Subject"] = mail.subject
        message.set_content(mail.text)
        if mail.html is not None:
            message.add_alternative(mail.html, subtype="html")
        return message

    async def send(self, mail: Mail) -> None:
        if not self.settings.host:
            logger.warning("mail_not_sent_no_relay", subject=mail.subject)
            return
        password = self.settings.password.get_secret_value() if self.settings.password else None
        await aiosmtplib.send(
            self.build(mail),
            hostname=self.settings.host,
            port=self.settings.port,
            username=self.settings.username,
            password=password,
            start_tls=self.settings.starttls,
            use_tls=self.settings.use_tls,
            timeout=self.settings.timeout,
        )


def send_mail_job(mailer: Mailer) -> JobSpec:
    """The job that sends enqueued mail through `mailer` (the context apps get carries no mailer: their
    mail goes through `enqueue_mail`, durable and after the commit)."""

    async def deliver(context: JobContext, _payload: dict[str, Any]) -> None:
        await mailer.send(Mail(**context.secret()))

    return JobSpec(SEND_MAIL, deliver)
