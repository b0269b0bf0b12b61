"""Helpers of the panel tests: accounts with API keys, nodes, enrolled agents, templates and servers made
over the API, and a snapshot of the panel tables (to show that a refused request changed nothing)."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from pentad.core.db.base import Base
from pentad.core.platform import Platform
from tests.factories import Account

SNAPSHOT_TABLES = sorted(
    name for name in Base.metadata.tables if name.startswith("panel_") or name in ("audit_events", "grants")
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


async def make_node(client: httpx.AsyncClient, admin: Account, **fields: Any) -> dict[str, Any]:
    body = {"name": "node-a", "memory_mb": 8192, "disk_mb": 102_400, "cpu_percent": 400, **fields}
    response = await client.post("/api/panel/nodes", json=body, headers=admin.headers)
    assert response.status_code == 201, response.text
    node: dict[str, Any] = response.json()
    return node


async def make_token(client: httpx.AsyncClient, admin: Account, **body: Any) -> dict[str, Any]:
    response = await client.post(
        "/api/panel/enrolment-tokens", json=body or {"node_name": "node-e"}, headers=admin.headers
    )
    assert response.status_code == 201, response.text
    token: dict[str, Any] = response.json()
    return token


async def enrol(platform: Platform, raw_token: str, facts: dict[str, Any] | None = None) -> tuple[str, str]:
    """What the agent link's enrolment route does: the node's id and its raw `pnd_…` credential."""
    from pentad.apps.panel.actions.nodes import enrol_node

    async with platform.database.transaction() as session:
        node, credential = await enrol_node(session, raw_token, facts or {}, platform=platform)
        return str(node.id), credential


async def make_allocations(
    client: httpx.AsyncClient, admin: Account, node_id: str, *ports: str, ip: str = "0.0.0.0"
) -> list[dict[str, Any]]:
    response = await client.post(
        f"/api/panel/nodes/{node_id}/allocations",
        json={"ip": ip, "ports": list(ports)},
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    found: list[dict[str, Any]] = response.json()
    return found


async def template_id(client: httpx.AsyncClient, who: Account, slug: str) -> str:
    response = await client.get("/api/panel/templates", headers=who.headers)
    assert response.status_code == 200, response.text
    return next(t["id"] for t in response.json() if t["slug"] == slug)
