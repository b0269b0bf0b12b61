"""Servers over the API: created from a template on a node (capacity, allocations and variable rules
checked; values encrypted at rest), seen and changed according to the caller's keys on the server,
deleted by their owner; the deny side of every server route, and refusals change nothing."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select

from pentad.apps.panel.models import PanelServerVariable
from pentad.apps.panel.permissions import OWNER_ROLE, SERVER_KEYS, SERVER_RESOURCE
from pentad.core import audit
from pentad.core.auth.grants import grant_role
from pentad.core.platform import Platform
from tests.apps.panel.support import (
    enrol,
    make_allocations,
    make_node,
    make_token,
    rows,
    snapshot,
    template_id,
)
from tests.factories import Account, account, bearer

ALL_KEYS = sorted(SERVER_KEYS)


async def _setup(client: httpx.AsyncClient, admin: Account, **node: Any) -> tuple[dict[str, Any], list[str]]:
    made = await make_node(client, admin, **node)
    allocations = await make_allocations(client, admin, made["id"], "8303-8306")
    return made, [a["id"] for a in allocations]


async def _create(client: httpx.AsyncClient, admin: Account, **fields: Any) -> httpx.Response:
    body = {"name": "Tee", "memory_mb": 512, "disk_mb": 1024, **fields}
    return await client.post("/api/panel/servers", json=body, headers=admin.headers)


async def _server(
    client: httpx.AsyncClient, admin: Account, owner: Account, **fields: Any
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    node, allocations = await _setup(client, admin)
    teeworlds = await template_id(client, admin, "teeworlds")
    response = await _create(
        client, admin, node_id=node["id"], template_id=teeworlds, owner_id=owner.id,
        allocation_id=allocations[0], **fields,
    )  # fmt: skip
    assert response.status_code == 201, response.text
    return response.json(), node, allocations


async def test_an_admin_creates_a_server_for_a_member_who_then_owns_it(
    client: httpx.AsyncClient, platform: Platform, admin: Account, member: Account
) -> None:
    server, node, allocations = await _server(
        client, admin, member, variables={"SERVER_NAME": "Pentad arena", "ECON_PASSWORD": "s3cret-econ-pass"}
    )
    assert (server["status"], server["state"]) == ("installing", "offline")
    assert server["allocation"]["id"] == allocations[0]
    assert server["allocation"]["port"] == 8303
    assert len(server["short_id"]) == 8
    assert server["owner_id"] == member.id

    mine = await client.get(f"/api/panel/servers/{server['id']}", headers=member.headers)
    assert mine.status_code == 200
    assert mine.json()["permissions"] == ALL_KEYS
    listed = (await client.get("/api/panel/servers", headers=member.headers)).json()
    assert [s["id"] for s in listed] == [server["id"]]
    by_node = (await client.get(f"/api/panel/servers?node_id={node['id']}", headers=admin.headers)).json()
    assert [s["id"] for s in by_node] == [server["id"]]

    async with platform.database.transaction(writes=False) as session:
        stored = (await session.scalars(select(PanelServerVariable))).all()
    assert stored
    assert all("s3cret-econ-pass" not in row.value_enc for row in stored)
    assert "s3cret-econ-pass" not in repr(await rows(platform, "audit_events"))
    grants = [g for g in await rows(platform, "grants") if g["resource_type"] == SERVER_RESOURCE]
    assert [(str(g["user_id"]), g["role"]) for g in grants] == [(str(member.user.id), OWNER_ROLE)]


async def test_the_node_s_first_free_allocation_is_taken_and_extras_are_held(
    client: httpx.AsyncClient, admin: Account
) -> None:
    node, allocations = await _setup(client, admin)
    generic = await template_id(client, admin, "generic")
    first = await _create(
        client, admin, node_id=node["id"], template_id=generic, extra_allocation_ids=[allocations[3]]
    )
    assert first.status_code == 201, first.text
    assert first.json()["allocation"]["port"] == 8303
    assert sorted(a["port"] for a in first.json()["allocations"]) == [8303, 8306]
    second = await _create(client, admin, node_id=node["id"], template_id=generic)
    assert second.json()["allocation"]["port"] == 8304
    taken = await _create(
        client, admin, node_id=node["id"], template_id=generic, allocation_id=allocations[3]
    )
    assert (taken.status_code, taken.json()["code"]) == (409, "allocation_taken")
    other, other_allocations = await _setup(client, admin, name="node-b")
    wrong = await _create(
        client, admin, node_id=node["id"], template_id=generic, allocation_id=other_allocations[0]
    )
    assert (wrong.status_code, wrong.json()["code"]) == (404, "allocation_not_found")
    del other
    await _create(client, admin, node_id=node["id"], template_id=generic)
    none_left = await _create(client, admin, node_id=node["id"], template_id=generic)
    assert (none_left.status_code, none_left.json()["code"]) == (409, "allocation_taken")


async def test_variables_are_checked_against_the_egg_rules_and_a_refusal_changes_nothing(
    client: httpx.AsyncClient, platform: Platform, admin: Account
) -> None:
    node, allocations = await _setup(client, admin)
    teeworlds = await template_id(client, admin, "teeworlds")
    before = await snapshot(platform)
    response = await _create(
        client, admin, node_id=node["id"], template_id=teeworlds,
        variables={"MAX_CLIENTS": "99", "GAMETYPE": "race", "MAP": "dm1; rm -rf", "NOPE": "1"},
    )  # fmt: skip
    assert response.status_code == 422
    assert response.json()["code"] == "variables_invalid"
    by_name = {error["loc"][-1]: error["msg"] for error in response.json()["errors"]}
    assert by_name == {
        "NOPE": "NOPE: the template has no such variable",
        "MAX_CLIENTS": "MAX_CLIENTS must be between 1 and 16",
        "GAMETYPE": "GAMETYPE must be one of: dm, tdm, ctf, lms, lts",
        "MAP": "MAP may contain letters, digits, `-` and `_` only",
    }
    bad_name = await _create(
        client, admin, node_id=node["id"], template_id=teeworlds, variables={"bad name": "x"}
    )
    assert bad_name.status_code == 422
    assert await snapshot(platform) == before
    del allocations


async def test_the_node_s_capacity_and_draining_are_respected(
    client: httpx.AsyncClient, platform: Platform, admin: Account
) -> None:
    node, _ = await _setup(client, admin, memory_mb=1024, overalloc_percent=50)
    generic = await template_id(client, admin, "generic")
    ok = await _create(client, admin, node_id=node["id"], template_id=generic, memory_mb=1024)
    assert ok.status_code == 201, ok.text
    before = await snapshot(platform)
    over = await _create(client, admin, node_id=node["id"], template_id=generic, memory_mb=1024)
    assert (over.status_code, over.json()["code"]) == (409, "insufficient_capacity")
    assert "512 MiB of memory left" in over.json()["detail"]
    assert await snapshot(platform) == before
    await client.patch(
        f"/api/panel/nodes/{node['id']}", json={"overalloc_percent": -1}, headers=admin.headers
    )
    assert (
        await _create(client, admin, node_id=node["id"], template_id=generic, memory_mb=4096)
    ).status_code == 201
    await client.patch(f"/api/panel/nodes/{node['id']}", json={"draining": True}, headers=admin.headers)
    drained = await _create(client, admin, node_id=node["id"], template_id=generic)
    assert (drained.status_code, drained.json()["code"]) == (409, "insufficient_capacity")
    missing = await _create(client, admin, node_id=str(uuid.uuid4()), template_id=generic)
    assert (missing.status_code, missing.json()["code"]) == (404, "node_not_found")
    deleting = await client.delete(f"/api/panel/nodes/{node['id']}", headers=admin.headers)
    assert (deleting.status_code, deleting.json()["code"]) == (409, "node_in_use")
    template_delete = await client.delete(f"/api/panel/templates/{generic}", headers=admin.headers)
    assert (template_delete.status_code, template_delete.json()["code"]) == (409, "template_in_use")


async def test_the_owner_edits_startup_variables_within_what_the_egg_allows(
    client: httpx.AsyncClient, admin: Account, member: Account
) -> None:
    server, _, _ = await _server(client, admin, member, variables={"ECON_PASSWORD": "hidden-pass-123"})
    url = f"/api/panel/servers/{server['id']}/startup"
    shown = (await client.get(url, headers=member.headers)).json()
    assert shown["startup"].startswith("/usr/games/teeworlds-server")
    names = {v["env_name"]: v for v in shown["variables"]}
    assert "ECON_PASSWORD" not in names
    assert (names["ECON_PORT"]["editable"], names["MAX_CLIENTS"]["editable"]) == (False, True)

    refused = await client.patch(url, json={"variables": {"ECON_PORT": "9000"}}, headers=member.headers)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["type"] == "not_editable"
    bad = await client.patch(url, json={"variables": {"MAX_CLIENTS": "0"}}, headers=member.headers)
    assert bad.status_code == 422
    done = await client.patch(url, json={"variables": {"MAX_CLIENTS": "12"}}, headers=member.headers)
    assert done.status_code == 200, done.text
    assert {v["env_name"]: v["value"] for v in done.json()["variables"]}["MAX_CLIENTS"] == "12"

    seen = {
        v["env_name"]: v["value"] for v in (await client.get(url, headers=admin.headers)).json()["variables"]
    }
    assert (seen["ECON_PASSWORD"], seen["MAX_CLIENTS"]) == ("hidden-pass-123", "12")
    admin_set = await client.patch(url, json={"variables": {"ECON_PORT": "9000"}}, headers=admin.headers)
    assert admin_set.status_code == 200


async def test_only_admins_change_limits_and_owners_rename(
    client: httpx.AsyncClient, admin: Account, member: Account
) -> None:
    server, _, _ = await _server(client, admin, member)
    url = f"/api/panel/servers/{server['id']}"
    renamed = await client.patch(
        url, json={"name": "Renamed", "restart_on_crash": False}, headers=member.headers
    )
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["name"], renamed.json()["restart_on_crash"]) == ("Renamed", False)
    limits = await client.patch(url, json={"memory_mb": 2048}, headers=member.headers)
    assert (limits.status_code, limits.json()["code"]) == (403, "panel_admin_required")
    grown = await client.patch(url, json={"memory_mb": 2048}, headers=admin.headers)
    assert grown.json()["memory_mb"] == 2048


async def test_a_subuser_sees_the_server_with_its_keys_only(
    client: httpx.AsyncClient, platform: Platform, admin: Account, member: Account
) -> None:
    server, _, _ = await _server(client, admin, member)
    helper = await account(platform)
    async with platform.database.transaction() as session:
        await grant_role(
            session,
            platform,
            helper.user.id,
            SERVER_RESOURCE,
            server["id"],
            "control.console",
            actor=audit.SYSTEM,
        )
    seen = await client.get(f"/api/panel/servers/{server['id']}", headers=helper.headers)
    assert seen.json()["permissions"] == ["control.console"]
    assert [s["id"] for s in (await client.get("/api/panel/servers", headers=helper.headers)).json()] == [
        server["id"]
    ]
    before = await snapshot(platform)
    for method, path, body in (
        ("GET", "/startup", None),
        ("PATCH", "/startup", {"variables": {"MAX_CLIENTS": "4"}}),
        ("PATCH", "", {"name": "mine now"}),
        ("DELETE", "", None),
    ):
        response = await client.request(
            method, f"/api/panel/servers/{server['id']}{path}", json=body, headers=helper.headers
        )
        assert response.status_code == 403, (method, path, response.text)
    assert await snapshot(platform) == before


async def test_the_owner_deletes_a_server_and_its_allocations_and_roles_go(
    client: httpx.AsyncClient, platform: Platform, admin: Account, member: Account
) -> None:
    server, node, _ = await _server(client, admin, member)
    response = await client.delete(f"/api/panel/servers/{server['id']}", headers=member.headers)
    assert response.status_code == 204
    assert (await client.get(f"/api/panel/servers/{server['id']}", headers=admin.headers)).status_code == 404
    free = (
        await client.get(f"/api/panel/nodes/{node['id']}/allocations?free=false", headers=admin.headers)
    ).json()
    assert free == []
    assert [g for g in await rows(platform, "grants") if g["resource_type"] == SERVER_RESOURCE] == []
    assert await rows(platform, "panel_server_variables") == []


async def test_server_routes_deny_side(
    client: httpx.AsyncClient, platform: Platform, admin: Account, member: Account, stranger: Account
) -> None:
    server, node, _ = await _server(client, admin, member)
    _, credential = await enrol(platform, (await make_token(client, admin, node_name="node-x"))["token"])
    generic = await template_id(client, admin, "generic")
    create = {"name": "x", "memory_mb": 512, "disk_mb": 512, "node_id": node["id"], "template_id": generic}
    before = await snapshot(platform)
    refused = await client.post("/api/panel/servers", json=create, headers=member.headers)
    assert refused.status_code == 403
    one = f"/api/panel/servers/{server['id']}"
    routes: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", one, None),
        ("PATCH", one, {"name": "taken"}),
        ("DELETE", one, None),
        ("GET", f"{one}/startup", None),
        ("PATCH", f"{one}/startup", {"variables": {"MAX_CLIENTS": "4"}}),
    ]
    for method, path, body in routes:
        response = await client.request(method, path, json=body, headers=stranger.headers)
        assert (response.status_code, response.json()["code"]) == (404, "server_not_found"), (method, path)
    for method, path, body in [
        *routes,
        ("GET", "/api/panel/servers", None),
        ("POST", "/api/panel/servers", create),
    ]:
        assert (await client.request(method, path, json=body)).status_code == 401
        assert (await client.request(method, path, json=body, headers=bearer(credential))).status_code == 403
    assert (await client.get("/api/panel/servers", headers=stranger.headers)).json() == []
    assert await snapshot(platform) == before


async def test_the_agent_link_reads_a_server_s_whole_environment_decrypted(
    client: httpx.AsyncClient, platform: Platform, admin: Account, member: Account
) -> None:
    from pentad.apps.panel import repository
    from pentad.apps.panel.actions.servers import server_environment

    server, _, _ = await _server(client, admin, member, variables={"ECON_PASSWORD": "econ-pass-42"})
    async with platform.database.transaction(writes=False) as session:
        row = await repository.get_server(session, uuid.UUID(server["id"]))
        assert row is not None
        environment = await server_environment(platform, session, row)
    assert environment == {
        "SERVER_NAME": "Pentad Teeworlds", "MAX_CLIENTS": "8", "GAMETYPE": "dm", "MAP": "dm1",
        "ECON_PORT": "8304", "ECON_PASSWORD": "econ-pass-42",
    }  # fmt: skip


async def test_an_api_key_scoped_without_server_permissions_sees_no_server(
    client: httpx.AsyncClient, platform: Platform, admin: Account, member: Account
) -> None:
    """Scopes narrow what a key may do: one naming only `panel.use` keeps none of the owner's server keys
    (the core lets a key name only permissions its user holds globally, so server keys need `*`)."""
    from tests.factories import issue_api_key

    server, _, _ = await _server(client, admin, member)
    blind = bearer(await issue_api_key(platform, member.user, scopes=["panel.use"]))
    assert (await client.get(f"/api/panel/servers/{server['id']}", headers=blind)).status_code == 404
    assert (await client.get("/api/panel/servers", headers=blind)).json() == []
    full = await client.get(f"/api/panel/servers/{server['id']}", headers=member.headers)
    assert full.json()["permissions"] == ALL_KEYS
