"""GET /api/panel/servers: the caller's servers with their keys on each, in a fixed number of statements
whatever the number of servers (one grants query, the servers, their allocations), paged by name."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event

from pentad.apps.panel.actions.context import PanelContext
from pentad.apps.panel.actions.servers import LIST_LIMIT_MAX, list_servers
from pentad.apps.panel.permissions import SERVER_RESOURCE
from pentad.core import audit
from pentad.core.auth.grants import grant_role
from pentad.core.auth.principal import Principal
from pentad.core.platform import Platform
from tests.apps.panel.support import make_allocations, make_node, snapshot, template_id
from tests.factories import Account, account


async def _servers(
    client: httpx.AsyncClient, admin: Account, owner: Account, count: int
) -> list[dict[str, Any]]:
    node = await make_node(client, admin, name=f"n-{uuid.uuid4().hex[:6]}")
    allocations = await make_allocations(client, admin, node["id"], f"9000-{9000 + count - 1}")
    generic = await template_id(client, admin, "generic")
    made = []
    for index, allocation in enumerate(allocations):
        body = {
            "name": f"srv-{index:02d}", "memory_mb": 64, "disk_mb": 64, "node_id": node["id"],
            "template_id": generic, "owner_id": owner.id, "allocation_id": allocation["id"],
        }  # fmt: skip
        response = await client.post("/api/panel/servers", json=body, headers=admin.headers)
        assert response.status_code == 201, response.text
        made.append(response.json())
    return made


@contextmanager
def statements(platform: Platform) -> Iterator[list[str]]:
    executed: list[str] = []
    sync = platform.database.engine.sync_engine

    def count(*args: object) -> None:
        executed.append(str(args[2]).split("\n", 1)[0])

    event.listen(sync, "before_cursor_execute", count)
    try:
        yield executed
    finally:
        event.remove(sync, "before_cursor_execute", count)


def _principal(who: Account, *permissions: str) -> Principal:
    return Principal(
        kind="user", id=who.user.id, label=who.user.email, roles=frozenset({"member"}),
        permissions=frozenset(permissions), via="api_key", credential_id=uuid.uuid4(),
    )  # fmt: skip


async def _list_statements(platform: Platform, principal: Principal) -> tuple[int, int]:
    async with platform.database.transaction(writes=False) as session:
        panel = PanelContext(session, platform, principal, audit.SYSTEM)
        with statements(platform) as executed:
            found = await list_servers(panel)
    return len(found), len(executed)


async def test_the_list_costs_the_same_statements_for_two_servers_or_eight(
    client: httpx.AsyncClient, platform: Platform, admin: Account
) -> None:
    few, many = await account(platform), await account(platform)
    await _servers(client, admin, few, 2)
    await _servers(client, admin, many, 8)
    few_principal, many_principal = _principal(few, "panel.use"), _principal(many, "panel.use")
    admin_principal = _principal(admin, "panel.use", "panel.admin")
    listed_few, cost_few = await _list_statements(platform, few_principal)
    listed_many, cost_many = await _list_statements(platform, many_principal)
    assert (listed_few, listed_many) == (2, 8)
    assert cost_few == cost_many <= 4  # (a transaction opening may count as one)
    listed_all, cost_all = await _list_statements(platform, admin_principal)
    assert listed_all == 10
    assert cost_all <= 3


async def test_a_subuser_sees_only_the_servers_shared_with_them_with_their_keys(
    client: httpx.AsyncClient, platform: Platform, admin: Account, member: Account
) -> None:
    made = await _servers(client, admin, member, 4)
    helper, stranger = await account(platform), await account(platform)
    async with platform.database.transaction() as session:
        for key in ("control.console", "file.read"):
            await grant_role(
                session, platform, helper.user.id, SERVER_RESOURCE, made[1]["id"], key, actor=audit.SYSTEM
            )
        await grant_role(
            session, platform, helper.user.id, SERVER_RESOURCE, made[3]["id"], "activity.read",
            actor=audit.SYSTEM,
        )  # fmt: skip
    listed = (await client.get("/api/panel/servers", headers=helper.headers)).json()
    assert [(s["id"], s["permissions"]) for s in listed] == [
        (made[1]["id"], ["control.console", "file.read"]),
        (made[3]["id"], ["activity.read"]),
    ]
    assert listed[0]["allocation"]["port"] == 9001
    owner = (await client.get("/api/panel/servers", headers=member.headers)).json()
    assert [s["name"] for s in owner] == ["srv-00", "srv-01", "srv-02", "srv-03"]
    assert (await client.get("/api/panel/servers", headers=stranger.headers)).json() == []
    other_node = await client.get(f"/api/panel/servers?node_id={uuid.uuid4()}", headers=member.headers)
    assert other_node.json() == []


async def test_the_list_is_paged_by_name_up_to_a_documented_maximum(
    client: httpx.AsyncClient, platform: Platform, admin: Account, member: Account
) -> None:
    await _servers(client, admin, member, 5)
    pages = []
    for offset in (0, 2, 4):
        response = await client.get(f"/api/panel/servers?limit=2&offset={offset}", headers=member.headers)
        assert response.status_code == 200
        pages.append([s["name"] for s in response.json()])
    assert pages == [["srv-00", "srv-01"], ["srv-02", "srv-03"], ["srv-04"]]
    before = await snapshot(platform)
    for query in (f"limit={LIST_LIMIT_MAX + 1}", "limit=0", "offset=-1", "limit=x"):
        response = await client.get(f"/api/panel/servers?{query}", headers=member.headers)
        assert response.status_code == 422, query
        assert response.headers["content-type"].startswith("application/problem+json")
    assert await snapshot(platform) == before
