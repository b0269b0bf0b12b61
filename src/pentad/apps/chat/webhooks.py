"""Outgoing webhooks: a tenant's backend learns what happened in its chat.

The tenant registers URLs through the server API. Every message event of the tenant queues one
`chat.webhook_deliver` job per interested webhook, in the transaction that made the change, so a rolled
back change sends nothing. Each delivery is an HTTP POST of the JSON event, signed with the webhook's
secret: `Pentad-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, plus `Pentad-Event` (the
type) and `Pentad-Delivery` (the event id, the same on every retry: receivers deduplicate with it).
A delivery that fails (network error, any status but 2xx; redirects are not followed) is retried with
backoff, up to PENTAD_CHAT__WEBHOOK_MAX_ATTEMPTS attempts.

Destinations are checked on create and again before every delivery (a DNS answer may change): every
address the host resolves to must be public, or inside PENTAD_CHAT__WEBHOOK_ALLOWED_NETWORKS, and the
request goes to one of those checked addresses, never to a second lookup's answer.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.chat import netguard, repository, schemas
from pentad.apps.chat.models import ChatTenant, ChatWebhook
from pentad.apps.chat.settings import ChatSettings
from pentad.core import audit
from pentad.core.audit import Actor
from pentad.core.crypto import column_context
from pentad.core.db.base import utcnow, uuid7
from pentad.core.errors import BadRequest, NotFound
from pentad.core.jobs.queue import enqueue
from pentad.core.platform import Platform

if TYPE_CHECKING:
    from pentad.core.context import AppContext, JobContext

DELIVER = "chat.webhook_deliver"
ALL_EVENTS = "*"
SIGNATURE_HEADER = "Pentad-Signature"
USER_AGENT = "Pentad-Webhooks/1"
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


class DeliveryFailed(Exception):
    """A delivery the receiver did not accept; the job fails and is retried."""


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
            await netguard.check_destination(
                url, self.platform.app_settings(ChatSettings).webhook_allowed_networks
            )
        except netguard.DestinationNotAllowed as exc:
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


async def dispatch(
    session: AsyncSession, platform: Platform, tenant_id: uuid.UUID, event_type: str, data: BaseModel
) -> None:
    """Queue a delivery of `event_type` to every active webhook of the tenant that wants it."""
    del platform  # deliveries read the settings when they run
    webhooks = [
        webhook
        for webhook in await repository.list_webhooks(session, tenant_id, active_only=True)
        if ALL_EVENTS in webhook.events or event_type in webhook.events
    ]
    if not webhooks:
        return
    event = {
        "id": str(uuid.uuid4()),
        "type": event_type,
        "created_at": utcnow().isoformat(),
        "data": data.model_dump(mode="json"),
    }
    for webhook in webhooks:
        await enqueue(session, DELIVER, {"webhook_id": str(webhook.id), **event})


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `Pentad-Signature` header value of `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


async def _post(
    destination: netguard.Destination, body: bytes, headers: dict[str, str], limit: httpx.Timeout
) -> httpx.Response:
    """POST to the checked addresses in turn until one connects. trust_env=False: a proxy from the
    environment would make its own DNS lookup, past the check."""
    extensions = {"sni_hostname": destination.host} if destination.scheme == "https" else {}
    headers = {**headers, "Host": destination.host_header}
    async with httpx.AsyncClient(timeout=limit, follow_redirects=False, trust_env=False) as client:
        for index, address in enumerate(destination.addresses):
            try:
                return await client.post(
                    destination.pinned_url(address), content=body, headers=headers, extensions=extensions
                )
            except httpx.ConnectError:
                if index == len(destination.addresses) - 1:
                    raise
    raise AssertionError("a checked destination has at least one address")


async def _record_outcome(platform: AppContext, webhook_id: uuid.UUID, outcome: str) -> None:
    async with platform.database.transaction() as session:
        webhook = await repository.get_webhook(session, webhook_id)
        if webhook is not None:
            webhook.last_status = outcome[:MAX_STATUS_CHARS]
            webhook.last_delivery_at = utcnow()


async def deliver(context: JobContext, payload: dict[str, Any]) -> None:
    """Job `chat.webhook_deliver`: one event to one webhook. A webhook deleted or paused since gets
    nothing."""
    platform = context.platform
    settings = platform.app_settings(ChatSettings)
    webhook_id = uuid.UUID(payload["webhook_id"])
    async with platform.database.transaction(writes=False) as session:
        webhook = await repository.get_webhook(session, webhook_id)
        if webhook is None or not webhook.active:
            return
        url = webhook.url
        secret = platform.keyring.decrypt(webhook.secret, context=_secret_context(webhook.id))
    body = orjson.dumps({key: payload[key] for key in ("id", "type", "created_at", "data")})
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: signature(secret, int(time.time()), body),
        "Pentad-Event": payload["type"],
        "Pentad-Delivery": payload["id"],
    }
    try:
        destination = await netguard.resolve_destination(url, settings.webhook_allowed_networks)
        response = await _post(destination, body, headers, httpx.Timeout(settings.webhook_timeout))
    except netguard.DestinationNotAllowed as exc:
        await _record_outcome(platform, webhook_id, f"refused: {exc.message}")
        raise
    except httpx.HTTPError as exc:
        # The exception's type only: its text can quote the URL, whose path may hold the receiver's token.
        await _record_outcome(platform, webhook_id, f"failed: {type(exc).__name__}")
        raise DeliveryFailed(f"The delivery failed: {type(exc).__name__}.") from None
    await _record_outcome(platform, webhook_id, f"HTTP {response.status_code}")
    if not response.is_success:
        raise DeliveryFailed(f"The receiver answered HTTP {response.status_code}.")
