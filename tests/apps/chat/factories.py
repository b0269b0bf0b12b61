"""Small typed helpers for chat tests: tenants with server keys, users with tokens, channels, messages."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from pentad.apps.chat import schemas
from pentad.apps.chat.tenancy import TenantService
from pentad.core import audit
from pentad.core.platform import Platform
from tests.factories import bearer


@dataclass
class ChatUserFixture:
    id: uuid.UUID
    external_id: str
    handle: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


@dataclass
class ChatTenantFixture:
    id: uuid.UUID
    slug: str
    key: str
    client: httpx.AsyncClient

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.key)

    async def user(self, external_id: str | None = None, **fields: Any) -> ChatUserFixture:
        """Upsert a user through the server API and mint a token for them."""
        external_id = external_id or f"u-{uuid.uuid4().hex[:10]}"
        body = {"name": fields.pop("name", external_id.title()), **fields}
        response = await self.client.put(
            f"/api/chat/server/users/{external_id}", json=body, headers=self.headers
        )
        assert response.status_code in (200, 201), response.text
        user = response.json()
        response = await self.client.post(
            f"/api/chat/server/users/{external_id}/tokens", headers=self.headers
        )
        assert response.status_code == 201, response.text
        return ChatUserFixture(uuid.UUID(user["id"]), external_id, user["handle"], response.json()["token"])

    async def channel(
        self, owner: ChatUserFixture, *members: ChatUserFixture, kind: str = "public", name: str = "general"
    ) -> dict[str, Any]:
        body = {"kind": kind, "name": name, "members": [str(m.id) for m in members]}
        response = await self.client.post("/api/chat/channels", json=body, headers=owner.headers)
        assert response.status_code in (200, 201), response.text
        result: dict[str, Any] = response.json()
        return result


async def create_tenant(
    platform: Platform, client: httpx.AsyncClient, slug: str = "acme"
) -> ChatTenantFixture:
    async with platform.database.transaction() as session:
        service = TenantService(session, platform, audit.SYSTEM)
        tenant = await service.create_tenant(schemas.TenantCreate(slug=slug, name=slug.title()))
        key = await service.create_server_key(tenant.id, "tests")
    return ChatTenantFixture(tenant.id, slug, key.key, client)


async def send(
    client: httpx.AsyncClient, user: ChatUserFixture, channel_id: Any, text: str = "hello", **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        f"/api/chat/channels/{channel_id}/messages", json={"text": text, **fields}, headers=user.headers
    )
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result
