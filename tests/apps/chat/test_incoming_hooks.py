"""Incoming webhooks: a channel manager makes a secret URL; posting to it sends a message as a bot user,
through the same rules as any message; wrong or revoked URLs are 404; posts are rate-limited."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from pentad.apps.chat import incoming_hooks
from pentad.apps.chat.models import ChatIncomingHook
from pentad.core.auth.tokens import hash_secret
from pentad.core.platform import Platform
from tests.apps.chat.factories import ChatTenantFixture, ChatUserFixture


async def _create_hook(
    client: httpx.AsyncClient, user: ChatUserFixture, channel_id: Any, name: str = "Deploys"
) -> httpx.Response:
    return await client.post(
        f"/api/chat/channels/{channel_id}/incoming-hooks", json={"name": name}, headers=user.headers
    )


async def _hook(
    client: httpx.AsyncClient, user: ChatUserFixture, channel_id: Any, name: str = "Deploys"
) -> Any:
    response = await _create_hook(client, user, channel_id, name)
    assert response.status_code == 201, response.text
    return response.json()


def _path(url: str) -> str:
    return url.removeprefix("http://127.0.0.1:8000")


async def test_a_post_to_the_url_is_a_message_from_the_bot(
    tenant: ChatTenantFixture, platform: Platform
) -> None:
    owner = await tenant.user("owner")
    channel = await tenant.channel(owner, name="ops")
    hook = await _hook(tenant.client, owner, channel["id"])
    hook_id = hook["id"]
    assert hook["url"].startswith(f"http://127.0.0.1:8000/api/chat/hooks/{hook_id}/")
    assert (hook["bot"]["role"], hook["bot"]["name"]) == ("bot", "Deploys")

    response = await tenant.client.post(_path(hook["url"]), json={"text": "**v2** is live <script>"})
    assert response.status_code == 201, response.text
    message = response.json()
    assert message["user"]["id"] == hook["bot"]["id"]
    assert "<strong>v2</strong>" in message["html"]
    assert "<script>" not in message["html"]

    history = await tenant.client.get(f"/api/chat/channels/{channel['id']}/messages", headers=owner.headers)
    assert [m["id"] for m in history.json()["messages"]] == [message["id"]]
    members = await tenant.client.get(f"/api/chat/channels/{channel['id']}/members", headers=owner.headers)
    assert hook["bot"]["id"] in {m["user"]["id"] for m in members.json()}

    secret = hook["url"].rsplit("/", 1)[1]
    async with platform.database.transaction(writes=False) as session:
        row = await session.get(ChatIncomingHook, uuid.UUID(hook_id))
        assert row is not None
        assert row.secret_hash == hash_secret(secret)


async def test_a_repeated_client_id_posts_once(tenant: ChatTenantFixture) -> None:
    owner = await tenant.user("owner")
    channel = await tenant.channel(owner)
    path = _path((await _hook(tenant.client, owner, channel["id"]))["url"])
    body = {"text": "build 42 passed", "client_id": "build-42"}
    first = await tenant.client.post(path, json=body)
    again = await tenant.client.post(path, json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]


async def test_the_tenants_blocked_words_apply(tenant: ChatTenantFixture) -> None:
    owner = await tenant.user("owner")
    channel = await tenant.channel(owner)
    path = _path((await _hook(tenant.client, owner, channel["id"]))["url"])
    response = await tenant.client.put(
        "/api/chat/server/tenant/blocked-words", json={"blocked_words": ["darn"]}, headers=tenant.headers
    )
    assert response.status_code == 200
    response = await tenant.client.post(path, json={"text": "darn, the build broke"})
    assert (response.status_code, response.json()["code"]) == (400, "blocked_word")


async def test_bodies_must_carry_text(tenant: ChatTenantFixture) -> None:
    owner = await tenant.user("owner")
    channel = await tenant.channel(owner)
    path = _path((await _hook(tenant.client, owner, channel["id"]))["url"])
    for body in ({}, {"text": ""}, {"text": "x", "user_id": "someone"}):
        assert (await tenant.client.post(path, json=body)).status_code == 422, body


async def test_hooks_of_one_name_share_their_bot(tenant: ChatTenantFixture) -> None:
    owner = await tenant.user("owner")
    first = await tenant.channel(owner, name="one")
    second = await tenant.channel(owner, name="two")
    a = await _hook(tenant.client, owner, first["id"], "CI")
    b = await _hook(tenant.client, owner, second["id"], "CI")
    c = await _hook(tenant.client, owner, second["id"], "Alerts")
    assert a["bot"]["id"] == b["bot"]["id"] != c["bot"]["id"]
    listed = await tenant.client.get(
        f"/api/chat/channels/{second['id']}/incoming-hooks", headers=owner.headers
    )
    assert [(h["id"], h["name"]) for h in listed.json()] == [(b["id"], "CI"), (c["id"], "Alerts")]
    assert all("url" not in h for h in listed.json())


async def test_a_wrong_unknown_or_revoked_url_is_not_found(tenant: ChatTenantFixture) -> None:
    owner = await tenant.user("owner")
    channel = await tenant.channel(owner)
    hook = await _hook(tenant.client, owner, channel["id"])
    path = _path(hook["url"])
    body = {"text": "hello"}

    wrong = path.rsplit("/", 1)[0] + "/" + "x" * 43
    unknown = f"/api/chat/hooks/{uuid.uuid4()}/{path.rsplit('/', 1)[1]}"
    for attempt in (wrong, unknown):
        response = await tenant.client.post(attempt, json=body)
        assert (response.status_code, response.json()["code"]) == (404, "hook_not_found")

    revoke = f"/api/chat/channels/{channel['id']}/incoming-hooks/{hook['id']}"
    assert (await tenant.client.delete(revoke, headers=owner.headers)).status_code == 204
    response = await tenant.client.post(path, json=body)
    assert (response.status_code, response.json()["code"]) == (404, "hook_not_found")
    assert (await tenant.client.delete(revoke, headers=owner.headers)).status_code == 404
    listed = await tenant.client.get(
        f"/api/chat/channels/{channel['id']}/incoming-hooks", headers=owner.headers
    )
    assert listed.json() == []


async def test_posts_are_rate_limited_per_hook(
    tenant: ChatTenantFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(incoming_hooks, "POSTS_PER_HOOK", "2/minute")
    owner = await tenant.user("owner")
    channel = await tenant.channel(owner)
    path = _path((await _hook(tenant.client, owner, channel["id"]))["url"])
    other = _path((await _hook(tenant.client, owner, channel["id"], "Other"))["url"])
    statuses = [(await tenant.client.post(path, json={"text": f"n{i}"})).status_code for i in range(3)]
    assert statuses == [201, 201, 429]
    assert (await tenant.client.post(other, json={"text": "still fine"})).status_code == 201


async def test_only_channel_managers_handle_hooks(
    tenant: ChatTenantFixture, other_tenant: ChatTenantFixture
) -> None:
    owner = await tenant.user("owner")
    member = await tenant.user("member")
    outsider = await tenant.user("outsider")
    stranger = await other_tenant.user("stranger")
    public = await tenant.channel(owner, member, name="public")
    private = await tenant.channel(owner, member, kind="private", name="private")
    hook = await _hook(tenant.client, owner, public["id"])
    client = tenant.client

    for channel, user, expected in (
        (public, member, 403),
        (private, member, 403),
        (private, outsider, 404),
        (public, stranger, 404),
    ):
        base = f"/api/chat/channels/{channel['id']}/incoming-hooks"
        assert (await _create_hook(client, user, channel["id"])).status_code == expected, (channel, user)
        assert (await client.get(base, headers=user.headers)).status_code == expected
    revoke = f"/api/chat/channels/{public['id']}/incoming-hooks/{hook['id']}"
    assert (await client.delete(revoke, headers=member.headers)).status_code == 403
    assert (await client.get(f"/api/chat/channels/{public['id']}/incoming-hooks")).status_code == 401
    response = await client.post(
        f"/api/chat/channels/{public['id']}/incoming-hooks", json={"name": "x"}, headers=tenant.headers
    )
    assert response.status_code == 403


async def test_direct_channels_take_no_hooks(tenant: ChatTenantFixture) -> None:
    admin = await tenant.user("ada", role="admin")
    bob = await tenant.user("bob")
    direct = await tenant.channel(admin, bob, kind="direct", name="")
    response = await _create_hook(tenant.client, admin, direct["id"])
    assert (response.status_code, response.json()["code"]) == (400, "direct_channel")
