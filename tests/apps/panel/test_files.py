"""The file manager through the panel's API and a real `pentad agent` process: every verb end to end,
escapes refused (traversal, absolute paths, symlinks pointing out, archive entries with `..` or links),
the disk limit enforced at write time with nothing left behind, the audit log, and the deny side (a
subuser without the key gets 403, a stranger 404, and a refused request changes nothing).

Runs once (its own SQLite file: the panel and the agent are separate processes' worth of work, not a
database check)."""

from __future__ import annotations

import io
import os
import secrets
import socket
import tarfile
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from pentad.core.audit import AuditEvent
from tests.apps.panel.agent_process import AgentStack, agent_stack
from tests.apps.panel.link_support import grant
from tests.apps.panel.support import snapshot
from tests.factories import Account, account

MiB = 1024 * 1024


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[AgentStack]:
    async with agent_stack() as made:
        yield made


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def create_server(stack: AgentStack, *, disk_mb: int = 1024) -> str:
    port = free_tcp_port()
    response = await stack.http.post(
        f"/api/panel/nodes/{stack.node_id}/allocations",
        json={"ip": "127.0.0.1", "ports": [str(port)]},
        headers=stack.headers,
    )
    assert response.status_code == 201, response.text
    allocation = response.json()[0]["id"]
    templates = (await stack.http.get("/api/panel/templates", headers=stack.headers)).json()
    template = next(item for item in templates if item["slug"] == "generic")
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
    assert (await upload(stack, server_id, "pack.tar.gz", pack)).status_code == 201  # 9 + 6 MiB fit
    response = await stack.http.post(
        url(server_id, "/extract"), json={"path": "pack.tar.gz"}, headers=stack.headers
    )
    assert response.status_code == 409, response.text  # 6 MiB more do not
    assert response.json()["code"] == "disk_quota"
    assert sorted(os.listdir(folder)) == ["pack.tar.gz", "world.dat"]
    response = await stack.http.post(url(server_id, "/archive"), json={}, headers=stack.headers)
    assert response.status_code == 409, response.text  # nor an archive of it all
    assert sorted(os.listdir(folder)) == ["pack.tar.gz", "world.dat"]


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
