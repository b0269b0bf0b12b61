"""Tenants, server keys, users and user tokens: the admin API, the server API, the credentials they mint."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import select

from pentad.apps.chat.models import ChatServerKey, ChatTenant, ChatUser
from pentad.apps.chat.settings import ChatSettings
from pentad.apps.chat.tenancy import USER_TOKEN_AUDIENCE
from pentad.core.auth import tokens
from pentad.core.platform import Platform
from tests.apps.chat.factories import ChatTenantFixture
from tests.apps.chat.support import admin_key, audit_events
from tests.factories import access_token, bearer, create_user


async def test_an_admin_creates_a_tenant_and_a_key_shown_once_and_stored_hashed(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    admin = bearer(await admin_key(platform))
    response = await client.post("/api/chat/tenants", json={"slug": "shop", "name": "Shop"}, headers=admin)
    assert response.status_code == 201, response.text
    tenant = response.json()
    assert (tenant["slug"], tenant["name"], tenant["disabled_at"]) == ("shop", "Shop", None)
    again = await client.post("/api/chat/tenants", json={"slug": "shop", "name": "Again"}, headers=admin)
    assert (again.status_code, again.json()["code"]) == (409, "tenant_exists")

    response = await client.post(
        f"/api/chat/tenants/{tenant['id']}/keys", json={"name": "web"}, headers=admin
    )
    assert response.status_code == 201, response.text
    created = response.json()
    key = created["key"]
    assert key.startswith("pck_")
    listed = (await client.get(f"/api/chat/tenants/{tenant['id']}/keys", headers=admin)).json()
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0]
    assert key.endswith(listed[0]["hint"].rsplit("…", 1)[1])

    async with platform.database.transaction(writes=False) as session:
        stored = await session.get(ChatServerKey, uuid.UUID(created["id"]))
    assert stored is not None
    secret = tokens.parse_token(key, "pck")
    assert secret is not None
    assert stored.secret_hash == tokens.hash_secret(secret.secret)
    assert secret.secret not in repr([getattr(stored, c.key) for c in ChatServerKey.__table__.columns])

    own = await client.get("/api/chat/server/tenant", headers=bearer(key))
    assert (own.status_code, own.json()["slug"]) == (200, "shop")
    assert [e.resource_id for e in await audit_events(platform, "chat.tenant_created")] == [tenant["id"]]
    assert len(await audit_events(platform, "chat.server_key_created")) == 1


async def test_a_revoked_server_key_stops_working_at_once(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    admin = bearer(await admin_key(platform))
    tenant = (
        await client.post("/api/chat/tenants", json={"slug": "gone", "name": "G"}, headers=admin)
    ).json()
    created = (
        await client.post(f"/api/chat/tenants/{tenant['id']}/keys", json={"name": "k"}, headers=admin)
    ).json()
    assert (await client.get("/api/chat/server/tenant", headers=bearer(created["key"]))).status_code == 200
    response = await client.delete(f"/api/chat/tenants/{tenant['id']}/keys/{created['id']}", headers=admin)
    assert response.status_code == 204
    assert (await client.get("/api/chat/server/tenant", headers=bearer(created["key"]))).status_code == 401
    assert len(await audit_events(platform, "chat.server_key_revoked")) == 1


async def test_the_server_api_upserts_users_created_then_updated(
    client: httpx.AsyncClient, tenant: ChatTenantFixture
) -> None:
    url = "/api/chat/server/users/user-1"
    body = {"name": "Ann", "handle": "ann", "email": "ann@example.com", "data": {"plan": "pro"}}
    first = await client.put(url, json=body, headers=tenant.headers)
    assert first.status_code == 201, first.text
    second = await client.put(url, json={**body, "name": "Ann B"}, headers=tenant.headers)
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    got = (await client.get(url, headers=tenant.headers)).json()
    assert (got["name"], got["handle"], got["data"]) == ("Ann B", "ann", {"plan": "pro"})

    taken = await client.put(
        "/api/chat/server/users/user-2", json={"name": "X", "handle": "ann"}, headers=tenant.headers
    )
    assert (taken.status_code, taken.json()["code"]) == (409, "handle_taken")
    derived = await client.put(
        "/api/chat/server/users/ann", json={"name": "Other Ann"}, headers=tenant.headers
    )
    assert derived.status_code == 201
    assert derived.json()["handle"] not in ("ann", "")
    bad = await client.put("/api/chat/server/users/no%20spaces", json={"name": "X"}, headers=tenant.headers)
    assert bad.status_code == 422
    missing = await client.get("/api/chat/server/users/nobody", headers=tenant.headers)
    assert (missing.status_code, missing.json()["code"]) == (404, "chat_user_not_found")


async def test_revoking_tokens_refuses_older_tokens_at_once_and_accepts_new_ones(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, platform: Platform
) -> None:
    user = await tenant.user("rev")
    assert (await client.get("/api/chat/me", headers=user.headers)).status_code == 200  # now cached
    response = await client.post("/api/chat/server/users/rev/revoke-tokens", headers=tenant.headers)
    assert response.status_code == 204
    assert (await client.get("/api/chat/me", headers=user.headers)).status_code == 401

    fresh = await client.post("/api/chat/server/users/rev/tokens", headers=tenant.headers)
    assert fresh.status_code == 201
    me = await client.get("/api/chat/me", headers=bearer(fresh.json()["token"]))
    assert (me.status_code, me.json()["id"]) == (200, str(user.id))
    assert (await client.get("/api/chat/me", headers=user.headers)).status_code == 401
    assert len(await audit_events(platform, "chat.user_tokens_revoked")) == 1


async def test_a_token_lives_as_long_as_asked(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, platform: Platform
) -> None:
    await tenant.user("ttl")
    response = await client.post(
        "/api/chat/server/users/ttl/tokens", json={"ttl": 120}, headers=tenant.headers
    )
    assert response.status_code == 201
    token = response.json()["token"]
    claims = tokens.read_jwt(
        platform.signing_secret, token.removeprefix("pcu_"), issuer=platform.settings.auth.issuer,
        audience=USER_TOKEN_AUDIENCE,
    )  # fmt: skip
    assert claims is not None
    assert claims["exp"] - claims["iat"] == 120
    too_short = await client.post(
        "/api/chat/server/users/ttl/tokens", json={"ttl": 5}, headers=tenant.headers
    )
    assert too_short.status_code == 422


async def test_a_deactivated_user_loses_access_and_gets_no_tokens(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, platform: Platform
) -> None:
    user = await tenant.user("leaver")
    assert (await client.get("/api/chat/me", headers=user.headers)).status_code == 200
    response = await client.post("/api/chat/server/users/leaver/deactivate", headers=tenant.headers)
    assert response.status_code == 200
    assert response.json()["deactivated_at"] is not None
    assert (await client.get("/api/chat/me", headers=user.headers)).status_code == 401
    refused = await client.post("/api/chat/server/users/leaver/tokens", headers=tenant.headers)
    assert (refused.status_code, refused.json()["code"]) == (404, "chat_user_deactivated")
    others = await tenant.user("stayer")
    listed = (await client.get("/api/chat/users", headers=others.headers)).json()
    assert "leaver" not in [u["external_id"] for u in listed]

    assert (
        await client.post("/api/chat/server/users/leaver/reactivate", headers=tenant.headers)
    ).status_code == 200
    fresh = await client.post("/api/chat/server/users/leaver/tokens", headers=tenant.headers)
    assert (await client.get("/api/chat/me", headers=bearer(fresh.json()["token"]))).status_code == 200
    assert [e.action for e in await audit_events(platform, "chat.user_deactivated")] == [
        "chat.user_deactivated"
    ]


async def test_a_disabled_tenant_refuses_its_keys_and_tokens(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, platform: Platform
) -> None:
    user = await tenant.user("dis")
    assert (await client.get("/api/chat/me", headers=user.headers)).status_code == 200
    assert (await client.get("/api/chat/server/tenant", headers=tenant.headers)).status_code == 200
    admin = bearer(await admin_key(platform))
    response = await client.patch(f"/api/chat/tenants/{tenant.id}", json={"disabled": True}, headers=admin)
    assert response.status_code == 200
    assert response.json()["disabled_at"] is not None
    assert (await client.get("/api/chat/me", headers=user.headers)).status_code == 401
    assert (await client.get("/api/chat/server/tenant", headers=tenant.headers)).status_code == 401

    await client.patch(f"/api/chat/tenants/{tenant.id}", json={"disabled": False}, headers=admin)
    assert (await client.get("/api/chat/me", headers=user.headers)).status_code == 200
    assert (await client.get("/api/chat/server/tenant", headers=tenant.headers)).status_code == 200


async def test_a_tenant_key_cannot_see_or_touch_another_tenants_users_and_channels(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, other_tenant: ChatTenantFixture
) -> None:
    theirs = await other_tenant.user("theirs")
    their_friend = await other_tenant.user("their-friend")
    channel = await other_tenant.channel(theirs, their_friend, kind="public", name="theirs")
    mine = await tenant.user("mine")
    key = tenant.headers

    for method, path in (
        ("GET", "/api/chat/server/users/theirs"),
        ("POST", "/api/chat/server/users/theirs/tokens"),
        ("POST", "/api/chat/server/users/theirs/revoke-tokens"),
        ("POST", "/api/chat/server/users/theirs/deactivate"),
    ):
        response = await client.request(method, path, headers=key)
        assert response.status_code == 404, (method, path, response.text)
    members = await client.post(
        f"/api/chat/server/channels/{channel['id']}/members", json={"user_ids": ["mine"]}, headers=key
    )
    assert members.status_code == 404
    message = await client.post(
        f"/api/chat/server/channels/{channel['id']}/messages",
        json={"user_id": "mine", "text": "hi"},
        headers=key,
    )
    assert message.status_code == 404
    created = await client.post(
        "/api/chat/server/channels",
        json={"kind": "direct", "created_by": "mine", "members": ["theirs"]},
        headers=key,
    )
    assert created.status_code == 404

    # An external id is only unique within a tenant: upserting "theirs" here makes a user of this tenant.
    ours = await client.put("/api/chat/server/users/theirs", json={"name": "Ours"}, headers=key)
    assert ours.status_code == 201
    assert ours.json()["id"] != str(theirs.id)
    untouched = await client.get("/api/chat/server/users/theirs", headers=other_tenant.headers)
    assert untouched.json()["name"] == "Theirs"

    assert (await client.get(f"/api/chat/channels/{channel['id']}", headers=mine.headers)).status_code == 404
    listed = (await client.get("/api/chat/users", headers=mine.headers)).json()
    assert str(theirs.id) not in [u["id"] for u in listed]
    public = (await client.get("/api/chat/channels/public", headers=mine.headers)).json()
    assert channel["id"] not in [c["id"] for c in public]
    direct = await client.post(
        "/api/chat/channels", json={"kind": "direct", "members": [str(theirs.id)]}, headers=mine.headers
    )
    assert (direct.status_code, direct.json()["code"]) == (404, "chat_user_not_found")


async def test_a_pentad_account_chats_as_a_user_of_the_default_tenant(
    client: httpx.AsyncClient, platform: Platform, tenant: ChatTenantFixture
) -> None:
    account = await create_user(platform, display_name="Pat Person")
    headers = bearer(await access_token(client, account))
    me = await client.get("/api/chat/me", headers=headers)
    assert me.status_code == 200, me.text
    chat_user = me.json()
    assert chat_user["external_id"] == f"pentad:{account.id}"
    assert chat_user["name"] == "Pat Person"
    assert (await client.get("/api/chat/me", headers=headers)).json()["id"] == chat_user["id"]

    async with platform.database.transaction(writes=False) as session:
        row = await session.get(ChatUser, uuid.UUID(chat_user["id"]))
        assert row is not None
        default = (
            await session.execute(select(ChatTenant).where(ChatTenant.id == row.tenant_id))
        ).scalar_one()
    assert (default.slug, row.pentad_user_id) == (
        platform.app_settings(ChatSettings).default_tenant,
        account.id,
    )

    minted = await client.post("/api/chat/session-token", headers=headers)
    assert minted.status_code == 200, minted.text
    token = minted.json()["token"]
    assert token.startswith("pcu_")
    assert (await client.get("/api/chat/me", headers=bearer(token))).json()["id"] == chat_user["id"]
    again = await client.post("/api/chat/session-token", headers=bearer(token))
    assert (again.status_code, again.json()["code"]) == (403, "use_server_api")

    # The default tenant is a tenant like any other: its channels are invisible from another.
    channel = await client.post(
        "/api/chat/channels", json={"kind": "public", "name": "lobby"}, headers=headers
    )
    assert channel.status_code == 201
    outsider = await tenant.user("outsider")
    assert (
        await client.get(f"/api/chat/channels/{channel.json()['id']}", headers=outsider.headers)
    ).status_code == 404


async def test_tokens_of_a_service_cannot_chat(client: httpx.AsyncClient, tenant: ChatTenantFixture) -> None:
    response = await client.get("/api/chat/me", headers=tenant.headers)
    assert response.status_code == 403
