"""Subusers and the activity log over the API: the owner shares a server with an existing account with a
set of keys, changes them, removes the subuser; nobody gives or takes keys they do not hold or changes
their own; every change lands in the server's activity log (who, what, when). The deny side of each route,
and a refused request changes nothing."""

from __future__ import annotations

from typing import Any

import httpx

from pentad.apps.panel.permissions import SERVER_KEYS
from pentad.core.platform import Platform
from tests.apps.panel.support import enrol, make_allocations, make_node, make_token, snapshot, template_id
from tests.factories import Account, account, bearer


async def _server(client: httpx.AsyncClient, admin: Account, owner: Account) -> dict[str, Any]:
    node = await make_node(client, admin)
    allocation = (await make_allocations(client, admin, node["id"], "9100"))[0]
    body = {
        "name": "Shared", "memory_mb": 64, "disk_mb": 64, "node_id": node["id"],
        "template_id": await template_id(client, admin, "generic"), "owner_id": owner.id,
        "allocation_id": allocation["id"],
    }  # fmt: skip
    response = await client.post("/api/panel/servers", json=body, headers=admin.headers)
    assert response.status_code == 201, response.text
    server: dict[str, Any] = response.json()
    return server


async def _add(
    client: httpx.AsyncClient, who: Account, server: dict[str, Any], email: str, *keys: str
) -> httpx.Response:
    return await client.post(
        f"/api/panel/servers/{server['id']}/users",
        json={"email": email, "permissions": list(keys)},
        headers=who.headers,
    )


async def test_the_owner_invites_edits_and_removes_a_subuser_and_the_activity_log_tells(
    client: httpx.AsyncClient, platform: Platform, admin: Account, member: Account
) -> None:
    server = await _server(client, admin, member)
    friend = await account(platform)
    base = f"/api/panel/servers/{server['id']}"
    added = await _add(client, member, server, friend.user.email.upper(), "control.console", "file.read")
    assert added.status_code == 201, added.text
    assert added.json()["permissions"] == ["control.console", "file.read"]
    seen = (await client.get(base, headers=friend.headers)).json()
    assert seen["permissions"] == ["control.console", "file.read"]
    listed = (await client.get(f"{base}/users", headers=member.headers)).json()
    assert [(u["email"], u["owner"], u["permissions"]) for u in listed] == [
        (member.user.email, True, sorted(SERVER_KEYS)),
        (friend.user.email, False, ["control.console", "file.read"]),
    ]
    changed = await client.put(
        f"{base}/users/{friend.id}",
        json={"permissions": ["file.read", "activity.read"]},
        headers=member.headers,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["permissions"] == ["activity.read", "file.read"]
    log = (await client.get(f"{base}/activity", headers=friend.headers)).json()
    actions = [entry["action"] for entry in log]
    update = next(entry for entry in log if entry["action"] == "panel.server.subuser_update")
    assert update["actor_label"] == member.user.email
    assert update["details"]["added"] == ["activity.read"]
    assert update["details"]["removed"] == ["control.console"]
    assert {"grant.create", "grant.delete"} <= set(actions)
    assert "panel.server.subuser_create" in actions
    assert "panel.server.create" in actions
    assert "ip_address" not in log[0]
    page = (await client.get(f"{base}/activity?limit=2", headers=friend.headers)).json()
    following = (
        await client.get(f"{base}/activity?limit=50&before={page[-1]['id']}", headers=friend.headers)
    ).json()
    assert [e["id"] for e in page + following] == [e["id"] for e in log]
    removed = await client.delete(f"{base}/users/{friend.id}", headers=member.headers)
    assert removed.status_code == 204
    assert (await client.get(base, headers=friend.headers)).status_code == 404
    assert (await client.get("/api/panel/servers", headers=friend.headers)).json() == []
    latest = (await client.get(f"{base}/activity?limit=3", headers=member.headers)).json()
    assert "panel.server.subuser_delete" in [entry["action"] for entry in latest]


async def test_a_subuser_cannot_escalate_or_grant_keys_they_do_not_hold(
    client: httpx.AsyncClient, platform: Platform, admin: Account, member: Account
) -> None:
    server = await _server(client, admin, member)
    manager, other, newcomer = await account(platform), await account(platform), await account(platform)
    base = f"/api/panel/servers/{server['id']}"
    assert (await _add(client, member, server, manager.user.email, "user.create", "user.update",
                       "user.read", "control.console")).status_code == 201  # fmt: skip
    assert (
        await _add(client, member, server, other.user.email, "file.read", "file.update")
    ).status_code == 201
    held, console = ["user.create", "user.update", "user.read", "control.console"], ["control.console"]
    before = await snapshot(platform)
    refusals: list[tuple[str, str, dict[str, Any] | None, int, str]] = [
        # a key the manager does not hold, given to a newcomer or to an existing subuser
        ("POST", "/users", {"email": newcomer.user.email, "permissions": ["control.console", "file.delete"]},
         403, "subuser_keys_not_held"),
        ("PUT", f"/users/{other.id}", {"permissions": ["file.read", "file.update", "backup.restore"]},
         403, "subuser_keys_not_held"),
        # taking a key the manager does not hold
        ("PUT", f"/users/{other.id}", {"permissions": ["file.read"]}, 403, "subuser_keys_not_held"),
        # its own keys, the owner's, removing anyone (no user.delete)
        ("PUT", f"/users/{manager.id}", {"permissions": [*held, "user.delete"]}, 403, "subuser_self"),
        ("PUT", f"/users/{member.id}", {"permissions": ["control.console"]}, 409, "server_owner"),
        ("DELETE", f"/users/{other.id}", None, 403, "server_permission"),
        ("GET", "/activity", None, 403, "server_permission"),
        # an existing subuser, the owner, nobody, a bad key, no key at all
        ("POST", "/users", {"email": other.user.email, "permissions": console}, 409, "subuser_exists"),
        ("POST", "/users", {"email": member.user.email, "permissions": console}, 409, "server_owner"),
        ("POST", "/users", {"email": "nobody@example.com", "permissions": ["control.console"]},
         404, "user_not_found"),
        ("POST", "/users", {"email": newcomer.user.email, "permissions": ["root"]}, 422, "validation_failed"),
        ("POST", "/users", {"email": newcomer.user.email, "permissions": []}, 422, "validation_failed"),
    ]  # fmt: skip
    for method, path, body, status, code in refusals:
        response = await client.request(method, base + path, json=body, headers=manager.headers)
        assert (response.status_code, response.json().get("code")) == (status, code), (method, path, body)
        assert response.headers["content-type"].startswith("application/problem+json")
    assert await snapshot(platform) == before
    # within what it holds, the manager shares on
    ok = await _add(client, manager, server, newcomer.user.email, "control.console")
    assert ok.status_code == 201, ok.text


async def test_subuser_and_activity_routes_deny_side(
    client: httpx.AsyncClient, platform: Platform, admin: Account, member: Account, stranger: Account
) -> None:
    server = await _server(client, admin, member)
    friend = await account(platform)
    assert (await _add(client, member, server, friend.user.email, "control.console")).status_code == 201
    _, credential = await enrol(platform, (await make_token(client, admin, node_name="node-x"))["token"])
    base = f"/api/panel/servers/{server['id']}"
    routes: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", f"{base}/users", None),
        ("POST", f"{base}/users", {"email": stranger.user.email, "permissions": ["control.console"]}),
        ("PUT", f"{base}/users/{friend.id}", {"permissions": ["file.read"]}),
        ("DELETE", f"{base}/users/{friend.id}", None),
        ("GET", f"{base}/activity", None),
    ]
    before = await snapshot(platform)
    for method, path, body in routes:
        response = await client.request(method, path, json=body, headers=stranger.headers)
        assert (response.status_code, response.json()["code"]) == (404, "server_not_found"), (method, path)
        response = await client.request(method, path, json=body, headers=friend.headers)
        assert (response.status_code, response.json()["code"]) in (
            (403, "server_permission"),
            (403, "subuser_self"),
        ), (method, path)
        assert (await client.request(method, path, json=body)).status_code == 401
        assert (await client.request(method, path, json=body, headers=bearer(credential))).status_code == 403
    assert await snapshot(platform) == before
    # admins hold every key on every server
    assert (await client.get(f"{base}/users", headers=admin.headers)).status_code == 200
    assert (await client.get(f"{base}/activity", headers=admin.headers)).status_code == 200
