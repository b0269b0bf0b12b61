"""The file manager's and backups' rules that hold before any agent is asked, on every database engine:
paths naming something outside the server's folder are refused by the panel itself (400, even with the
node offline), a server whose node is offline answers 409 `node_offline` and records nothing, backups are
one at a time and a pending one cannot be deleted, the deny side (403 without the key, 404 for a stranger),
and a refused request changes nothing."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from pentad.core.platform import Platform
from tests.apps.panel.link_support import grant, make_server
from tests.apps.panel.support import snapshot
from tests.factories import Account


async def _server(platform: Platform, client: httpx.AsyncClient, admin: Account, owner: Account) -> str:
    response = await client.post(
        "/api/panel/nodes",
        json={"name": f"n-{uuid.uuid4().hex[:6]}", "memory_mb": 8192, "disk_mb": 102_400},
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    server = await make_server(platform, response.json()["id"], owner.user)
    return str(server.id)


async def test_paths_out_are_refused_by_the_panel_and_an_offline_node_answers_409(
    client: httpx.AsyncClient, platform: Platform, admin: Account, member: Account
) -> None:
    server_id = await _server(platform, client, admin, member)
    base = f"/api/panel/servers/{server_id}/files"
    before = await snapshot(platform)
    refused: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "", {"params": {"path": "../other-server"}}),
        ("GET", "/content", {"params": {"path": "/etc/shadow"}}),
        ("GET", "/download", {"params": {"path": "a/../../b"}}),
        ("POST", "/upload", {"params": {"path": "..\\x"}, "content": b"x"}),
        ("PUT", "/content", {"params": {"path": "./../x"}, "content": b"x"}),
        ("POST", "/rename", {"json": {"from": "a", "to": "../../a"}}),
        ("POST", "/delete", {"json": {"paths": ["."]}}),
        ("POST", "/folder", {"json": {"path": "/abs"}}),
        ("POST", "/archive", {"json": {"names": ["../x"]}}),
        ("POST", "/extract", {"json": {"path": "a.zip", "folder": "../.."}}),
    ]
    for method, tail, options in refused:
        response = await client.request(method, base + tail, headers=member.headers, **options)
        assert response.status_code == 400, (method, tail, response.text)
        assert response.json()["code"] == "path_refused"

    offline: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "", {}),
        ("GET", "/content", {"params": {"path": "server.cfg"}}),
        ("POST", "/upload", {"params": {"path": "new.txt"}, "content": b"x"}),
        ("POST", "/folder", {"json": {"path": "made"}}),
    ]
    for method, tail, options in offline:
        response = await client.request(method, base + tail, headers=member.headers, **options)
        assert response.status_code == 409, (method, tail, response.text)
        assert response.json()["code"] == "node_offline"
    assert await snapshot(platform) == before


async def test_file_and_backup_routes_deny_side(
    client: httpx.AsyncClient, platform: Platform, admin: Account, member: Account, stranger: Account
) -> None:
    server_id = await _server(platform, client, admin, admin)
    await grant(platform, member.user, uuid.UUID(server_id), "websocket.connect")
    base = f"/api/panel/servers/{server_id}"
    before = await snapshot(platform)
    routes: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/files", {}),
        ("GET", "/files/content", {"params": {"path": "a"}}),
        ("GET", "/files/download", {"params": {"path": "a"}}),
        ("PUT", "/files/content", {"params": {"path": "a"}, "content": b"x"}),
        ("POST", "/files/upload", {"params": {"path": "a"}, "content": b"x"}),
        ("POST", "/files/rename", {"json": {"from": "a", "to": "b"}}),
        ("POST", "/files/delete", {"json": {"paths": ["a"]}}),
        ("POST", "/files/folder", {"json": {"path": "a"}}),
        ("POST", "/files/archive", {"json": {}}),
        ("POST", "/files/extract", {"json": {"path": "a.zip"}}),
        ("GET", "/backups", {}),
        ("POST", "/backups", {"json": {}}),
        ("GET", f"/backups/{uuid.uuid4()}", {}),
        ("DELETE", f"/backups/{uuid.uuid4()}", {}),
        ("GET", f"/backups/{uuid.uuid4()}/download", {}),
        ("POST", f"/backups/{uuid.uuid4()}/restore", {}),
        ("POST", f"/backups/{uuid.uuid4()}/lock", {"json": {"locked": True}}),
    ]
    for method, tail, options in routes:
        response = await client.request(method, base + tail, headers=member.headers, **options)
        assert response.status_code == 403, (method, tail, response.text)  # a role, not this key
        response = await client.request(method, base + tail, headers=stranger.headers, **options)
        assert response.status_code == 404, (method, tail, response.text)
        response = await client.request(method, base + tail, **options)
        assert response.status_code == 401, (method, tail, response.text)
    assert await snapshot(platform) == before


async def test_backups_are_one_at_a_time(
    client: httpx.AsyncClient, platform: Platform, admin: Account, member: Account
) -> None:
    server_id = await _server(platform, client, admin, member)
    base = f"/api/panel/servers/{server_id}/backups"
    response = await client.post(base, json={"name": "first", "ignore": ["*.log"]}, headers=member.headers)
    assert response.status_code == 202, response.text
    backup = response.json()
    assert (backup["name"], backup["status"], backup["ignore"]) == ("first", "pending", ["*.log"])
    before = await snapshot(platform)
    response = await client.post(base, json={}, headers=member.headers)
    assert response.status_code == 409
    assert response.json()["code"] == "backup_in_progress"
    response = await client.delete(f"{base}/{backup['id']}", headers=member.headers)
    assert response.status_code == 409
    response = await client.get(f"{base}/{backup['id']}/download", headers=member.headers)
    assert response.status_code == 409
    assert response.json()["code"] == "backup_not_ready"
    response = await client.post(f"{base}/{backup['id']}/restore", headers=member.headers)
    assert response.status_code == 409
    assert await snapshot(platform) == before
    response = await client.get(base, headers=member.headers)
    assert [item["id"] for item in response.json()] == [backup["id"]]
