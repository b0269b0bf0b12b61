"""Moving a server to another node, the API's side on every engine: who may, what is checked, and that a
refused request changes nothing; an accepted one holds the target allocation, marks the server
`transferring` and queues the job. (The move itself, with two real agents: test_multinode.py.)"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import delete, select, update

from pentad.apps.panel.models import PanelBackup, PanelServer
from pentad.core.jobs.models import Job
from pentad.core.platform import Platform
from tests.apps.panel.support import make_allocations, make_node, snapshot, template_id
from tests.factories import Account, account


async def _server(client: httpx.AsyncClient, admin: Account, owner: Account) -> dict[str, Any]:
    node = await make_node(client, admin, name="source")
    allocation = (await make_allocations(client, admin, node["id"], "9300"))[0]
    body = {
        "name": "Mover", "memory_mb": 512, "disk_mb": 1024, "node_id": node["id"], "owner_id": owner.id,
        "template_id": await template_id(client, admin, "generic"), "allocation_id": allocation["id"],
    }  # fmt: skip
    response = await client.post("/api/panel/servers", json=body, headers=admin.headers)
    assert response.status_code == 201, response.text
    server: dict[str, Any] = response.json()
    return server


async def _set(platform: Platform, server_id: str, **fields: Any) -> None:
    async with platform.database.transaction() as session:
        await session.execute(
            update(PanelServer).where(PanelServer.id == uuid.UUID(server_id)).values(**fields)
        )


async def test_a_transfer_is_checked_and_queued(
    client: httpx.AsyncClient, platform: Platform, admin: Account, member: Account, stranger: Account
) -> None:
    server = await _server(client, admin, member)
    target = await make_node(client, admin, name="target", memory_mb=1024)
    [free, taken] = await make_allocations(client, admin, target["id"], "9400", "9401")
    other = await make_node(client, admin, name="other")
    foreign = (await make_allocations(client, admin, other["id"], "9500"))[0]
    url = f"/api/panel/servers/{server['id']}/transfer"
    await _set(platform, server["id"], status="installing")

    before = await snapshot(platform)
    cases: list[tuple[Account | None, Any, int, str | None]] = [
        (None, {"node_id": target["id"]}, 401, None),
        (stranger, {"node_id": target["id"]}, 404, "server_not_found"),
        (member, {"node_id": target["id"]}, 403, None),  # the owner, not an admin
        (admin, {"node_id": "not-a-uuid"}, 422, None),
        (admin, {}, 422, None),
        (admin, {"node_id": str(uuid.uuid4())}, 409, "server_not_stopped"),  # still installing
    ]
    for who, body, status, code in cases:
        response = await client.post(url, json=body, headers=who.headers if who else {})
        assert response.status_code == status, (who, body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        if code:
            assert response.json()["code"] == code
    assert await snapshot(platform) == before
    await _set(platform, server["id"], status="installed")
    allocations_before = (await snapshot(platform))["panel_allocations"]
    await _set(platform, server["id"], state="running")
    running = await client.post(url, json={"node_id": target["id"]}, headers=admin.headers)
    assert running.json()["code"] == "server_not_stopped"
    await _set(platform, server["id"], state="offline")
    for body, status, code in (
        ({"node_id": server["node_id"]}, 409, "transfer_same_node"),
        ({"node_id": str(uuid.uuid4())}, 404, "node_not_found"),
        ({"node_id": target["id"], "allocation_id": foreign["id"]}, 404, "allocation_not_found"),
    ):
        response = await client.post(url, json=body, headers=admin.headers)
        assert (response.status_code, response.json()["code"]) == (status, code), response.text
    squeezed = await client.patch(
        f"/api/panel/nodes/{target['id']}", json={"memory_mb": 256}, headers=admin.headers
    )
    assert squeezed.status_code == 200, squeezed.text
    short = await client.post(url, json={"node_id": target["id"]}, headers=admin.headers)
    assert (short.status_code, short.json()["code"]) == (409, "insufficient_capacity")
    await client.patch(f"/api/panel/nodes/{target['id']}", json={"memory_mb": 1024}, headers=admin.headers)
    blocker = await _server_on(client, admin, member, target["id"], taken["id"])
    held = await client.post(
        url, json={"node_id": target["id"], "allocation_id": taken["id"]}, headers=admin.headers
    )
    assert (held.status_code, held.json()["code"]) == (409, "allocation_taken")
    await client.delete(f"/api/panel/servers/{blocker}", headers=admin.headers)
    assert (await snapshot(platform))["panel_allocations"] == allocations_before  # nothing held
    async with platform.database.transaction(writes=False) as session:
        assert not (await session.scalars(select(Job).where(Job.name == "panel.server_transfer"))).all()

    async with platform.database.transaction() as session:
        backup = PanelBackup(server_id=uuid.UUID(server["id"]), name="running", status="running", ignore=[])
        session.add(backup)
    busy = await client.post(url, json={"node_id": target["id"]}, headers=admin.headers)
    assert (busy.status_code, busy.json()["code"]) == (409, "backup_in_progress")
    async with platform.database.transaction() as session:
        await session.execute(delete(PanelBackup))

    accepted = await client.post(url, json={"node_id": target["id"]}, headers=admin.headers)
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    assert body["status"] == "transferring"
    assert body["to_node_id"] == target["id"]
    assert body["allocation"] == f"{free['ip']}:{free['port']}"
    read = (await client.get(f"/api/panel/servers/{server['id']}", headers=admin.headers)).json()
    assert read["status"] == "transferring"
    assert read["node_id"] == server["node_id"]  # it moves once its files have
    assert free["id"] in {item["id"] for item in read["allocations"]}  # held meanwhile
    started = await client.post(
        f"/api/panel/servers/{server['id']}/power", json={"action": "start"}, headers=admin.headers
    )
    assert started.status_code == 409
    again = await client.post(url, json={"node_id": target["id"]}, headers=admin.headers)
    assert again.json()["code"] == "server_not_stopped"
    base = f"/api/panel/servers/{server['id']}"
    for method, path, body in (
        ("GET", "/files", None),
        ("POST", "/files/folder", {"path": "new"}),
        ("POST", "/backups", {"name": "during"}),
    ):
        refused = await client.request(method, base + path, json=body, headers=admin.headers)
        assert (refused.status_code, refused.json()["code"]) == (409, "server_transferring"), path
    async with platform.database.transaction(writes=False) as session:
        jobs = (await session.scalars(select(Job).where(Job.name == "panel.server_transfer"))).all()
    assert [job.payload["allocation_id"] for job in jobs] == [free["id"]]


async def _server_on(
    client: httpx.AsyncClient, admin: Account, owner: Account, node_id: str, allocation_id: str
) -> str:
    body = {
        "name": "Blocker", "memory_mb": 64, "disk_mb": 64, "node_id": node_id, "owner_id": owner.id,
        "template_id": await template_id(client, admin, "generic"), "allocation_id": allocation_id,
    }  # fmt: skip
    response = await client.post("/api/panel/servers", json=body, headers=admin.headers)
    assert response.status_code == 201, response.text
    server_id: str = response.json()["id"]
    return server_id


async def test_a_subuser_cannot_move_a_server(
    client: httpx.AsyncClient, platform: Platform, admin: Account, member: Account
) -> None:
    server = await _server(client, admin, admin)
    target = await make_node(client, admin, name="target")
    await make_allocations(client, admin, target["id"], "9600")
    helper = await account(platform)
    response = await client.post(
        f"/api/panel/servers/{server['id']}/users",
        json={"email": helper.user.email, "permissions": ["control.start", "settings.reinstall"]},
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    before = await snapshot(platform)
    refused = await client.post(
        f"/api/panel/servers/{server['id']}/transfer", json={"node_id": target["id"]}, headers=helper.headers
    )
    assert refused.status_code == 403
    assert await snapshot(platform) == before
