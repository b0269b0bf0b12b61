"""Web Push: VAPID key, subscriptions, and delivery to a real push service on loopback that checks the
VAPID signature and decrypts the aes128gcm payload with the subscribing device's keys."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import http_ece
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02
from sqlalchemy import select

from pentad.apps.chat.models import ChatPushSubscription
from pentad.core.config import Settings
from pentad.core.crypto import column_context
from pentad.core.jobs.models import Job
from pentad.core.platform import Platform
from pentad.core.push import PushVapidKey
from tests.apps.chat.factories import ChatTenantFixture, ChatUserFixture, send
from tests.conftest import make_settings
from tests.factories import run_due_jobs

VAPID_SUBJECT = "mailto:ops@example.com"


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakePushService:
    """A push service: records each POST and answers with the status set for its path (default 201)."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def to(self, path: str) -> list[Received]:
        return [item for item in self.received if item.path == path]


@pytest.fixture
def push_service() -> Iterator[FakePushService]:
    service = FakePushService()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers = {key.lower(): value for key, value in self.headers.items()}
            service.received.append(Received(self.path, headers, body))
            self.send_response(service.statuses.get(self.path, 201))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    service.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield service
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dataclass
class Device:
    """A browser's side of a subscription: its ECDH key pair and auth secret."""

    endpoint: str
    private_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth: bytes = field(default_factory=lambda: os.urandom(16))

    def subscription(self) -> dict[str, Any]:
        public = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": b64url(public), "auth": b64url(self.auth)},
        }

    def decrypt(self, body: bytes) -> dict[str, Any]:
        plaintext = http_ece.decrypt(
            body, private_key=self.private_key, auth_secret=self.auth, version="aes128gcm"
        )
        result: dict[str, Any] = json.loads(plaintext)
        return result


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        apps=["chat"],
        chat={"webhook_allowed_networks": ["127.0.0.0/8"], "vapid_subject": VAPID_SUBJECT},
    )


async def subscribe(client: httpx.AsyncClient, user: ChatUserFixture, device: Device) -> httpx.Response:
    return await client.post("/api/chat/push/subscriptions", json=device.subscription(), headers=user.headers)


async def subscribed_device(
    client: httpx.AsyncClient, push_service: FakePushService, user: ChatUserFixture
) -> tuple[Device, str]:
    path = f"/push/{user.external_id}-{uuid.uuid4().hex[:8]}"
    device = Device(push_service.url(path))
    response = await subscribe(client, user, device)
    assert response.status_code == 201, response.text
    return device, path


async def test_vapid_key_is_made_once_and_kept_encrypted(
    client: httpx.AsyncClient, platform: Platform, tenant: ChatTenantFixture
) -> None:
    alice = await tenant.user("alice")

    first = await client.get("/api/chat/push/vapid-public-key", headers=alice.headers)
    second = await client.get("/api/chat/push/vapid-public-key", headers=alice.headers)
    anonymous = await client.get("/api/chat/push/vapid-public-key")

    assert first.status_code == 200
    assert first.json() == second.json()
    assert anonymous.status_code == 401
    public = unb64url(first.json()["public_key"])
    assert len(public) == 65
    assert public[0] == 4
    async with platform.database.transaction() as session:
        (key,) = (await session.execute(select(PushVapidKey))).scalars().all()
    assert key.private_key.startswith("v1.")
    raw = platform.keyring.decrypt(
        key.private_key, context=column_context("push_vapid_keys", "private_key", key.id)
    )
    private = ec.derive_private_key(int.from_bytes(unb64url(raw), "big"), ec.SECP256R1())
    derived = private.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert derived == public


async def test_direct_message_is_pushed_signed_and_encrypted(
    client: httpx.AsyncClient, platform: Platform, tenant: ChatTenantFixture, push_service: FakePushService
) -> None:
    alice = await tenant.user("alice", name="Alice")
    bob = await tenant.user("bob")
    public_key = (await client.get("/api/chat/push/vapid-public-key", headers=bob.headers)).json()[
        "public_key"
    ]
    bob_device, bob_path = await subscribed_device(client, push_service, bob)
    _, alice_path = await subscribed_device(client, push_service, alice)
    again = await subscribe(client, bob, bob_device)
    assert again.status_code == 200
    channel = await tenant.channel(alice, bob, kind="direct", name="")
    text = "Lunch at noon? " + "x" * 200

    message = await send(client, alice, channel["id"], text)
    await run_due_jobs(platform)

    assert push_service.to(alice_path) == []
    (delivery,) = push_service.to(bob_path)
    headers = delivery.headers
    assert headers["content-encoding"] == "aes128gcm"
    assert int(headers["ttl"]) > 0
    scheme, _, params = headers["authorization"].partition(" ")
    assert scheme == "vapid"
    values = dict(part.split("=", 1) for part in params.split(","))
    assert values["k"] == public_key
    assert Vapid02.verify(headers["authorization"])
    claims = json.loads(unb64url(values["t"].split(".")[1]))
    assert claims["aud"] == f"http://127.0.0.1:{push_service.port}"
    assert claims["sub"] == VAPID_SUBJECT
    assert time.time() < claims["exp"] <= time.time() + 86_400
    notification = bob_device.decrypt(delivery.body)
    assert notification["title"] == "Alice"
    assert notification["body"].startswith("Lunch at noon? xxx")
    assert len(notification["body"]) == 120
    assert notification["channel_id"] == channel["id"]
    assert notification["message_id"] == message["id"]
    assert set(notification) == {"title", "body", "url", "channel_id", "message_id"}


async def test_public_channels_push_only_mentions(
    client: httpx.AsyncClient, platform: Platform, tenant: ChatTenantFixture, push_service: FakePushService
) -> None:
    alice = await tenant.user("alice", name="Alice")
    bob = await tenant.user("bob")
    carol = await tenant.user("carol")
    bob_device, bob_path = await subscribed_device(client, push_service, bob)
    _, carol_path = await subscribed_device(client, push_service, carol)
    channel = await tenant.channel(alice, bob, carol, name="general")

    await send(client, alice, channel["id"], "hello all")
    await send(client, alice, channel["id"], f"over to you @{bob.handle}")
    await run_due_jobs(platform)

    assert push_service.to(carol_path) == []
    (delivery,) = push_service.to(bob_path)
    notification = bob_device.decrypt(delivery.body)
    assert notification["title"] == "Alice in #general"
    assert notification["body"] == f"over to you @{bob.handle}"


async def test_gone_subscriptions_are_dropped_and_failures_retried(
    client: httpx.AsyncClient, platform: Platform, tenant: ChatTenantFixture, push_service: FakePushService
) -> None:
    alice = await tenant.user("alice")
    bob = await tenant.user("bob")
    carol = await tenant.user("carol")
    _, bob_path = await subscribed_device(client, push_service, bob)
    _, carol_path = await subscribed_device(client, push_service, carol)
    push_service.statuses = {bob_path: 410, carol_path: 503}
    channel = await tenant.channel(alice, bob, carol, kind="group", name="trio")

    await send(client, alice, channel["id"], "anyone?")
    await run_due_jobs(platform)

    assert len(push_service.to(bob_path)) == len(push_service.to(carol_path)) == 1
    async with platform.database.transaction() as session:
        subscriptions = (await session.execute(select(ChatPushSubscription))).scalars().all()
        jobs = (await session.execute(select(Job).where(Job.name == "chat.push_send"))).scalars().all()
    (left,) = subscriptions
    assert left.user_id == carol.id
    assert left.last_error == "HTTP 503 from the push service"
    assert sorted((job.status, job.attempts) for job in jobs) == [("queued", 1), ("succeeded", 1)]


async def test_deactivated_users_are_not_pushed(
    client: httpx.AsyncClient, platform: Platform, tenant: ChatTenantFixture, push_service: FakePushService
) -> None:
    alice = await tenant.user("alice")
    bob = await tenant.user("bob")
    _, bob_path = await subscribed_device(client, push_service, bob)
    channel = await tenant.channel(alice, bob, kind="direct", name="")
    response = await client.post(
        f"/api/chat/server/users/{bob.external_id}/deactivate", headers=tenant.headers
    )
    assert response.status_code == 200, response.text

    await send(client, alice, channel["id"], "are you there?")
    await run_due_jobs(platform)

    assert push_service.to(bob_path) == []


@pytest.mark.parametrize(
    ("endpoint", "status"),
    [
        ("http://93.184.216.34/push/1", 400),
        ("https://10.0.0.1/push/1", 400),
        ("https://[::1]/push/1", 400),
        ("https://user:pass@93.184.216.34/push/1", 400),
        ("ftp://93.184.216.34/push/1", 400),
        ("https://169.254.169.254/latest", 400),
    ],
)
async def test_unsafe_endpoints_are_refused(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, endpoint: str, status: int
) -> None:
    alice = await tenant.user("alice")

    response = await subscribe(client, alice, Device(endpoint))

    assert response.status_code == status
    assert response.json()["code"] == "destination_not_allowed"


async def test_bad_keys_and_anonymous_subscriptions_are_refused(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, push_service: FakePushService
) -> None:
    alice = await tenant.user("alice")
    body = Device(push_service.url("/push/a")).subscription()

    not_a_point = await client.post(
        "/api/chat/push/subscriptions",
        json={**body, "keys": {**body["keys"], "p256dh": b64url(b"\x04" + b"\x01" * 64)}},
        headers=alice.headers,
    )
    short_auth = await client.post(
        "/api/chat/push/subscriptions",
        json={**body, "keys": {**body["keys"], "auth": b64url(b"short")}},
        headers=alice.headers,
    )
    anonymous = await client.post("/api/chat/push/subscriptions", json=body)

    assert not_a_point.status_code == 422
    assert short_auth.status_code == 422
    assert anonymous.status_code == 401


async def test_unsubscribe_removes_only_your_own(
    client: httpx.AsyncClient, platform: Platform, tenant: ChatTenantFixture, push_service: FakePushService
) -> None:
    alice = await tenant.user("alice")
    bob = await tenant.user("bob")
    carol = await tenant.user("carol")
    bob_device, bob_path = await subscribed_device(client, push_service, bob)
    channel = await tenant.channel(alice, bob, kind="direct", name="")

    foreign = await client.request(
        "DELETE",
        "/api/chat/push/subscriptions",
        json={"endpoint": bob_device.endpoint},
        headers=carol.headers,
    )
    await send(client, alice, channel["id"], "one")
    await run_due_jobs(platform)
    own = await client.request(
        "DELETE", "/api/chat/push/subscriptions", json={"endpoint": bob_device.endpoint}, headers=bob.headers
    )
    await send(client, alice, channel["id"], "two")
    await run_due_jobs(platform)

    assert foreign.status_code == own.status_code == 204
    (delivery,) = push_service.to(bob_path)
    assert bob_device.decrypt(delivery.body)["body"] == "one"


async def test_an_endpoint_belongs_to_its_latest_subscriber(
    client: httpx.AsyncClient, platform: Platform, tenant: ChatTenantFixture, push_service: FakePushService
) -> None:
    alice = await tenant.user("alice")
    bob = await tenant.user("bob")
    carol = await tenant.user("carol")
    shared_device, path = await subscribed_device(client, push_service, bob)
    assert (await subscribe(client, carol, shared_device)).status_code == 201
    channel = await tenant.channel(alice, bob, kind="direct", name="")

    await send(client, alice, channel["id"], "for bob only")
    await run_due_jobs(platform)

    assert push_service.to(path) == []
