"""Web Push (RFC 8030) with VAPID (RFC 8292) and aes128gcm payloads (RFC 8291).

The platform has one VAPID key pair, made on first use. Browsers subscribe with the public key; their
endpoint and keys are stored encrypted. A new message queues one `chat.push_send` job per device; the job
loads the subscription itself, so no endpoint or key sits in the jobs table. Endpoints are checked like
webhooks (netguard): https and public addresses only, resolved again and pinned when sending.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
import uuid
from datetime import datetime
from typing import Any

import httpx
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pywebpush import WebPusher  # type: ignore[import-untyped]
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.chat import netguard, repository
from pentad.apps.chat.access import ChatActor
from pentad.apps.chat.models import ChatPushSubscription, ChatVapidKey
from pentad.apps.chat.settings import ChatSettings
from pentad.core.context import AppContext, JobContext
from pentad.core.crypto import column_context
from pentad.core.db.base import uuid7
from pentad.core.platform import Platform

PUSH_SEND_JOB = "chat.push_send"
VAPID_KEY_ID = uuid.UUID(int=1)
"""The key pair's fixed row id: two first uses racing cannot create two pairs, the second insert fails."""
PUSH_TTL = 86_400
"""How long a push service keeps a notification for an offline device: a phone off overnight still gets it."""
VAPID_TOKEN_LIFETIME = 12 * 3600
"""RFC 8292 allows at most 24 hours."""
MAX_DEVICES_PER_USER = 10
"""Older subscriptions are dropped beyond this, so one user cannot make every message fan out widely."""
MAX_ERROR_CHARS = 200

logger = structlog.get_logger("pentad.chat.push")


class PushDeliveryFailed(Exception):
    """The push service could not take the notification now; the job is retried."""


# ---------------------------------------------------------------- API bodies


def _b64url_decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc


def _b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class PushKeys(BaseModel):
    p256dh: str = Field(max_length=200, description="The browser's P-256 public key, base64url.")
    auth: str = Field(max_length=100, description="The 16-byte authentication secret, base64url.")

    @field_validator("p256dh")
    @classmethod
    def _valid_point(cls, value: str) -> str:
        try:
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _b64url_decode(value))
        except ValueError as exc:
            raise ValueError("p256dh must be an uncompressed P-256 point, base64url") from exc
        return value

    @field_validator("auth")
    @classmethod
    def _valid_secret(cls, value: str) -> str:
        if len(_b64url_decode(value)) != 16:
            raise ValueError("auth must be 16 bytes, base64url")
        return value


class PushSubscriptionCreate(BaseModel):
    """A browser PushSubscription as its toJSON() gives it."""

    endpoint: str = Field(max_length=2000, description="The push service URL (https).")
    keys: PushKeys
    expiration_time: int | None = Field(
        None, alias="expirationTime", description="Ignored: the push service says when it ends (404/410)."
    )


class PushSubscriptionDelete(BaseModel):
    endpoint: str = Field(max_length=2000)


class PushSubscription(BaseModel):
    id: uuid.UUID
    created_at: datetime


class VapidPublicKey(BaseModel):
    public_key: str = Field(
        description="applicationServerKey for PushManager.subscribe(): uncompressed P-256 point, base64url."
    )


class PushNotification(BaseModel):
    """The JSON a service worker receives in its `push` event."""

    model_config = ConfigDict(frozen=True)

    title: str
    body: str
    url: str | None = Field(description="Page to open on click (Pentad's own pages), or null.")
    channel_id: uuid.UUID
    message_id: uuid.UUID


# ---------------------------------------------------------------- VAPID key


def _private_key_context(key_id: uuid.UUID) -> str:
    return column_context(ChatVapidKey.__tablename__, "private_key", key_id)


async def vapid_key(session: AsyncSession, platform: AppContext) -> ChatVapidKey:
    """The platform's VAPID key pair, generated on first use."""
    key = await session.get(ChatVapidKey, VAPID_KEY_ID)
    if key is not None:
        return key
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    raw = private.private_numbers().private_value.to_bytes(32, "big")
    key = ChatVapidKey(
        id=VAPID_KEY_ID,
        public_key=_b64url_encode(public),
        private_key=platform.keyring.encrypt(_b64url_encode(raw), context=_private_key_context(VAPID_KEY_ID)),
    )
    try:
        async with session.begin_nested():
            session.add(key)
    except IntegrityError:
        # Another first use committed its pair meanwhile; everyone uses that one.
        found = await session.get(ChatVapidKey, VAPID_KEY_ID, populate_existing=True)
        assert found is not None
        return found
    return key


def _vapid_signer(platform: AppContext, key: ChatVapidKey) -> Any:
    raw = platform.keyring.decrypt(key.private_key, context=_private_key_context(key.id))
    return Vapid02.from_raw(raw.encode())


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
        key = await vapid_key(self.session, self.platform)
        return VapidPublicKey(public_key=key.public_key)

    async def subscribe(self, data: PushSubscriptionCreate) -> tuple[PushSubscription, bool]:
        """Store the browser's subscription; (subscription, created). Subscribing again updates its keys."""
        await netguard.check_destination(
            data.endpoint, self.platform.app_settings(ChatSettings).webhook_allowed_networks
        )
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


def _origin(destination: netguard.Destination) -> str:
    """The endpoint's origin, the VAPID audience."""
    return f"{destination.scheme}://{destination.host_header}"


async def deliver(
    settings: ChatSettings,
    endpoint: str,
    keys: dict[str, str],
    signer: Any,
    notification: PushNotification,
) -> int:
    """POST the encrypted notification to the push service; its HTTP status."""
    destination = await netguard.resolve_destination(endpoint, settings.webhook_allowed_networks)
    body = WebPusher({"endpoint": endpoint, "keys": keys}).encode(
        notification.model_dump_json().encode(), "aes128gcm"
    )["body"]
    claims = {
        "sub": settings.vapid_subject,
        "aud": _origin(destination),
        "exp": int(time.time()) + VAPID_TOKEN_LIFETIME,
    }
    headers = {
        **signer.sign(claims),
        "Host": destination.host_header,
        "TTL": str(PUSH_TTL),
        "Urgency": "normal",
        "Content-Encoding": "aes128gcm",
        "Content-Type": "application/octet-stream",
    }
    async with httpx.AsyncClient(timeout=settings.webhook_timeout, trust_env=False) as client:
        unreachable: httpx.ConnectError | None = None
        # Connect only to the addresses that were checked, not to whatever the name resolves to by now.
        for address in destination.addresses:
            try:
                async with client.stream(
                    "POST",
                    destination.pinned_url(address),
                    content=body,
                    headers=headers,
                    extensions={"sni_hostname": destination.host},
                ) as response:
                    return response.status_code
            except httpx.ConnectError as exc:
                unreachable = exc
    assert unreachable is not None
    raise unreachable


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
        key = await session.get(ChatVapidKey, VAPID_KEY_ID)
        signer = _vapid_signer(platform, key) if key is not None else None
    if signer is None:
        async with platform.database.transaction() as session:
            signer = _vapid_signer(platform, await vapid_key(session, platform))
    retry = False
    try:
        status = await deliver(platform.app_settings(ChatSettings), endpoint, keys, signer, notification)
    except netguard.DestinationNotAllowed as exc:
        error: str | None = exc.message[:MAX_ERROR_CHARS]
    except httpx.HTTPError as exc:
        # Only the kind: some messages quote the URL, and an endpoint is a credential.
        error, retry = f"{type(exc).__name__} reaching the push service", True
    else:
        if status in (404, 410):
            async with platform.database.transaction() as session:
                gone = await session.get(ChatPushSubscription, subscription_id)
                if gone is not None:
                    await session.delete(gone)
            return
        error = None if 200 <= status < 300 else f"HTTP {status} from the push service"
        retry = status >= 500 or status == 429
    if error != previous_error:
        async with platform.database.transaction() as session:
            current = await session.get(ChatPushSubscription, subscription_id)
            if current is not None:
                current.last_error = error
    if error is not None:
        logger.info("push_not_delivered", subscription_id=str(subscription_id), error=error, retry=retry)
    if retry:
        raise PushDeliveryFailed(error)
