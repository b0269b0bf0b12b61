"""Web Push from the core, as any app uses it: one VAPID key pair for the platform, notifications encrypted
and signed for a real push service on loopback, its answer read as delivered, gone or to retry, and no
notification sent to an endpoint on a private network."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import http_ece
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

from pentad.core.config import Settings
from pentad.core.netguard import DestinationNotAllowed
from pentad.core.platform import Platform
from pentad.core.push import send_notification, vapid_public_key
from tests.conftest import make_settings
from tests.receivers import Answer, Receiver, receiving

SUBJECT = "mailto:ops@example.com"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url, outbound={"allowed_networks": ["127.0.0.0/8"]})


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as receiver:
        yield receiver


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Browser:
    """A subscribing browser's keys, to decrypt what it is sent."""

    def __init__(self) -> None:
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        public = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.keys = {"p256dh": _b64url(public), "auth": _b64url(self.auth)}

    def decrypt(self, body: bytes) -> bytes:
        plaintext: bytes = http_ece.decrypt(
            body, private_key=self.private_key, auth_secret=self.auth, version="aes128gcm"
        )
        return plaintext


async def test_a_notification_is_encrypted_for_the_browser_and_signed_with_the_one_vapid_key(
    platform: Platform, receiver: Receiver
) -> None:
    async with platform.database.transaction() as session:
        public_key = (await vapid_public_key(session, platform)).public_key
    async with platform.database.transaction() as session:
        assert (await vapid_public_key(session, platform)).public_key == public_key
    browser = Browser()

    result = await send_notification(
        platform, receiver.url("/push/1"), browser.keys, b'{"hi":1}', subject=SUBJECT
    )

    assert (result.status_code, result.delivered, result.gone, result.retry) == (200, True, False, False)
    (request,) = receiver.requests
    assert browser.decrypt(request.body) == b'{"hi":1}'
    assert request.headers["Content-Encoding"] == "aes128gcm"
    authorization = request.headers["Authorization"]
    assert Vapid02.verify(authorization)
    assert f"k={public_key}" in authorization


@pytest.mark.parametrize(
    ("status", "gone", "retry"),
    [
        (201, False, False),
        (404, True, False),
        (410, True, False),
        (429, False, True),
        (503, False, True),
        (400, False, False),
    ],
)
async def test_the_push_services_answer_says_what_to_do_with_the_subscription(
    platform: Platform, receiver: Receiver, status: int, gone: bool, retry: bool
) -> None:
    receiver.answers = [Answer(status)]
    result = await send_notification(platform, receiver.url(), Browser().keys, b"{}", subject=SUBJECT)
    assert (result.status_code, result.delivered, result.gone, result.retry) == (
        status,
        status == 201,
        gone,
        retry,
    )


async def test_an_endpoint_on_a_private_network_gets_nothing(platform: Platform, receiver: Receiver) -> None:
    platform.settings.outbound.allowed_networks = []
    with pytest.raises(DestinationNotAllowed):
        await send_notification(platform, receiver.url(), Browser().keys, b"{}", subject=SUBJECT)
    assert receiver.requests == []
