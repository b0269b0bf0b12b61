"""Outgoing e-mail over any SMTP relay (aiosmtplib); without a relay, mail is logged without its body."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib
import structlog

from pentad.core.config import MailSettings

logger = structlog.get_logger("pentad.mail")


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    text: str
    html: str | None = None


class Mailer:
    def __init__(self, settings: MailSettings) -> None:
        self.settings = settings
        self._tasks: set[asyncio.Task[None]] = set()

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

    def send_soon(self, mail: Mail) -> None:
        """Send in the background; failures are logged (durable, retried delivery comes with core jobs)."""
        task = asyncio.get_running_loop().create_task(self._send_logged(mail))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_logged(self, mail: Mail) -> None:
        try:
            await self.send(mail)
        except Exception as exc:
            logger.error("mail_failed", subject=mail.subject, error=type(exc).__name__)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
