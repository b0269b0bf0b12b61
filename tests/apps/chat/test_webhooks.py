"""Outgoing webhooks: managed through the server API, delivered signed by the `chat.webhook_deliver` job to a
real HTTP receiver on loopback, retried on failure, and never sent to private addresses (checked on create
and again before every delivery)."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select
from structlog.testing import capture_logs

from pentad.apps.chat.models import ChatWebhook
from pentad.apps.chat.settings import ChatSettings
from pentad.apps.chat.webhooks import DELIVER
from pentad.core.crypto import column_context
from pentad.core.db.base import utcnow
from pentad.core.jobs.models import Job, JobStatus
from pentad.core.platform import Platform
from tests.apps.chat.factories import ChatTenantFixture, send
from tests.core.jobs.conftest import jobs_named, set_job
from tests.factories import create_admin, login, run_due_jobs
from tests.receivers import Answer, Receiver, receiving

LOOPBACK = ["127.0.0.0/8"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as receiver:
        yield receiver


@pytest.fixture
def allow_loopback(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform.app_settings(ChatSettings), "webhook_allowed_networks", LOOPBACK)


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Names the tests make up, resolved to the address the test sets; other names do not resolve (no
    DNS in tests) except localhost; numeric hosts are parsed by the system as usual."""
    names: dict[str, str] = {}
    real = socket.getaddrinfo

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name in names:
            return real(names[name], port, *args, **kwargs)
        if name == "localhost":
            return real(host, port, *args, **kwargs)
        return real(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return names


async def _create(tenant: ChatTenantFixture, url: str, events: list[str] | None = None) -> httpx.Response:
    return await tenant.client.post(
        "/api/chat/server/webhooks", json={"url": url, "events": events or ["*"]}, headers=tenant.headers
    )


async def _webhook(tenant: ChatTenantFixture, url: str, events: list[str] | None = None) -> dict[str, Any]:
    response = await _create(tenant, url, events)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _verify(secret: str, headers: dict[str, str], body: bytes) -> None:
    fields = dict(part.split("=", 1) for part in headers["Pentad-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{fields['t']}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(fields["v1"], expected)


async def _delivery_jobs(platform: Platform) -> list[Job]:
    return await jobs_named(platform, DELIVER)


# ---------------------------------------------------------------- delivery


@pytest.mark.usefixtures("allow_loopback")
async def test_a_message_is_delivered_signed_to_the_receiver(
    tenant: ChatTenantFixture, platform: Platform, receiver: Receiver
) -> None:
    hook = await _webhook(tenant, receiver.url(), ["message.new"])
    assert hook["secret"].startswith("whsec_")
    ada = await tenant.user("ada")
    channel = await tenant.channel(ada)
    message = await send(tenant.client, ada, channel["id"], "hello **hooks**")

    await run_due_jobs(platform)

    (request,) = receiver.requests
    path, headers, body = request.path, request.headers, request.body
    assert path == "/hook"
    _verify(hook["secret"], headers, body)
    event = json.loads(body)
    assert headers["Pentad-Event"] == event["type"] == "message.new"
    assert headers["Pentad-Delivery"] == event["id"]
    assert headers["Host"] == f"127.0.0.1:{receiver.port}"
    assert event["data"]["id"] == message["id"]
    assert event["data"]["text"] == "hello **hooks**"
    stored = (
        await tenant.client.get(f"/api/chat/server/webhooks/{hook['id']}", headers=tenant.headers)
    ).json()
    assert stored["last_status"] == "HTTP 200"
    assert stored["last_delivery_at"] is not None
    assert "secret" not in stored


async def test_the_secret_is_stored_encrypted(
    tenant: ChatTenantFixture, platform: Platform, allow_loopback: None, receiver: Receiver
) -> None:
    hook = await _webhook(tenant, receiver.url())
    async with platform.database.transaction(writes=False) as session:
        row = await session.get(ChatWebhook, uuid.UUID(hook["id"]))
        assert row is not None
        assert hook["secret"] not in row.secret
        context = column_context("chat_webhooks", "secret", row.id)
        assert platform.keyring.decrypt(row.secret, context=context) == hook["secret"]


@pytest.mark.usefixtures("allow_loopback")
async def test_each_webhook_gets_only_the_events_it_asked_for(
    tenant: ChatTenantFixture, platform: Platform, receiver: Receiver
) -> None:
    await _webhook(tenant, receiver.url("/all"), ["*"])
    await _webhook(tenant, receiver.url("/reactions"), ["reaction.added", "reaction.removed"])
    ada = await tenant.user("ada")
    channel = await tenant.channel(ada)
    message = await send(tenant.client, ada, channel["id"])
    response = await tenant.client.put(
        f"/api/chat/messages/{message['id']}/reactions/👍", headers=ada.headers
    )
    assert response.status_code == 200

    await run_due_jobs(platform)

    seen = sorted((r.path, json.loads(r.body)["type"]) for r in receiver.requests)
    assert seen == [("/all", "message.new"), ("/all", "reaction.added"), ("/reactions", "reaction.added")]
    (reaction,) = [json.loads(r.body)["data"] for r in receiver.requests if r.path == "/reactions"]
    assert (reaction["emoji"], reaction["user_id"]) == ("👍", str(ada.id))
    assert reaction["message"]["id"] == message["id"]


@pytest.mark.usefixtures("allow_loopback")
async def test_a_refused_delivery_is_retried_until_it_succeeds(
    tenant: ChatTenantFixture, platform: Platform, receiver: Receiver
) -> None:
    hook = await _webhook(tenant, receiver.url())
    receiver.answers = [Answer(500)]
    ada = await tenant.user("ada")
    await send(tenant.client, ada, (await tenant.channel(ada))["id"])

    await run_due_jobs(platform)
    (job,) = await _delivery_jobs(platform)
    assert (job.status, job.attempts) == (JobStatus.QUEUED, 1)
    assert "HTTP 500" in (job.last_error or "")
    url = f"/api/chat/server/webhooks/{hook['id']}"
    assert (await tenant.client.get(url, headers=tenant.headers)).json()["last_status"] == "HTTP 500"

    await set_job(platform, job.id, run_at=utcnow())
    await run_due_jobs(platform)
    (job,) = await _delivery_jobs(platform)
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 2)
    first, second = receiver.requests
    assert first.headers["Pentad-Delivery"] == second.headers["Pentad-Delivery"]
    assert first.body == second.body
    _verify(hook["secret"], second.headers, second.body)
    assert (await tenant.client.get(url, headers=tenant.headers)).json()["last_status"] == "HTTP 200"


@pytest.mark.usefixtures("allow_loopback")
async def test_deliveries_give_up_after_the_configured_attempts(
    tenant: ChatTenantFixture, platform: Platform, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(platform.app_settings(ChatSettings), "webhook_max_attempts", 1)
    await _webhook(tenant, receiver.url())
    receiver.answers = [Answer(503)]
    ada = await tenant.user("ada")
    await send(tenant.client, ada, (await tenant.channel(ada))["id"])

    await run_due_jobs(platform)

    (job,) = await _delivery_jobs(platform)
    assert (job.status, job.attempts) == (JobStatus.DEAD, 1)


@pytest.mark.usefixtures("allow_loopback")
async def test_redirects_are_not_followed(
    tenant: ChatTenantFixture, platform: Platform, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(platform.app_settings(ChatSettings), "webhook_max_attempts", 1)
    await _webhook(tenant, receiver.url())
    receiver.answers = [Answer(307)]
    ada = await tenant.user("ada")
    await send(tenant.client, ada, (await tenant.channel(ada))["id"])

    await run_due_jobs(platform)

    assert len(receiver.requests) == 1
    (job,) = await _delivery_jobs(platform)
    assert job.status == JobStatus.DEAD


@pytest.mark.usefixtures("allow_loopback")
async def test_a_paused_or_deleted_webhook_gets_nothing(
    tenant: ChatTenantFixture, platform: Platform, receiver: Receiver
) -> None:
    paused = await _webhook(tenant, receiver.url("/paused"))
    deleted = await _webhook(tenant, receiver.url("/deleted"))
    ada = await tenant.user("ada")
    channel = await tenant.channel(ada)
    await send(tenant.client, ada, channel["id"])
    base = "/api/chat/server/webhooks"
    response = await tenant.client.patch(
        f"{base}/{paused['id']}", json={"active": False}, headers=tenant.headers
    )
    assert (response.status_code, response.json()["active"]) == (200, False)
    assert (await tenant.client.delete(f"{base}/{deleted['id']}", headers=tenant.headers)).status_code == 204

    await run_due_jobs(platform)
    await send(tenant.client, ada, channel["id"])
    await run_due_jobs(platform)

    assert receiver.requests == []
    assert {job.status for job in await _delivery_jobs(platform)} == {JobStatus.SUCCEEDED}


# ---------------------------------------------------------------- management


@pytest.mark.usefixtures("allow_loopback")
async def test_webhooks_are_listed_updated_and_their_secret_rotated(
    tenant: ChatTenantFixture, platform: Platform, receiver: Receiver
) -> None:
    hook = await _webhook(tenant, receiver.url(), ["message.new", "message.new", "message.deleted"])
    assert hook["events"] == ["message.deleted", "message.new"]
    base = "/api/chat/server/webhooks"
    listed = (await tenant.client.get(base, headers=tenant.headers)).json()
    assert [(w["id"], w["url"]) for w in listed] == [(hook["id"], receiver.url())]
    assert "secret" not in listed[0]

    response = await tenant.client.patch(
        f"{base}/{hook['id']}", json={"events": ["*"], "url": receiver.url("/v2")}, headers=tenant.headers
    )
    assert (response.json()["events"], response.json()["url"]) == (["*"], receiver.url("/v2"))

    rotated = await tenant.client.post(f"{base}/{hook['id']}/rotate-secret", headers=tenant.headers)
    assert rotated.status_code == 200
    new_secret = rotated.json()["secret"]
    assert new_secret != hook["secret"]
    ada = await tenant.user("ada")
    await send(tenant.client, ada, (await tenant.channel(ada))["id"])
    await run_due_jobs(platform)
    (request,) = receiver.requests
    path, headers, body = request.path, request.headers, request.body
    assert path == "/v2"
    _verify(new_secret, headers, body)


async def test_bad_bodies_are_refused_with_422(tenant: ChatTenantFixture) -> None:
    for body in (
        {"url": "https://example.com/", "events": []},
        {"url": "https://example.com/", "events": ["message.exploded"]},
        {"url": "https://example.com/"},
    ):
        response = await tenant.client.post("/api/chat/server/webhooks", json=body, headers=tenant.headers)
        assert response.status_code == 422, body


# ------------------------------------------------------- destinations: the SSRF guard


PRIVATE = "private or reserved address"


REFUSED = [
    ("https://127.0.0.1/hook", PRIVATE),
    ("https://localhost/hook", PRIVATE),
    ("https://10.1.2.3/hook", PRIVATE),
    ("https://192.168.0.10/hook", PRIVATE),
    ("https://169.254.169.254/latest/meta-data/", PRIVATE),
    ("https://100.64.0.1/hook", PRIVATE),
    ("https://[::1]/hook", PRIVATE),
    ("https://[fd00::1]/hook", PRIVATE),
    ("https://0.0.0.0/hook", PRIVATE),
    ("https://[::ffff:127.0.0.1]/hook", PRIVATE),
    ("https://[::ffff:a9fe:a9fe]/hook", PRIVATE),
    ("https://2130706433/hook", PRIVATE),
    ("https://0177.0.0.1/hook", PRIVATE),
    ("https://0x7f.1/hook", PRIVATE),
    ("https://loopback.example.test/hook", PRIVATE),
    ("http://127.0.0.1:8000/hook", "https"),
    ("http://169.254.169.254/latest/meta-data/", "https"),
    ("http://public.example.test/hook", "https"),
    ("https://unresolvable.example.test/hook", "does not resolve"),
    ("https://user:password@public.example.test/hook", "credentials"),
    ("ftp://public.example.test/hook", "https URL"),
    ("not a url", "https URL"),
]


async def test_private_or_bad_destinations_are_refused_at_create(
    tenant: ChatTenantFixture, dns: dict[str, str]
) -> None:
    dns["loopback.example.test"] = "127.0.0.1"
    dns["public.example.test"] = "93.184.215.14"
    for url, reason in REFUSED:
        response = await _create(tenant, url)
        assert response.status_code == 400, (url, response.text)
        assert response.json()["code"] == "webhook_destination_refused", url
        assert reason in response.json()["detail"], (url, response.json()["detail"])
    assert (await tenant.client.get("/api/chat/server/webhooks", headers=tenant.headers)).json() == []


async def test_a_name_with_one_private_address_is_refused(
    tenant: ChatTenantFixture, dns: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = socket.getaddrinfo

    def two_answers(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "split.example.test":
            return real("93.184.215.14", port, *args, **kwargs) + real("10.0.0.5", port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", two_answers)
    response = await _create(tenant, "https://split.example.test/hook")
    assert response.json()["code"] == "webhook_destination_refused"


async def test_a_public_destination_is_accepted(tenant: ChatTenantFixture, dns: dict[str, str]) -> None:
    dns["public.example.test"] = "93.184.215.14"
    hook = await _webhook(tenant, "https://public.example.test/hook")
    assert hook["url"] == "https://public.example.test/hook"
    response = await tenant.client.patch(
        f"/api/chat/server/webhooks/{hook['id']}", json={"url": "https://127.0.0.1/"}, headers=tenant.headers
    )
    assert response.json()["code"] == "webhook_destination_refused"


async def test_delivery_rechecks_the_destination_and_never_connects(
    tenant: ChatTenantFixture,
    platform: Platform,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(platform.app_settings(ChatSettings), "webhook_allowed_networks", LOOPBACK)
    hook = await _webhook(tenant, receiver.url())
    monkeypatch.setattr(platform.app_settings(ChatSettings), "webhook_allowed_networks", [])
    ada = await tenant.user("ada")
    await send(tenant.client, ada, (await tenant.channel(ada))["id"])

    await run_due_jobs(platform)

    assert receiver.requests == []
    (job,) = await _delivery_jobs(platform)
    assert (job.status, job.attempts) == (JobStatus.QUEUED, 1)
    assert "DestinationNotAllowed" in (job.last_error or "")
    stored = (
        await tenant.client.get(f"/api/chat/server/webhooks/{hook['id']}", headers=tenant.headers)
    ).json()
    assert stored["last_status"].startswith("refused:")


async def test_a_name_that_resolves_elsewhere_at_delivery_is_refused(
    tenant: ChatTenantFixture, platform: Platform, receiver: Receiver, dns: dict[str, str]
) -> None:
    dns["rebind.example.test"] = "93.184.215.14"
    await _webhook(tenant, f"https://rebind.example.test:{receiver.port}/hook")
    dns["rebind.example.test"] = "127.0.0.1"
    ada = await tenant.user("ada")
    await send(tenant.client, ada, (await tenant.channel(ada))["id"])

    await run_due_jobs(platform)

    assert receiver.requests == []
    (job,) = await _delivery_jobs(platform)
    assert job.status == JobStatus.QUEUED
    assert "private or reserved" in (job.last_error or "")


async def test_a_stored_private_destination_is_refused_at_delivery(
    tenant: ChatTenantFixture, platform: Platform, receiver: Receiver
) -> None:
    async with platform.database.transaction() as session:
        row = ChatWebhook(tenant_id=tenant.id, url=receiver.url(), secret="", events=["*"])
        session.add(row)
        await session.flush()
        row.secret = platform.keyring.encrypt(
            "whsec_test", context=column_context("chat_webhooks", "secret", row.id)
        )
    ada = await tenant.user("ada")
    await send(tenant.client, ada, (await tenant.channel(ada))["id"])

    await run_due_jobs(platform)

    assert receiver.requests == []
    async with platform.database.transaction(writes=False) as session:
        stored = (await session.scalars(select(ChatWebhook).where(ChatWebhook.id == row.id))).one()
        assert (stored.last_status or "").startswith("refused:")


# ---------------------------------------------------------------- who may manage webhooks


async def test_only_the_tenants_own_key_manages_its_webhooks(
    tenant: ChatTenantFixture,
    other_tenant: ChatTenantFixture,
    platform: Platform,
    dns: dict[str, str],
) -> None:
    dns["public.example.test"] = "93.184.215.14"
    hook = await _webhook(tenant, "https://public.example.test/hook")
    base = "/api/chat/server/webhooks"
    one = f"{base}/{hook['id']}"
    client = tenant.client
    body = {"url": "https://public.example.test/", "events": ["*"]}

    assert (await client.get(base)).status_code == 401
    assert (await client.post(base, json=body)).status_code == 401

    ada = await tenant.user("ada")
    for method, path in (("GET", base), ("POST", base), ("GET", one), ("DELETE", one)):
        response = await client.request(
            method, path, json=body if method == "POST" else None, headers=ada.headers
        )
        assert response.status_code == 403, (method, path)

    admin = await create_admin(platform)
    token = (await login(client, admin.email))["access_token"]
    response = await client.get(base, headers={"Authorization": f"Bearer {token}"})
    assert (response.status_code, response.json()["code"]) == (403, "server_key_required")

    other = other_tenant.headers
    assert (await client.get(base, headers=other)).json() == []
    assert (await client.get(one, headers=other)).status_code == 404
    assert (await client.patch(one, json={"active": False}, headers=other)).status_code == 404
    assert (await client.post(f"{one}/rotate-secret", headers=other)).status_code == 404
    assert (await client.delete(one, headers=other)).status_code == 404
    assert (await client.get(one, headers=tenant.headers)).json()["active"] is True


def test_the_deprecated_chat_network_list_still_validates_and_warns_at_start() -> None:
    with capture_logs() as logs:
        settings = ChatSettings.model_validate({"webhook_allowed_networks": "10.0.0.0/8"})
    assert settings.webhook_allowed_networks == ["10.0.0.0/8"]
    assert [log["setting"] for log in logs if log["event"] == "deprecated_setting"] == [
        "PENTAD_CHAT__WEBHOOK_ALLOWED_NETWORKS"
    ]
    with capture_logs() as logs:
        ChatSettings.model_validate({})
    assert not [log for log in logs if log["event"] == "deprecated_setting"]
    with pytest.raises(ValidationError):
        ChatSettings.model_validate({"webhook_allowed_networks": "not-a-network"})
