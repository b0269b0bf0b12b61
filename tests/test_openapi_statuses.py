"""Routes that answer with more than one success status document each of them in /openapi.json (clients
generated from the document must not treat an idempotent retry as an error)."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI

from pentad.app import create_app
from pentad.core.config import Settings
from pentad.core.db.engine import Database
from pentad.core.platform import Platform
from tests.apps.chat.factories import create_tenant
from tests.conftest import ALL_APPS


@pytest.fixture
def app(settings: Settings, database: Database) -> FastAPI:
    return create_app(settings, database=database, apps=ALL_APPS)


def _documented(app: FastAPI, method: str, template: str) -> set[str]:
    return set(app.openapi()["paths"][template][method.lower()]["responses"])


async def test_every_status_a_route_answers_is_documented(
    app: FastAPI, client: httpx.AsyncClient, platform: Platform
) -> None:
    tenant = await create_tenant(platform, client, slug="statuses")
    seen: list[tuple[str, str, int]] = []

    for _ in range(2):  # created, then updated
        response = await client.put(
            "/api/chat/server/users/ext-1", json={"name": "One"}, headers=tenant.headers
        )
        seen.append(("PUT", "/api/chat/server/users/{external_id}", response.status_code))
    one = await tenant.user("ext-1")
    two = await tenant.user("ext-2")

    for _ in range(2):  # created, then the existing direct channel
        response = await client.post(
            "/api/chat/channels", json={"kind": "direct", "members": [str(two.id)]}, headers=one.headers
        )
        seen.append(("POST", "/api/chat/channels", response.status_code))
    channel_id = response.json()["id"]

    body = {"text": "hello", "client_id": str(uuid.uuid4())}
    for _ in range(2):  # sent, then the retry
        response = await client.post(
            f"/api/chat/channels/{channel_id}/messages", json=body, headers=one.headers
        )
        seen.append(("POST", "/api/chat/channels/{channel_id}/messages", response.status_code))
    server_body = {"text": "from the backend", "client_id": str(uuid.uuid4())}
    for _ in range(2):
        response = await client.post(
            f"/api/chat/server/channels/{channel_id}/messages",
            json={**server_body, "user_id": "ext-1"},
            headers=tenant.headers,
        )
        seen.append(("POST", "/api/chat/server/channels/{channel_id}/messages", response.status_code))

    assert {status for *_, status in seen} == {200, 201}, seen
    undocumented = [(m, p, s) for m, p, s in seen if str(s) not in _documented(app, m, p)]
    assert undocumented == []
