"""The file manager and backups through the panel's API and a real `pentad agent` process: every verb end
to end, escapes refused (traversal, absolute paths, symlinks pointing out, archive entries with `..` or
links), the disk limit enforced at write time with nothing left behind; backups made on the node, stored
in core storage, verified, downloaded, restored (checksum and content compared), pruned past the
retention count, a tampered backup refused at restore; the audit log, and the deny side (a subuser
without the key gets 403, a stranger 404, and a refused request changes nothing).

Runs once (its own SQLite file: the panel and the agent are separate processes' worth of work, not a
database check)."""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import socket
import tarfile
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from websockets.asyncio.client import connect

from pentad.apps.panel import repository
from pentad.core.audit import AuditEvent
from pentad.panel_wire import archives
from tests.apps.panel.agent_process import AgentStack, agent_stack
from tests.apps.panel.link_support import eventually, grant, server_row
from tests.apps.panel.support import snapshot
from tests.apps.panel.test_games import SHELL_EGG
from tests.core.realtime.conftest import Peer
from tests.factories import Account, account

MiB = 1024 * 1024
RETENTION = 2


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[AgentStack]:
    async with agent_stack(backup_retention=RETENTION) as made:
        yield made


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def create_server(stack: AgentStack, *, disk_mb: int = 1024, template_slug: str = "generic") -> str:
    port = free_tcp_port()
    response = await stack.http.post(
        f"/api/panel/nodes/{stack.node_id}/allocations",
        json={"ip": "127.0.0.1", "ports": [str(port)]},
        headers=stack.headers,
    )
    assert response.status_code == 201, response.text
    allocation = response.json()[0]["id"]
    templates = (await stack.http.get("/api/panel/templates", headers=stack.headers)).json()
    template = next(item for item in templates if item["slug"] == template_slug)
    response = await stack.http.post(
        "/api/panel/servers",
        json={
            "name": f"files-{secrets.token_hex(3)}",
            "node_id": stack.node_id,
            "template_id": template["id"],
            "allocation_id": allocation,
            "memory_mb": 256,
            "disk_mb": disk_mb,
        },
        headers=stack.headers,
    )
    assert response.status_code == 201, response.text
    server_id: str = response.json()["id"]
    return server_id


async def changeable(stack: AgentStack) -> dict[str, list[str]]:
    """The panel's tables a request could change (not the nodes: heartbeats move their last_seen_at)."""
    tables = await snapshot(stack.panel.platform)
    tables.pop("panel_nodes")
    return tables


def url(server_id: str, tail: str = "") -> str:
    return f"/api/panel/servers/{server_id}/files{tail}"


async def upload(
    stack: AgentStack, server_id: str, path: str, data: bytes, headers: dict[str, str] | None = None
) -> Any:
    return await stack.http.post(
        url(server_id, "/upload"), params={"path": path}, content=data, headers=headers or stack.headers
    )


async def audit_actions(stack: AgentStack, server_id: str) -> list[str]:
    async with stack.panel.platform.database.transaction(writes=False) as session:
        rows = await session.execute(
            select(AuditEvent.action).where(AuditEvent.resource_id == server_id).order_by(AuditEvent.id)
        )
        return [action for (action,) in rows]


def tarball(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tarred:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
            tarred.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


async def test_every_verb_end_to_end(stack: AgentStack) -> None:
    server_id = await create_server(stack)
    big = os.urandom(2 * MiB + 12345)  # several chunks over the link
    response = await upload(stack, server_id, "maps/big.bin", big)
    assert response.status_code == 201, response.text
    assert response.json() == {"path": "maps/big.bin", "size": len(big)}
    assert (stack.server_folder(server_id) / "maps" / "big.bin").read_bytes() == big

    response = await stack.http.get(url(server_id), params={"path": "maps"}, headers=stack.headers)
    assert response.status_code == 200, response.text
    [listed] = response.json()["entries"]
    assert (listed["name"], listed["path"], listed["kind"], listed["size"]) == (
        "big.bin",
        "maps/big.bin",
        "file",
        len(big),
    )

    response = await stack.http.get(
        url(server_id, "/download"), params={"path": "maps/big.bin"}, headers=stack.headers
    )
    assert response.status_code == 200, response.text
    assert response.content == big
    assert "big.bin" in response.headers["content-disposition"]

    response = await stack.http.put(
        url(server_id, "/content"), params={"path": "server.cfg"}, content=b"port=1\n", headers=stack.headers
    )
    assert response.status_code == 200, response.text
    response = await stack.http.get(
        url(server_id, "/content"), params={"path": "server.cfg"}, headers=stack.headers
    )
    assert response.status_code == 200, response.text
    assert response.content == b"port=1\n"

    response = await stack.http.post(url(server_id, "/folder"), json={"path": "old"}, headers=stack.headers)
    assert response.status_code == 204, response.text
    response = await stack.http.post(
        url(server_id, "/rename"), json={"from": "server.cfg", "to": "old/server.cfg"}, headers=stack.headers
    )
    assert response.status_code == 204, response.text
    response = await stack.http.post(
        url(server_id, "/rename"),
        json={"from": "maps/big.bin", "to": "old/server.cfg"},
        headers=stack.headers,
    )
    assert response.status_code == 409
    assert response.json()["code"] == "file_exists"

    response = await stack.http.post(
        url(server_id, "/archive"), json={"names": ["old"], "format": "zip"}, headers=stack.headers
    )
    assert response.status_code == 201, response.text
    archive = response.json()
    assert archive["files"] == 1
    assert archive["path"].endswith(".zip")
    response = await stack.http.post(url(server_id, "/folder"), json={"path": "copy"}, headers=stack.headers)
    response = await stack.http.post(
        url(server_id, "/extract"), json={"path": archive["path"], "folder": "copy"}, headers=stack.headers
    )
    assert response.status_code == 200, response.text
    assert (stack.server_folder(server_id) / "copy" / "old" / "server.cfg").read_bytes() == b"port=1\n"

    response = await stack.http.post(
        url(server_id, "/delete"), json={"paths": ["copy", "maps", archive["path"]]}, headers=stack.headers
    )
    assert response.status_code == 204, response.text
    assert sorted(os.listdir(stack.server_folder(server_id))) == ["old"]
    response = await stack.http.get(
        url(server_id, "/content"), params={"path": "maps/big.bin"}, headers=stack.headers
    )
    assert response.status_code == 404
    assert response.json()["code"] == "file_not_found"

    assert [action for action in await audit_actions(stack, server_id) if ".file." in action] == [
        f"panel.server.file.{verb}"
        for verb in (
            "upload",
            "download",
            "write",
            "read",
            "mkdir",
            "rename",
            "archive",
            "mkdir",
            "extract",
            "delete",
        )
    ]


async def test_escapes_are_refused_and_nothing_outside_is_touched(stack: AgentStack) -> None:
    server_id = await create_server(stack)
    folder = stack.server_folder(server_id)
    outside = stack.home / "outside"
    outside.mkdir()
    (outside / "secret").write_text("credential")
    await upload(stack, server_id, "ok.txt", b"ok")
    (folder / "link").symlink_to(outside / "secret")
    (folder / "dirlink").symlink_to(outside)

    refused: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "", {"params": {"path": "../"}}),
        ("GET", "", {"params": {"path": "dirlink"}}),
        ("GET", "/content", {"params": {"path": "/etc/passwd"}}),
        ("GET", "/content", {"params": {"path": "../../credential"}}),
        ("GET", "/content", {"params": {"path": "link"}}),
        ("GET", "/download", {"params": {"path": "dirlink/secret"}}),
        ("POST", "/upload", {"params": {"path": "dirlink/planted"}, "content": b"x"}),
        ("POST", "/upload", {"params": {"path": "link"}, "content": b"overwritten"}),
        ("PUT", "/content", {"params": {"path": "../escape"}, "content": b"x"}),
        ("POST", "/rename", {"json": {"from": "ok.txt", "to": "dirlink/ok.txt"}}),
        ("POST", "/rename", {"json": {"from": "../../credential", "to": "stolen"}}),
        ("POST", "/delete", {"json": {"paths": ["../run"]}}),
        ("POST", "/folder", {"json": {"path": "dirlink/made"}}),
    ]
    for method, tail, options in refused:
        response = await stack.http.request(method, url(server_id, tail), headers=stack.headers, **options)
        assert response.status_code == 400, (method, tail, options, response.text)
        assert response.json()["code"] == "path_refused", response.text

    unsafe: dict[str, list[tuple[tarfile.TarInfo, bytes | None]]] = {
        "dots.tar.gz": [(entry("../../../escaped"), b"x")],
        "absolute.tar.gz": [(entry("/tmp/escaped"), b"x")],
        "symlink.tar.gz": [(entry("s", tarfile.SYMTYPE, str(outside)), None), (entry("s/planted"), b"x")],
        "hardlink.tar.gz": [(entry("h", tarfile.LNKTYPE, "/etc/passwd"), None)],
    }
    for name, entries in unsafe.items():
        assert (await upload(stack, server_id, name, tarball(entries))).status_code == 201
        response = await stack.http.post(
            url(server_id, "/extract"), json={"path": name}, headers=stack.headers
        )
        assert response.status_code == 400, (name, response.text)
        assert response.json()["code"] == "archive_refused"

    assert sorted(path.name for path in outside.iterdir()) == ["secret"]
    assert (outside / "secret").read_text() == "credential"
    assert sorted(os.listdir(folder)) == sorted(
        ["ok.txt", "link", "dirlink", "dots.tar.gz", "absolute.tar.gz", "symlink.tar.gz", "hardlink.tar.gz"]
    )
    assert not (stack.home / "escaped").exists()
    assert not os.path.exists("/tmp/escaped")  # noqa: ASYNC240 - a plain stat


async def test_the_disk_limit_is_enforced_at_write_time(stack: AgentStack) -> None:
    server_id = await create_server(stack, disk_mb=16)
    folder = stack.server_folder(server_id)
    folder.mkdir(exist_ok=True)
    (folder / "world.dat").write_bytes(os.urandom(9 * MiB))  # what the game wrote
    response = await upload(stack, server_id, "big.bin", os.urandom(8 * MiB))
    assert response.status_code == 409, response.text
    assert response.json()["code"] == "disk_quota"
    assert sorted(os.listdir(folder)) == ["world.dat"]  # nothing partial

    pack = tarball([(entry(f"d/{n}.bin"), os.urandom(3 * MiB // 2)) for n in range(4)])
    response = await upload(stack, server_id, "pack.tar.gz", pack)
    assert response.status_code == 201, response.text  # 9 + 6 MiB fit
    response = await stack.http.post(
        url(server_id, "/extract"), json={"path": "pack.tar.gz"}, headers=stack.headers
    )
    assert response.status_code == 409, response.text  # 6 MiB more do not
    assert response.json()["code"] == "disk_quota"
    assert sorted(os.listdir(folder)) == ["pack.tar.gz", "world.dat"]
    response = await stack.http.post(url(server_id, "/archive"), json={}, headers=stack.headers)
    assert response.status_code == 409, response.text  # nor an archive of it all
    assert sorted(os.listdir(folder)) == ["pack.tar.gz", "world.dat"]


async def test_the_templates_deny_list_holds_for_everyone(stack: AgentStack) -> None:
    egg = {**SHELL_EGG, "file_denylist": ["*.jar", "secret.cfg"]}
    response = await stack.http.post(
        "/api/panel/templates/import", json={"egg": egg, "slug": "denying"}, headers=stack.headers
    )
    assert response.status_code == 201, response.text
    server_id = await create_server(stack, template_slug="denying")
    folder = stack.server_folder(server_id)
    assert (await upload(stack, server_id, "ok.txt", b"ok")).status_code == 201
    (folder / "secret.cfg").write_text("rcon=hunter2")
    denied: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/content", {"params": {"path": "secret.cfg"}}),
        ("GET", "/download", {"params": {"path": "secret.cfg"}}),
        ("PUT", "/content", {"params": {"path": "secret.cfg"}, "content": b"x"}),
        ("POST", "/upload", {"params": {"path": "plugins/evil.jar"}, "content": b"x"}),
        ("POST", "/rename", {"json": {"from": "ok.txt", "to": "ok.jar"}}),
        ("POST", "/delete", {"json": {"paths": ["secret.cfg"]}}),
    ]
    for method, tail, options in denied:
        response = await stack.http.request(method, url(server_id, tail), headers=stack.headers, **options)
        assert response.status_code == 403, (method, tail, response.text)
        assert response.json()["code"] == "file_denied"
    response = await stack.http.get(url(server_id), headers=stack.headers)
    assert sorted(entry["name"] for entry in response.json()["entries"]) == ["ok.txt", "secret.cfg"]
    assert (folder / "secret.cfg").read_text() == "rcon=hunter2"


async def test_subusers_need_each_key_and_strangers_see_nothing(stack: AgentStack) -> None:
    server_id = await create_server(stack)
    await upload(stack, server_id, "notes.txt", b"hello")
    platform = stack.panel.platform
    reader: Account = await account(platform)
    await grant(platform, reader.user, uuid.UUID(server_id), "file.read")
    stranger: Account = await account(platform)

    response = await stack.http.get(url(server_id), headers=reader.headers)
    assert response.status_code == 200, response.text
    before = await changeable(stack)
    forbidden: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/content", {"params": {"path": "notes.txt"}}),
        ("GET", "/download", {"params": {"path": "notes.txt"}}),
        ("POST", "/upload", {"params": {"path": "new.txt"}, "content": b"x"}),
        ("PUT", "/content", {"params": {"path": "notes.txt"}, "content": b"x"}),
        ("POST", "/rename", {"json": {"from": "notes.txt", "to": "n.txt"}}),
        ("POST", "/delete", {"json": {"paths": ["notes.txt"]}}),
        ("POST", "/folder", {"json": {"path": "made"}}),
        ("POST", "/archive", {"json": {}}),
        ("POST", "/extract", {"json": {"path": "a.tar.gz"}}),
    ]
    for method, tail, options in forbidden:
        response = await stack.http.request(method, url(server_id, tail), headers=reader.headers, **options)
        assert response.status_code == 403, (method, tail, response.text)
        response = await stack.http.request(method, url(server_id, tail), headers=stranger.headers, **options)
        assert response.status_code == 404, (method, tail, response.text)
    response = await stack.http.get(url(server_id), headers=stranger.headers)
    assert response.status_code == 404
    assert await changeable(stack) == before
    assert sorted(os.listdir(stack.server_folder(server_id))) == ["notes.txt"]
    assert (stack.server_folder(server_id) / "notes.txt").read_bytes() == b"hello"


# ------------------------------------------------------------------ backups


async def installed_server(stack: AgentStack) -> str:
    server_id = await create_server(stack)
    response = await stack.http.post(
        f"/api/panel/servers/{server_id}/install", json={}, headers=stack.headers
    )
    assert response.status_code == 202, response.text

    async def installed() -> bool:
        return (await server_row(stack.panel.platform, server_id)).status == "installed"

    await eventually(installed, "the server installed")
    return server_id


async def backup_done(
    stack: AgentStack, server_id: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    response = await stack.http.post(
        f"/api/panel/servers/{server_id}/backups", json=body or {}, headers=stack.headers
    )
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "pending"
    backup_url = f"/api/panel/servers/{server_id}/backups/{response.json()['id']}"
    found: dict[str, Any] = {}

    async def finished() -> bool:
        nonlocal found
        found = (await stack.http.get(backup_url, headers=stack.headers)).json()
        return found["status"] in ("ok", "failed")

    await eventually(finished, "the backup made")
    return found


async def server_status(stack: AgentStack, server_id: str, status: str) -> None:
    async def reached() -> bool:
        return (await server_row(stack.panel.platform, server_id)).status == status

    await eventually(reached, f"the server {status}")


async def test_backup_verify_download_restore(stack: AgentStack) -> None:
    server_id = await installed_server(stack)
    folder = stack.server_folder(server_id)
    (folder / "config").mkdir()
    (folder / "config" / "game.cfg").write_text("port=1\n")
    (folder / "world.dat").write_bytes(os.urandom(3 * MiB // 2))
    (folder / "cache").mkdir()
    (folder / "cache" / "x.log").write_text("noise")
    kept = archives.summarize(folder)
    socket = await connect(stack.panel.hub_url, open_timeout=30)
    hub = Peer(socket)
    token = stack.headers["Authorization"].removeprefix("Bearer ")
    assert (await hub.request("auth", token=token))["ok"]
    assert (await hub.request("subscribe", topic=f"panel.server.{server_id}.state"))["ok"]

    backup = await backup_done(stack, server_id, {"name": "before", "ignore": ["cache/"]})
    assert backup["status"] == "ok", backup
    assert backup["verified_at"] is not None
    assert backup["files"] == 2  # config/game.cfg, world.dat: cache/ ignored
    stored, body = await stack.panel.platform.storage.get(f"panel/backups/{server_id}/{backup['id']}.tar.gz")
    data = b"".join([chunk async for chunk in body])
    assert hashlib.sha256(data).hexdigest() == backup["sha256"]
    assert stored.size == backup["size"]
    assert not list((stack.home / "agent" / "run" / server_id / "backups").iterdir())  # dropped on the node

    response = await stack.http.get(
        f"/api/panel/servers/{server_id}/backups/{backup['id']}/download", headers=stack.headers
    )
    assert response.status_code == 200, response.text
    link = httpx.URL(response.json()["url"])  # signed for the configured base URL: ask this server
    downloaded = await stack.http.get(link.raw_path.decode())
    assert downloaded.status_code == 200
    assert hashlib.sha256(downloaded.content).hexdigest() == backup["sha256"]

    (folder / "world.dat").write_bytes(b"corrupted")
    (folder / "griefed.txt").write_text("x")
    response = await stack.http.post(
        f"/api/panel/servers/{server_id}/backups/{backup['id']}/restore", headers=stack.headers
    )
    assert response.status_code == 202, response.text
    await server_status(stack, server_id, "installed")
    restored = archives.summarize(folder)
    assert restored.files == kept.files - 1  # the ignored cache is not in the backup
    assert "griefed.txt" not in os.listdir(folder)
    assert (folder / "config" / "game.cfg").read_text() == "port=1\n"
    assert hashlib.sha256((folder / "world.dat").read_bytes()).hexdigest() in "\n".join(kept.lines)
    response = await stack.http.get(
        f"/api/panel/servers/{server_id}/backups/{backup['id']}", headers=stack.headers
    )
    assert response.json()["restored_at"] is not None

    actions = [action for action in await audit_actions(stack, server_id) if ".backup." in action]
    assert actions == [
        "panel.server.backup.create",
        "panel.server.backup.made",
        "panel.server.backup.download",
        "panel.server.backup.restore",
        "panel.server.backup.restored",
    ]


async def test_a_tampered_backup_is_refused_at_restore(stack: AgentStack) -> None:
    server_id = await installed_server(stack)
    folder = stack.server_folder(server_id)
    (folder / "world.dat").write_bytes(b"world")
    backup = await backup_done(stack, server_id)
    assert backup["status"] == "ok"
    key = f"panel/backups/{server_id}/{backup['id']}.tar.gz"

    async def forged() -> AsyncIterator[bytes]:
        yield tarball([(entry("world.dat"), b"forged")])

    await stack.panel.platform.storage.put(key, forged(), content_type="application/gzip")
    response = await stack.http.post(
        f"/api/panel/servers/{server_id}/backups/{backup['id']}/restore", headers=stack.headers
    )
    assert response.status_code == 202, response.text

    async def refused() -> bool:
        return "panel.server.backup.restore_failed" in await audit_actions(stack, server_id)

    await eventually(refused, "the restore refused")
    await server_status(stack, server_id, "installed")
    assert (folder / "world.dat").read_bytes() == b"world"


async def test_retention_prunes_the_oldest_unlocked_backups(stack: AgentStack) -> None:
    server_id = await installed_server(stack)
    (stack.server_folder(server_id) / "a.txt").write_text("a")
    locked = await backup_done(stack, server_id, {"name": "keep me", "locked": True})
    made = [await backup_done(stack, server_id, {"name": f"b{n}"}) for n in range(3)]
    assert all(backup["status"] == "ok" for backup in [locked, *made])
    names: list[str] = []

    async def pruned() -> bool:  # the job marks a backup ok, then prunes past the retention count
        nonlocal names
        response = await stack.http.get(f"/api/panel/servers/{server_id}/backups", headers=stack.headers)
        names = [backup["name"] for backup in response.json()]
        return "b0" not in names

    await eventually(pruned, "the oldest unlocked backup pruned")
    assert names == ["b2", "b1", "keep me"]  # newest first; b0 pruned, the locked one kept
    objects = [item.key async for item in stack.panel.platform.storage.list(f"panel/backups/{server_id}/")]
    assert sorted(objects) == sorted(
        f"panel/backups/{server_id}/{backup['id']}.tar.gz" for backup in [locked, made[1], made[2]]
    )
    response = await stack.http.delete(
        f"/api/panel/servers/{server_id}/backups/{locked['id']}", headers=stack.headers
    )
    assert response.status_code == 409
    assert response.json()["code"] == "backup_locked"
    response = await stack.http.delete(
        f"/api/panel/servers/{server_id}/backups/{made[1]['id']}", headers=stack.headers
    )
    assert response.status_code == 204
    assert "panel.server.backup.prune" in await audit_actions(stack, server_id)

    # deleting the server deletes its backups' archives too
    response = await stack.http.delete(f"/api/panel/servers/{server_id}", headers=stack.headers)
    assert response.status_code == 204, response.text
    assert not [item async for item in stack.panel.platform.storage.list(f"panel/backups/{server_id}/")]


async def test_backup_keys_are_needed_and_a_running_server_is_not_restored(stack: AgentStack) -> None:
    server_id = await installed_server(stack)
    backup = await backup_done(stack, server_id)
    platform = stack.panel.platform
    viewer: Account = await account(platform)
    await grant(platform, viewer.user, uuid.UUID(server_id), "backup.read")
    stranger: Account = await account(platform)
    base = f"/api/panel/servers/{server_id}/backups"
    response = await stack.http.get(base, headers=viewer.headers)
    assert response.status_code == 200
    assert [item["id"] for item in response.json()] == [backup["id"]]
    before = await changeable(stack)
    for method, path in (
        ("POST", base),
        ("DELETE", f"{base}/{backup['id']}"),
        ("GET", f"{base}/{backup['id']}/download"),
        ("POST", f"{base}/{backup['id']}/restore"),
        ("POST", f"{base}/{backup['id']}/lock"),
    ):
        body = {"locked": True} if path.endswith("/lock") else {}
        response = await stack.http.request(method, path, json=body, headers=viewer.headers)
        assert response.status_code == 403, (method, path, response.text)
        response = await stack.http.request(method, path, json=body, headers=stranger.headers)
        assert response.status_code == 404, (method, path, response.text)
    assert (await stack.http.get(base, headers=stranger.headers)).status_code == 404
    assert await changeable(stack) == before

    async with platform.database.transaction() as session:
        row = await repository.get_server(session, uuid.UUID(server_id))
        assert row is not None
        row.state = "running"
    response = await stack.http.post(f"{base}/{backup['id']}/restore", headers=stack.headers)
    assert response.status_code == 409
    assert response.json()["code"] == "server_not_stopped"
