"""Helpers of the streams tests: accounts with API keys, cameras made over the API, and a snapshot of the
streams tables (to show that a refused request changed nothing)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select

from pentad.core.auth.models import User
from pentad.core.db.base import Base
from pentad.core.platform import Platform
from tests.factories import bearer, create_admin, create_user, issue_api_key


@dataclass
class Account:
    user: User
    headers: dict[str, str]

    @property
    def id(self) -> str:
        return str(self.user.id)

    @property
    def email(self) -> str:
        return self.user.email


async def account(
    platform: Platform, *, admin: bool = False, roles: tuple[str, ...] = ("member",)
) -> Account:
    user = await (create_admin(platform) if admin else create_user(platform, roles=roles))
    return Account(user, bearer(await issue_api_key(platform, user)))


async def make_camera(client: httpx.AsyncClient, owner: Account, **fields: Any) -> dict[str, Any]:
    body = {"name": "Front door", **fields}
    response = await client.post("/api/streams/cameras", json=body, headers=owner.headers)
    assert response.status_code == 201, response.text
    camera: dict[str, Any] = response.json()
    return camera


async def share(client: httpx.AsyncClient, owner: Account, camera_id: str, who: Account, role: str) -> None:
    response = await client.post(
        f"/api/streams/cameras/{camera_id}/grants",
        json={"email": who.email, "role": role},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text


async def make_key(client: httpx.AsyncClient, owner: Account, camera_id: str) -> dict[str, Any]:
    response = await client.post(
        f"/api/streams/cameras/{camera_id}/keys", json={"name": "obs"}, headers=owner.headers
    )
    assert response.status_code == 201, response.text
    key: dict[str, Any] = response.json()
    return key


SNAPSHOT_TABLES = sorted(
    name for name in Base.metadata.tables if name.startswith("streams_") or name in ("audit_events", "grants")
)


async def snapshot(platform: Platform) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    async with platform.database.transaction(writes=False) as session:
        for name in SNAPSHOT_TABLES:
            rows = (await session.execute(select(Base.metadata.tables[name]))).all()
            found[name] = sorted(repr(tuple(row)) for row in rows)
    return found


async def rows(platform: Platform, table: str) -> list[dict[str, Any]]:
    async with platform.database.transaction(writes=False) as session:
        result = await session.execute(select(Base.metadata.tables[table]))
        return [dict(row._mapping) for row in result]
