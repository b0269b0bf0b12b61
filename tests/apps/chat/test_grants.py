"""Pentad accounts in the default tenant: grants and global roles hold with the page's user token too."""

from __future__ import annotations

import httpx

from pentad.core import audit
from pentad.core.auth.service import AuthService
from pentad.core.platform import Platform
from tests.factories import access_token, bearer, create_admin, create_user


async def _page_token(client: httpx.AsyncClient, token: str) -> dict[str, str]:
    response = await client.post("/api/chat/session-token", headers=bearer(token))
    assert response.status_code == 200, response.text
    return bearer(response.json()["token"])


async def test_a_channel_grant_lets_an_account_moderate_through_its_page_token(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    owner, moderator = await create_user(platform), await create_user(platform)
    owner_chat = await _page_token(client, await access_token(client, owner))
    moderator_chat = await _page_token(client, await access_token(client, moderator))
    channel = (
        await client.post("/api/chat/channels", json={"kind": "public", "name": "town"}, headers=owner_chat)
    ).json()
    message = (
        await client.post(
            f"/api/chat/channels/{channel['id']}/messages", json={"text": "hi"}, headers=owner_chat
        )
    ).json()

    refused = await client.delete(f"/api/chat/messages/{message['id']}", headers=moderator_chat)
    async with platform.database.transaction() as session:
        await AuthService(session, platform).grant(
            moderator.id, "chat.channel", channel["id"], "moderator", actor=audit.SYSTEM
        )
    deleted = await client.delete(f"/api/chat/messages/{message['id']}", headers=moderator_chat)

    assert refused.status_code == 403
    assert deleted.status_code == 200
    assert deleted.json()["deleted_at"] is not None


async def test_a_pentad_admin_administers_default_tenant_channels(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    member, admin = await create_user(platform), await create_admin(platform)
    member_chat = await _page_token(client, await access_token(client, member))
    admin_chat = await _page_token(client, await access_token(client, admin))
    channel = (
        await client.post("/api/chat/channels", json={"kind": "private", "name": "ops"}, headers=member_chat)
    ).json()

    renamed = await client.patch(
        f"/api/chat/channels/{channel['id']}", json={"name": "ops-2"}, headers=admin_chat
    )

    assert renamed.status_code == 200
    assert renamed.json()["name"] == "ops-2"
