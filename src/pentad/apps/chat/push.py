"""Web Push to chat users' browsers.

The platform's VAPID key, the encryption and the sending are the core's (core/push.py); chat keeps its
users' subscriptions. Browsers subscribe with the public key; their endpoint and keys are stored
encrypted. A new message queues one `chat.push_send` job per device; the job loads the subscription
itself, so no endpoint or key sits in the jobs table. Endpoints are checked like webhooks (netguard): https
and public addresses only, resolved again and pinned when sending.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from typing import Any

import httpx
import structlog
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.chat import repository
from pentad.apps.chat.access import ChatActor
from pentad.apps.chat.models import ChatPushSubscription
from pentad.apps.chat.settings import ChatSettings
from pentad.apps.chat.webhooks import outbound_client
from pentad.core.context import AppContext, JobContext
from pentad.core.crypto import column_context
from pentad.core.db.base import uuid7
from pentad.core.netguard import DestinationNotAllowed
from pentad.core.platform import Platform
from pentad.core.push import PushSubscriptionCreate, VapidPublicKey, send_notification, vapid_public_key

PUSH_SEND_JOB = "chat.push_send"
MAX_DEVICES_PER_USER = 10
"""Older subscriptions are dropped beyond this, so one user cannot make every message fan out widely."""
MAX_ERROR_CHARS = 200

logger = structlog.get_logger("pentad.chat.push")


class PushDeliveryFailed(Exception):
    """The push service could not take the notification now; the job is retried."""


# ---------------------------------------------------------------- API bodies


class PushSubscriptionDelete(BaseModel):
    endpoint: str = Field(max_length=2000)


class PushSubscription(BaseModel):
    id: uuid.UUID
    created_at: datetime


class PushNotification(BaseModel):
    """The JSON a service worker receives in its `push` event."""

    model_config = ConfigDict(frozen=True)

    title: str
    body: str
    url: str | None = Field(description="Page to open on click (Pentad's own pages), or null.")
    channel_id: uuid.UUID
    message_id: uuid.UUID


# ---------------------------------------------------------------- subscriptions


def endpoint_hash(endpoint: str) -> str:
    return hashlib.sha256(endpoint.encode()).hexdigest()


def _context(column: str, subscription_id: uuid.UUID) -> str:
    return column_context(ChatPushSubscription.__tablename__, column, subscription_id)


def _decrypt(platform: AppContext, subscription: ChatPushSubscription, column: str) -> str:
    value: str = getattr(subscription, column)
    return platform.keyring.decrypt(value, context=_context(column, subscription.id))


class PushService:
    """A chat user's Web Push subscriptions."""

    def __init__(self, session: AsyncSession, platform: Platform, actor: ChatActor) -> None:
        self.session = session
        self.platform = platform
        self.actor = actor

    async def public_key(self) -> VapidPublicKey:
        return await vapid_public_key(self.session, self.platform)

    async def subscribe(self, data: PushSubscriptionCreate) -> tuple[PushSubscription, bool]:
        """Store the browser's subscription; (subscription, created). Subscribing again updates its keys."""
        await outbound_client(self.platform).check(data.endpoint)
        hashed = endpoint_hash(data.endpoint)
        # An endpoint is one browser profile: whoever subscribed it last is the one signed in there now.
        await repository.delete_push_subscriptions(self.session, hashed, except_user_id=self.actor.user_id)
        subscription = await repository.get_push_subscription(self.session, self.actor.user_id, hashed)
        created = subscription is None
        if subscription is None:
            subscription = ChatPushSubscription(id=uuid7(), user_id=self.actor.user_id, endpoint_hash=hashed)
            subscription.endpoint = self._encrypt(data.endpoint, "endpoint", subscription.id)
            self.session.add(subscription)
        subscription.keys = self._encrypt(data.keys.model_dump_json(), "keys", subscription.id)
        subscription.last_error = None
        await self.session.flush()
        for stale in (await repository.list_push_subscriptions(self.session, self.actor.user_id))[
            MAX_DEVICES_PER_USER:
        ]:
            await self.session.delete(stale)
        await self.session.flush()
        return PushSubscription(id=subscription.id, created_at=subscription.created_at), created

    async def unsubscribe(self, endpoint: str) -> None:
        """Forget one of your subscriptions; forgetting an unknown one is not an error."""
        await repository.delete_push_subscriptions(
            self.session, endpoint_hash(endpoint), user_id=self.actor.user_id
        )

    def _encrypt(self, value: str, column: str, subscription_id: uuid.UUID) -> str:
        return self.platform.keyring.encrypt(value, context=_context(column, subscription_id))


# ---------------------------------------------------------------- sending


async def send_push(context: JobContext, payload: dict[str, Any]) -> None:
    """Job `chat.push_send`: deliver one notification to one device."""
    platform = context.platform
    subscription_id = uuid.UUID(payload["subscription_id"])
    notification = PushNotification.model_validate(payload["notification"])
    async with platform.database.transaction(writes=False) as session:
        subscription = await session.get(ChatPushSubscription, subscription_id)
        if subscription is None:
            return
        endpoint = _decrypt(platform, subscription, "endpoint")
        keys = json.loads(_decrypt(platform, subscription, "keys"))
        previous_error = subscription.last_error
    retry = False
    try:
        result = await send_notification(
            platform,
            endpoint,
            keys,
            notification.model_dump_json().encode(),
            subject=platform.app_settings(ChatSettings).vapid_subject,
            client=outbound_client(platform),
        )
    except DestinationNotAllowed as exc:
        error: str | None = exc.message[:MAX_ERROR_CHARS]
    except httpx.HTTPError as exc:
        # Only the kind: some messages quote the URL, and an endpoint is a credential.
        error, retry = f"{type(exc).__name__} reaching the push service", True
    else:
        if result.gone:
            async with platform.database.transaction() as session:
                gone = await session.get(ChatPushSubscription, subscription_id)
                if gone is not None:
                    await session.delete(gone)
            return
        error = None if result.delivered else f"HTTP {result.status_code} from the push service"
        retry = result.retry
    if error != previous_error:
        async with platform.database.transaction() as session:
            current = await session.get(ChatPushSubscription, subscription_id)
            if current is not None:
                current.last_error = error
    if error is not None:
        logger.info("push_not_delivered", subscription_id=str(subscription_id), error=error, retry=retry)
    if retry:
        raise PushDeliveryFailed(error)
