"""Outgoing webhooks: a tenant's backend learns what happened in its chat.

The tenant registers URLs through the server API (this module: its table, endpoints' service, event
filter). Every message event of the tenant queues one `chat.webhook_deliver` job per interested webhook
through the core's signed sender (core/webhooks.py: signature, headers, retries, the guarded client), in
the transaction that made the change, so a rolled back change sends nothing; each attempt's outcome
becomes the webhook's `last_status`. Up to PENTAD_CHAT__WEBHOOK_MAX_ATTEMPTS attempts.

Destinations are checked on create and again before every delivery (core/netguard.py): every address the
host resolves to must be public, or inside PENTAD_OUTBOUND__ALLOWED_NETWORKS (or the older
PENTAD_CHAT__WEBHOOK_ALLOWED_NETWORKS, still honoured for chat), and the request goes to one of those
checked addresses.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

import httpx
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.chat import repository, schemas
from pentad.apps.chat.models import ChatTenant, ChatWebhook
from pentad.apps.chat.settings import ChatSettings
from pentad.core import audit
from pentad.core.audit import Actor
from pentad.core.context import AppContext
from pentad.core.crypto import column_context
from pentad.core.db.base import utcnow, uuid7
from pentad.core.errors import BadRequest, NotFound
from pentad.core.netguard import DestinationNotAllowed, GuardedClient
from pentad.core.platform import Platform
from pentad.core.webhooks import DeliveryOutcome, WebhookSender, WebhookTarget

DELIVER = "chat.webhook_deliver"
ALL_EVENTS = "*"
MAX_STATUS_CHARS = 200

WebhookEvent = Literal[
    "*", "message.new", "message.updated", "message.deleted", "reaction.added", "reaction.removed"
]
EVENT_CHOICES = len(get_args(WebhookEvent))
WebhookUrl = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


# ---------------------------------------------------------------- bodies


class WebhookCreate(schemas.Strict):
    url: WebhookUrl = Field(description="Where events are POSTed: https (a public address).")
    events: list[WebhookEvent] = Field(
        min_length=1, max_length=EVENT_CHOICES, description="Event types to send; `*` for all."
    )


class WebhookUpdate(schemas.Strict):
    url: WebhookUrl | None = None
    events: list[WebhookEvent] | None = Field(None, min_length=1, max_length=EVENT_CHOICES)
    active: bool | None = Field(None, description="Paused webhooks get no deliveries.")


class Webhook(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    url: str
    events: list[str]
    active: bool
    last_status: str | None = Field(description="Outcome of the last delivery attempt.")
    last_delivery_at: datetime | None
    created_at: datetime


class WebhookWithSecret(Webhook):
    secret: str = Field(description="Signs deliveries (HMAC-SHA256); shown only now.")


# ---------------------------------------------------------------- errors


class WebhookNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("No such webhook.", code="webhook_not_found")


class WebhookDestinationRefused(BadRequest):
    def __init__(self, reason: str) -> None:
        super().__init__(f"Webhooks cannot be sent there: {reason}", code="webhook_destination_refused")


# ---------------------------------------------------------------- outgoing: management


def _secret_context(webhook_id: uuid.UUID) -> str:
    return column_context(ChatWebhook.__tablename__, "secret", webhook_id)


def _events(chosen: Sequence[str]) -> list[str]:
    return [ALL_EVENTS] if ALL_EVENTS in chosen else sorted(set(chosen))


class WebhookService:
    """A tenant's outgoing webhooks, managed by its backend through the server API."""

    def __init__(self, session: AsyncSession, platform: Platform, tenant: ChatTenant, actor: Actor) -> None:
        self.session = session
        self.platform = platform
        self.tenant = tenant
        self.actor = actor

    async def _check_url(self, url: str) -> None:
        try:
            await outbound_client(self.platform).check(url)
        except DestinationNotAllowed as exc:
            raise WebhookDestinationRefused(exc.message) from None

    def _seal(self, webhook: ChatWebhook) -> str:
        secret = f"whsec_{secrets.token_urlsafe(32)}"
        webhook.secret = self.platform.keyring.encrypt(secret, context=_secret_context(webhook.id))
        return secret

    async def list(self) -> list[Webhook]:
        return [
            Webhook.model_validate(w) for w in await repository.list_webhooks(self.session, self.tenant.id)
        ]

    async def _get(self, webhook_id: uuid.UUID) -> ChatWebhook:
        webhook = await repository.get_webhook(self.session, webhook_id)
        if webhook is None or webhook.tenant_id != self.tenant.id:
            raise WebhookNotFound()
        return webhook

    async def get(self, webhook_id: uuid.UUID) -> Webhook:
        return Webhook.model_validate(await self._get(webhook_id))

    async def create(self, data: WebhookCreate) -> WebhookWithSecret:
        await self._check_url(data.url)
        webhook = ChatWebhook(id=uuid7(), tenant_id=self.tenant.id, url=data.url, events=_events(data.events))
        secret = self._seal(webhook)
        self.session.add(webhook)
        await self.session.flush()
        self._audit("chat.webhook_created", webhook, events=webhook.events)
        return WebhookWithSecret(**Webhook.model_validate(webhook).model_dump(), secret=secret)

    async def update(self, webhook_id: uuid.UUID, data: WebhookUpdate) -> Webhook:
        webhook = await self._get(webhook_id)
        if data.url is not None and data.url != webhook.url:
            await self._check_url(data.url)
            webhook.url = data.url
        if data.events is not None:
            webhook.events = _events(data.events)
        if data.active is not None:
            webhook.active = data.active
        await self.session.flush()
        self._audit("chat.webhook_updated", webhook, events=webhook.events, active=webhook.active)
        return Webhook.model_validate(webhook)

    async def rotate_secret(self, webhook_id: uuid.UUID) -> WebhookWithSecret:
        webhook = await self._get(webhook_id)
        secret = self._seal(webhook)
        await self.session.flush()
        self._audit("chat.webhook_secret_rotated", webhook)
        return WebhookWithSecret(**Webhook.model_validate(webhook).model_dump(), secret=secret)

    async def delete(self, webhook_id: uuid.UUID) -> None:
        webhook = await self._get(webhook_id)
        await self.session.delete(webhook)
        await self.session.flush()
        self._audit("chat.webhook_deleted", webhook)

    def _audit(self, action: str, webhook: ChatWebhook, **details: Any) -> None:
        # The URL's host only: a receiver's path often carries its own token.
        host = httpx.URL(webhook.url).host
        audit.record(
            self.session,
            self.actor,
            action,
            resource_type="chat.webhook",
            resource_id=webhook.id,
            tenant_id=str(self.tenant.id),
            host=host,
            **details,
        )


# ---------------------------------------------------------------- outgoing: delivery


def outbound_client(platform: AppContext) -> GuardedClient:
    """Chat's guarded client for URLs its users chose (webhooks and Web Push endpoints alike): the core's
    outbound settings plus chat's extra allowed networks and timeout."""
    settings = platform.app_settings(ChatSettings)
    return GuardedClient(
        platform.outbound,
        allowed_networks=settings.webhook_allowed_networks,
        timeout=settings.webhook_timeout,
    )


async def _load_target(session: AsyncSession, platform: AppContext, key: str) -> WebhookTarget | None:
    webhook = await repository.get_webhook(session, uuid.UUID(key))
    if webhook is None or not webhook.active:
        return None
    secret = platform.keyring.decrypt(webhook.secret, context=_secret_context(webhook.id))
    return WebhookTarget(url=webhook.url, secret=secret)


async def _record_outcome(session: AsyncSession, platform: AppContext, outcome: DeliveryOutcome) -> None:
    del platform  # the outcome is all there is to store
    webhook = await repository.get_webhook(session, uuid.UUID(outcome.target))
    if webhook is not None:
        webhook.last_status = outcome.summary[:MAX_STATUS_CHARS]
        webhook.last_delivery_at = utcnow()


SENDER = WebhookSender(
    DELIVER,
    load_target=_load_target,
    record_outcome=_record_outcome,
    client=outbound_client,
    max_attempts=lambda context: context.app_settings(ChatSettings).webhook_max_attempts,
)


async def dispatch(session: AsyncSession, tenant_id: uuid.UUID, event_type: str, data: BaseModel) -> None:
    """Queue a delivery of `event_type` to every active webhook of the tenant that wants it."""
    targets = [
        str(webhook.id)
        for webhook in await repository.list_webhooks(session, tenant_id, active_only=True)
        if ALL_EVENTS in webhook.events or event_type in webhook.events
    ]
    if targets:
        await SENDER.send(session, targets, event_type, data.model_dump(mode="json"))
