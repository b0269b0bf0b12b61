"""The deny side of every chat endpoint, walked from the API description so a new endpoint is covered at once.

Client API: each operation that names a channel, message or other object is called, with the ids of real
objects, by someone who must be refused: a tenant user outside a private channel, a user banned from the
channel, one banned from the whole tenant, a muted member (for what writes) and a user of another tenant.
Each must get 401, 403 or 404 and leave the database as it was. Server and admin APIs have their own tables.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from pentad.apps.chat.models import ChatWebhook
from pentad.core.config import Settings
from pentad.core.platform import Platform
from tests.apps.chat.factories import ChatTenantFixture, ChatUserFixture, send
from tests.apps.chat.support import admin_key, changed_tables, member_key, snapshot
from tests.conftest import make_settings
from tests.factories import bearer

Operation = tuple[str, str]

SEPARATE_PREFIXES = ("/api/chat/server/", "/api/chat/server", "/api/chat/tenants", "/api/chat/hooks/")
MARKER = "zqxmarker"
"""In every message of the channels under test: a response that contains it leaked one."""

OWN_SCOPE_WRITES: set[Operation] = {
    ("POST", "/api/chat/session-token"),
    ("PUT", "/api/chat/me/presence"),
    ("POST", "/api/chat/channels"),
    ("POST", "/api/chat/push/subscriptions"),
    ("DELETE", "/api/chat/push/subscriptions"),
}
"""Writes that name no object: they act on the caller's own account (checked elsewhere)."""

MUTED_MAY: set[Operation] = {
    ("POST", "/api/chat/channels/{channel_id}/leave"),
    ("POST", "/api/chat/channels/{channel_id}/read"),
    ("POST", "/api/chat/channels/{channel_id}/delivered"),
    ("POST", "/api/chat/channels/{channel_id}/join"),
    ("DELETE", "/api/chat/messages/{message_id}"),
    ("POST", "/api/chat/messages/{message_id}/reports"),
}
"""What a muted member still does: reading is not in this list because every GET stays open to them."""

MUTED_POSTING: set[Operation] = {
    ("POST", "/api/chat/channels/{channel_id}/messages"),
    ("PATCH", "/api/chat/messages/{message_id}"),
    ("PUT", "/api/chat/messages/{message_id}/reactions/{emoji}"),
    ("DELETE", "/api/chat/messages/{message_id}/reactions/{emoji}"),
    ("POST", "/api/chat/channels/{channel_id}/typing"),
    ("POST", "/api/chat/channels/{channel_id}/attachments"),
}
"""Refused to a muted member because they are muted (`code: muted`), not for want of a role."""


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    # These tables send a few hundred requests from one address within a second or two.
    return make_settings(tmp_path, database_url, apps=["chat"], ratelimit={"enabled": False})


def operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in app.openapi()["paths"].items()
        if path.startswith("/api/chat/")
        for method, operation in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def client_operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    return [op for op in operations(app) if not op[1].startswith(SEPARATE_PREFIXES)]


def path_parameters(path: str) -> list[str]:
    return re.findall(r"\{([^}]+)\}", path)


@dataclass
class World:
    """A channel full of real objects, and the people who must be kept out of it."""

    kind: str
    channel: str
    owner: ChatUserFixture
    muted: ChatUserFixture
    banned: ChatUserFixture
    exiled: ChatUserFixture
    outsider: ChatUserFixture
    newcomer: ChatUserFixture
    foreigner: ChatUserFixture
    message_of: dict[str, str]
    invite: str
    report: str
    mute: str
    ban: str
    attachment: str
    hook: str

    def actor(self, role: str) -> ChatUserFixture:
        user: ChatUserFixture = getattr(self, role)
        return user

    def path_values(self, role: str) -> dict[str, str]:
        return {
            "channel_id": self.channel,
            "message_id": self.message_of.get(role, self.message_of["owner"]),
            "user_id": str(self.owner.id),
            "invite_id": self.invite,
            "report_id": self.report,
            "restriction_id": self.ban if role == "banned" else self.mute,
            "emoji": "👍",
            "attachment_id": self.attachment,
            "hook_id": self.hook,
        }

    def request_fields(self, method: str, path: str) -> dict[str, Any]:
        """Query and body that pass validation, so what answers is the permission check."""
        bodies: dict[Operation, dict[str, Any]] = {
            ("PATCH", "/api/chat/channels/{channel_id}"): {"json": {"name": "taken over"}},
            ("POST", "/api/chat/channels/{channel_id}/members"): {
                "json": {"user_ids": [str(self.newcomer.id)]}
            },
            ("PATCH", "/api/chat/channels/{channel_id}/members/{user_id}"): {"json": {"role": "member"}},
            ("POST", "/api/chat/channels/{channel_id}/invites"): {
                "json": {"user_ids": [str(self.newcomer.id)]}
            },
            ("POST", "/api/chat/channels/{channel_id}/messages"): {"json": {"text": "let me in"}},
            ("POST", "/api/chat/channels/{channel_id}/read"): {"json": {"seq": 2}},
            ("POST", "/api/chat/channels/{channel_id}/delivered"): {"json": {"seq": 2}},
            ("POST", "/api/chat/channels/{channel_id}/typing"): {"json": {"active": True}},
            ("GET", "/api/chat/channels/{channel_id}/sync"): {"params": {"since": 0}},
            ("PATCH", "/api/chat/messages/{message_id}"): {"json": {"text": "rewritten"}},
            ("POST", "/api/chat/messages/{message_id}/reports"): {"json": {"reason": "x"}},
            ("POST", "/api/chat/reports/{report_id}/resolve"): {
                "json": {"status": "resolved", "delete_message": True}
            },
            ("POST", "/api/chat/channels/{channel_id}/restrictions"): {
                "json": {"user_id": str(self.owner.id), "kind": "ban"}
            },
            ("POST", "/api/chat/channels/{channel_id}/attachments"): {
                "files": {"file": ("x.txt", b"intruder", "text/plain")}
            },
            ("POST", "/api/chat/channels/{channel_id}/incoming-hooks"): {"json": {"name": "intruder"}},
        }
        return bodies.get((method, path), {})


async def build_world(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, other: ChatTenantFixture, kind: str
) -> World:
    owner, muted, banned = await tenant.user("owner"), await tenant.user("muted"), await tenant.user("banned")
    exiled = await tenant.user("exiled")
    outsider, newcomer, invitee = (
        await tenant.user("outsider"),
        await tenant.user("newcomer"),
        await tenant.user("invitee"),
    )
    foreigner = await other.user("foreigner")
    channel = (await tenant.channel(owner, muted, banned, exiled, kind=kind, name="guarded"))["id"]
    root = await send(client, owner, channel, f"{MARKER} root @muted")
    await send(client, owner, channel, f"{MARKER} reply", parent_id=root["id"])
    mine = await send(client, muted, channel, f"{MARKER} muted's own")
    theirs = await send(client, banned, channel, f"{MARKER} banned's own")
    exiles = await send(client, exiled, channel, f"{MARKER} exiled's own")
    for message in (root, mine):
        for user in (owner, muted):
            response = await client.put(
                f"/api/chat/messages/{message['id']}/reactions/👍", headers=user.headers
            )
            assert response.status_code == 200, response.text
    await client.patch(
        f"/api/chat/messages/{mine['id']}", json={"text": f"{MARKER} edited"}, headers=muted.headers
    )
    await client.put(f"/api/chat/messages/{root['id']}/pin", headers=owner.headers)
    invited = await client.post(
        f"/api/chat/channels/{channel}/invites", json={"user_ids": [str(invitee.id)]}, headers=owner.headers
    )
    assert invited.json() == {"invited": 1}
    invite = (await client.get("/api/chat/invites", headers=invitee.headers)).json()[0]["id"]
    report = await client.post(
        f"/api/chat/messages/{root['id']}/reports", json={"reason": "r"}, headers=muted.headers
    )
    assert report.status_code == 201, report.text
    upload = await client.post(
        f"/api/chat/channels/{channel}/attachments",
        files={"file": ("notes.txt", f"{MARKER} file".encode(), "text/plain")},
        headers=owner.headers,
    )
    assert upload.status_code == 201, upload.text
    hook = await client.post(
        f"/api/chat/channels/{channel}/incoming-hooks", json={"name": "ci"}, headers=owner.headers
    )
    assert hook.status_code == 201, hook.text
    mute = await client.post(
        f"/api/chat/channels/{channel}/restrictions",
        json={"user_id": str(muted.id), "kind": "mute"},
        headers=owner.headers,
    )
    ban = await client.post(
        f"/api/chat/channels/{channel}/restrictions",
        json={"user_id": str(banned.id), "kind": "ban"},
        headers=owner.headers,
    )
    exile = await client.post(
        "/api/chat/server/restrictions", json={"user_id": "exiled", "kind": "ban"}, headers=tenant.headers
    )
    assert (mute.status_code, ban.status_code, exile.status_code) == (201, 201, 201)
    return World(
        kind=kind,
        channel=channel,
        owner=owner,
        muted=muted,
        banned=banned,
        exiled=exiled,
        outsider=outsider,
        newcomer=newcomer,
        foreigner=foreigner,
        message_of={"owner": root["id"], "muted": mine["id"], "banned": theirs["id"], "exiled": exiles["id"]},
        invite=invite,
        report=report.json()["id"],
        mute=mute.json()["id"],
        ban=ban.json()["id"],
        attachment=upload.json()["id"],
        hook=hook.json()["id"],
    )


def concrete(path: str, values: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        # An object kind this table does not know yet still gets an id: a random one must be refused too.
        return values.get(match.group(1), str(uuid.uuid4()))

    return re.sub(r"\{([^}]+)\}", value, path)


def test_every_client_operation_is_classified(app: FastAPI) -> None:
    """Writes that name no object act on the caller's account: each new one must be looked at and listed."""
    unlisted = [
        (method, path)
        for method, path, _ in client_operations(app)
        if method != "GET" and not path_parameters(path) and (method, path) not in OWN_SCOPE_WRITES
    ]
    assert unlisted == []
    served = {(method, path) for method, path, _ in client_operations(app)}
    assert (OWN_SCOPE_WRITES | MUTED_MAY | MUTED_POSTING) - served == set()


CASES = [
    ("outsider", "private"),
    ("banned", "private"),
    ("banned", "public"),
    ("exiled", "private"),
    ("exiled", "public"),
    ("muted", "private"),
    ("muted", "public"),
    ("foreigner", "private"),
    ("foreigner", "public"),
]


@pytest.mark.parametrize(("role", "kind"), CASES)
async def test_every_client_operation_refuses_who_must_be_kept_out(
    app: FastAPI,
    client: httpx.AsyncClient,
    platform: Platform,
    tenant: ChatTenantFixture,
    other_tenant: ChatTenantFixture,
    role: str,
    kind: str,
) -> None:
    world = await build_world(client, tenant, other_tenant, kind)
    user = world.actor(role)
    values = world.path_values(role)
    before = await snapshot(platform)
    failures: list[tuple[object, ...]] = []
    called = 0
    for method, path, _ in client_operations(app):
        if not path_parameters(path):
            continue
        if role == "muted" and (method == "GET" or (method, path) in MUTED_MAY):
            continue
        response = await client.request(
            method, concrete(path, values), headers=user.headers, **world.request_fields(method, path)
        )
        called += 1
        code = response.json().get("code") if response.content else None
        if response.status_code not in (401, 403, 404):
            failures.append((method, path, response.status_code, response.text[:200]))
        elif role == "muted" and (method, path) in MUTED_POSTING and code != "muted":
            failures.append((method, path, response.status_code, code))
    assert failures == []
    assert called >= (20 if role == "muted" else 35)
    assert changed_tables(before, await snapshot(platform)) == {}
    if role != "muted":
        await assert_lists_leak_nothing(app, client, world, role)


async def assert_lists_leak_nothing(app: FastAPI, client: httpx.AsyncClient, world: World, role: str) -> None:
    """Lists and searches (GETs naming no object) show nothing of the channel, even when asked about it."""
    user = world.actor(role)
    for method, path, operation in client_operations(app):
        if method != "GET" or path_parameters(path):
            continue
        accepted = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        params = {"channel_id": world.channel, "q": MARKER, "status": "open"}
        response = await client.get(
            path, params={k: v for k, v in params.items() if k in accepted}, headers=user.headers
        )
        assert response.status_code in (200, 403, 404), (path, response.status_code, response.text)
        for secret in (MARKER, world.channel, world.message_of["owner"], world.invite, world.report):
            assert secret not in response.text, (path, secret)


# ---------------------------------------------------------------- server and admin APIs


async def test_user_credentials_cannot_use_the_server_or_admin_api(
    app: FastAPI, client: httpx.AsyncClient, platform: Platform, tenant: ChatTenantFixture
) -> None:
    user = await tenant.user("someone", role="admin")
    member = bearer(await member_key(platform))
    failures = []
    for method, path, _ in operations(app):
        if not path.startswith(("/api/chat/server", "/api/chat/tenants")):
            continue
        for who, headers in (("user token", user.headers), ("member API key", member)):
            response = await client.request(method, concrete(path, {}), headers=headers)
            if response.status_code != 403:
                failures.append((who, method, path, response.status_code))
    assert failures == []


async def test_tenant_keys_cannot_administer_tenants(
    app: FastAPI, client: httpx.AsyncClient, tenant: ChatTenantFixture
) -> None:
    for method, path, _ in operations(app):
        if path.startswith("/api/chat/tenants"):
            response = await client.request(
                method, concrete(path, {"tenant_id": str(tenant.id)}), headers=tenant.headers
            )
            assert response.status_code == 403, (method, path, response.status_code)


async def test_a_pentad_admin_key_administers_tenants_but_is_no_tenant_backend(
    app: FastAPI, client: httpx.AsyncClient, platform: Platform, tenant: ChatTenantFixture
) -> None:
    admin = bearer(await admin_key(platform))
    listed = await client.get("/api/chat/tenants", headers=admin)
    assert listed.status_code == 200
    assert str(tenant.id) in [t["id"] for t in listed.json()]
    assert (await client.get(f"/api/chat/tenants/{tenant.id}", headers=admin)).status_code == 200
    refused = await client.get("/api/chat/server/tenant", headers=admin)
    assert (refused.status_code, refused.json()["code"]) == (403, "server_key_required")


async def test_a_tenant_key_gets_404_for_every_object_of_another_tenant(
    app: FastAPI,
    client: httpx.AsyncClient,
    platform: Platform,
    tenant: ChatTenantFixture,
    other_tenant: ChatTenantFixture,
) -> None:
    await tenant.user("ours")
    theirs, friend = await other_tenant.user("theirs"), await other_tenant.user("friend")
    channel = (await other_tenant.channel(theirs, friend, kind="private", name="theirs"))["id"]
    restriction = await client.post(
        "/api/chat/server/restrictions",
        json={"user_id": "friend", "kind": "mute"},
        headers=other_tenant.headers,
    )
    assert restriction.status_code == 201
    async with platform.database.transaction() as session:
        webhook = ChatWebhook(
            tenant_id=other_tenant.id, url="https://example.com/hook", secret="sealed", events=["*"]
        )
        session.add(webhook)
    values = {
        "external_id": "theirs",
        "channel_id": channel,
        "restriction_id": restriction.json()["id"],
        "webhook_id": str(webhook.id),
    }
    bodies: dict[Operation, dict[str, Any]] = {
        ("POST", "/api/chat/server/channels/{channel_id}/members"): {"user_ids": ["ours"]},
        ("POST", "/api/chat/server/channels/{channel_id}/messages"): {"user_id": "ours", "text": "hi"},
        ("PATCH", "/api/chat/server/webhooks/{webhook_id}"): {"active": False},
    }
    # Upserting an external id makes a user of the caller's own tenant: ids are per tenant.
    not_a_lookup = {("PUT", "/api/chat/server/users/{external_id}")}
    before = await snapshot(platform)
    failures = []
    for method, path, _ in operations(app):
        if (
            not path.startswith("/api/chat/server/")
            or not path_parameters(path)
            or (method, path) in not_a_lookup
        ):
            continue
        kwargs: dict[str, Any] = {"json": bodies[(method, path)]} if (method, path) in bodies else {}
        response = await client.request(method, concrete(path, values), headers=tenant.headers, **kwargs)
        if response.status_code != 404:
            failures.append((method, path, response.status_code, response.text[:200]))
    assert failures == []
    assert changed_tables(before, await snapshot(platform)) == {}
