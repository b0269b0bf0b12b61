"""Web Push (RFC 8030) with VAPID (RFC 8292) and aes128gcm payloads (RFC 8291), for every app.

The platform has one VAPID key pair (`push_vapid_keys`), made on first use, its private key encrypted with
the key ring. A browser subscribes with the public key (`vapid_public_key`); the app stores the
subscription (its endpoint and keys are credentials: keep them encrypted) and checks the endpoint like any
outgoing URL (`GuardedClient.check`). `send_notification` encrypts a payload for one subscription, signs
the request with the VAPID key and POSTs it through the netguard client; the answer says whether to keep
the subscription (404/410: gone) or retry (429, 5xx).

    key = await vapid_public_key(session, platform)                       # for PushManager.subscribe()
    result = await send_notification(platform, endpoint, keys, payload, subject="mailto:ops@example.com")
    if result.gone: ...delete the subscription...
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02  # type: ignore[import-untyped]
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import String
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from pentad.core.crypto import KeyRing, column_context
from pentad.core.db.base import Base, EncryptedText, IdMixin, TimestampMixin
from pentad.core.netguard import GuardedClient

if TYPE_CHECKING:
    from pentad.core.context import AppContext

VAPID_KEY_ID = uuid.UUID(int=1)
"""The key pair's fixed row id: two first uses racing cannot create two pairs, the second insert fails."""
PUSH_TTL = 86_400
"""How long a push service keeps a notification for an offline device: a phone off overnight still gets it."""
VAPID_TOKEN_LIFETIME = 12 * 3600
"""RFC 8292 allows at most 24 hours."""


class PushVapidKey(IdMixin, TimestampMixin, Base):
    """The platform's VAPID key pair for Web Push, generated on first use; the private key encrypted."""

    __tablename__ = "push_vapid_keys"

    public_key: Mapped[str] = mapped_column(String(200))
    private_key: Mapped[str] = mapped_column(EncryptedText)


def b64url_decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc


def b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# ---------------------------------------------------------------- what browsers send and get


class PushKeys(BaseModel):
    p256dh: str = Field(max_length=200, description="The browser's P-256 public key, base64url.")
    auth: str = Field(max_length=100, description="The 16-byte authentication secret, base64url.")

    @field_validator("p256dh")
    @classmethod
    def _valid_point(cls, value: str) -> str:
        try:
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(value))
        except ValueError as exc:
            raise ValueError("p256dh must be an uncompressed P-256 point, base64url") from exc
        return value

    @field_validator("auth")
    @classmethod
    def _valid_secret(cls, value: str) -> str:
        if len(b64url_decode(value)) != 16:
            raise ValueError("auth must be 16 bytes, base64url")
        return value


class PushSubscriptionCreate(BaseModel):
    """A browser PushSubscription as its toJSON() gives it."""

    endpoint: str = Field(max_length=2000, description="The push service URL (https).")
    keys: PushKeys
    expiration_time: int | None = Field(
        None, alias="expirationTime", description="Ignored: the push service says when it ends (404/410)."
    )


class VapidPublicKey(BaseModel):
    public_key: str = Field(
        description="applicationServerKey for PushManager.subscribe(): uncompressed P-256 point, base64url."
    )


# ---------------------------------------------------------------- the VAPID key


def private_key_context(key_id: uuid.UUID) -> str:
    return column_context(PushVapidKey.__tablename__, "private_key", key_id)


async def vapid_key(session: AsyncSession, keyring: KeyRing) -> PushVapidKey:
    """The platform's VAPID key pair, generated (in the caller's transaction) on first use."""
    key = await session.get(PushVapidKey, VAPID_KEY_ID)
    if key is not None:
        return key
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    raw = private.private_numbers().private_value.to_bytes(32, "big")
    key = PushVapidKey(
        id=VAPID_KEY_ID,
        public_key=b64url_encode(public),
        private_key=keyring.encrypt(b64url_encode(raw), context=private_key_context(VAPID_KEY_ID)),
    )
    try:
        async with session.begin_nested():
            session.add(key)
    except IntegrityError:
        # Another first use committed its pair meanwhile; everyone uses that one.
        found = await session.get(PushVapidKey, VAPID_KEY_ID, populate_existing=True)
        assert found is not None
        return found
    return key


async def vapid_public_key(session: AsyncSession, platform: AppContext) -> VapidPublicKey:
    key = await vapid_key(session, platform.keyring)
    return VapidPublicKey(public_key=key.public_key)


async def _signer(platform: AppContext) -> Any:
    async with platform.database.transaction(writes=False) as session:
        key = await session.get(PushVapidKey, VAPID_KEY_ID)
        private = key.private_key if key is not None else None
    if private is None:
        async with platform.database.transaction() as session:
            private = (await vapid_key(session, platform.keyring)).private_key
    raw = platform.keyring.decrypt(private, context=private_key_context(VAPID_KEY_ID))
    return Vapid02.from_raw(raw.encode())


# ---------------------------------------------------------------- sending


@dataclass(frozen=True, slots=True)
class PushResult:
    """The push service's answer to one notification."""

    status_code: int

    @property
    def delivered(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        """The subscription has ended (unsubscribed, expired): delete it."""
        return self.status_code in (404, 410)

    @property
    def retry(self) -> bool:
        """The push service is busy or failing: try again later."""
        return self.status_code >= 500 or self.status_code == 429


async def send_notification(
    platform: AppContext,
    endpoint: str,
    keys: Mapping[str, str],
    payload: bytes,
    *,
    subject: str,
    client: GuardedClient | None = None,
    urgency: str = "normal",
) -> PushResult:
    """Encrypt `payload` for the subscription (`endpoint`, `keys`: p256dh and auth) and POST it, signed
    with the platform's VAPID key; `subject` is the contact (mailto: or https:) push services may use.

    Raises DestinationNotAllowed for an endpoint the guard refuses, httpx errors for transport failures
    (their text can quote the endpoint, which is a credential: record the type only)."""
    client = client or GuardedClient(platform.outbound)
    destination = await client.check(endpoint)
    signer = await _signer(platform)
    # pywebpush brings requests, urllib3 and aiohttp (0.7 s of imports): loaded on the first push, not in
    # every process that merely names the push tables.
    from pywebpush import WebPusher  # type: ignore[import-untyped]

    body = WebPusher({"endpoint": endpoint, "keys": dict(keys)}).encode(payload, "aes128gcm")["body"]
    claims = {"sub": subject, "aud": destination.origin, "exp": int(time.time()) + VAPID_TOKEN_LIFETIME}
    headers = {
        **signer.sign(claims),
        "TTL": str(PUSH_TTL),
        "Urgency": urgency,
        "Content-Encoding": "aes128gcm",
        "Content-Type": "application/octet-stream",
    }
    response = await client.request("POST", destination, content=body, headers=headers)
    return PushResult(response.status_code)
