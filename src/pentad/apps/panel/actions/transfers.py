"""Moving a server to another node (admins): `POST /api/panel/servers/{id}/transfer` `{node_id,
allocation_id?}` checks and reserves, the job `panel.server_transfer` moves.

Checks (each a 4xx problem that changes nothing): the caller is a panel admin; the server is stopped
(`offline` or `crashed`) and `installed` (409 `server_not_stopped`); the target is another node (409
`transfer_same_node`) that exists, is not draining and has the capacity (409 `insufficient_capacity`);
the allocation is the target's and free (the target's first free one when none is named); no backup of it
is being made (409 `backup_in_progress`). The allocation is then held for the server and the server is
`transferring`: no power action starts it meanwhile, file and backup requests answer 409
`server_transferring`.

The job, through the panel and core storage like a backup (bulk bytes never ride a socket between
nodes, which may not see each other): the source agent archives the folder (`backup_make`); the archive
is copied chunk by chunk (`backup_read`) into storage (`panel/transfers/<server>/<token>.tar.gz`) with its
sha256 checked; pushed to the target agent (`backup_push`), which checks the sha256 and extracts it
(`backup_restore`); the digest of what the target extracted (paths, sizes, file hashes) must equal the
source's. Only then the server switches: its node becomes the target, its primary allocation the held one,
its old allocations are freed, status `installed`; the source's copy is deleted (`delete` call; a node
offline at that moment keeps a stale folder, logged). On any failure nothing switches: the server stays
on its source, `installed`, the held allocation is freed, the target's partial copy and the stored
archive are removed. Audited `panel.server.transfer` (caller), `…transfer_done` / `…transfer_failed`
(system); `transfer` events on the server's state topic."""

from __future__ import annotations

import base64
import contextlib
import secrets
import uuid
from typing import Any, Literal

import structlog
from pydantic import BaseModel, Field

from pentad.apps.panel import agent_link, repository
from pentad.apps.panel.actions.backups import (
    RESTORABLE_STATES,
    ArchiveCopyFailed,
    BackupBusy,
    ServerNotStopped,
    copy_archive_to_storage,
    parse_size,
)
from pentad.apps.panel.actions.context import PanelContext
from pentad.apps.panel.actions.servers import AdminOnly, check_capacity, take_allocations
from pentad.apps.panel.exceptions import InsufficientCapacity, NodeNotFound
from pentad.apps.panel.models import PanelAllocation, PanelServer
from pentad.apps.panel.permissions import SERVER_RESOURCE
from pentad.apps.panel.settings import PanelSettings
from pentad.apps.panel.topics import state_topic
from pentad.core import audit
from pentad.core.context import AppContext, JobContext
from pentad.core.errors import Conflict
from pentad.core.jobs.queue import enqueue
from pentad.core.jobs.registry import JobSpec
from pentad.core.realtime.publish import publish, publish_now
from pentad.panel_wire import protocol as wire

logger = structlog.get_logger(__name__)

TRANSFER_JOB = "panel.server_transfer"
CONTENT_TYPE = "application/gzip"


class TransferCreate(BaseModel):
    node_id: uuid.UUID = Field(description="the node to move the server to")
    allocation_id: uuid.UUID | None = Field(
        None, description="its primary allocation there (default: the node's first free one)"
    )


class TransferQueued(BaseModel):
    server_id: uuid.UUID
    status: Literal["transferring"] = "transferring"
    from_node_id: uuid.UUID
    to_node_id: uuid.UUID
    allocation: str = Field(description="ip:port held on the target")


class TransferEvent(BaseModel):
    """On `panel.server.{id}.state` while a transfer runs."""

    type: Literal["transfer"] = "transfer"
    server_id: str
    status: Literal["running", "done", "failed"]
    progress: float = 0.0
    message: str | None = None


class TransferSameNode(Conflict):
    code = "transfer_same_node"

    def __init__(self) -> None:
        super().__init__("The server is on that node already.")


class TransferFailed(Exception):
    pass


def storage_key(server_id: uuid.UUID, token: str) -> str:
    return f"panel/transfers/{server_id}/{token}.tar.gz"


async def do_transfer_server(
    panel: PanelContext, server_id: uuid.UUID, data: TransferCreate
) -> TransferQueued:
    server = (await panel.access(server_id)).server  # 404 for a server one holds no key on
    if not panel.is_admin:
        raise AdminOnly("Only panel admins may move a server to another node.")
    if data.node_id == server.node_id:
        raise TransferSameNode()
    if server.state not in RESTORABLE_STATES or server.status != "installed":
        raise ServerNotStopped(server.state, server.status)
    if await repository.busy_backup(panel.session, server.id) is not None:
        raise BackupBusy()
    node = await repository.get_node(panel.session, data.node_id)
    if node is None:
        raise NodeNotFound()
    if node.draining:
        raise InsufficientCapacity("The node is draining: it takes no new servers.", resource="node")
    usage = await repository.node_usage(panel.session, node.id)
    check_capacity(node, memory=server.memory_mb, disk=server.disk_mb, cpu=server.cpu_percent, usage=usage)
    [allocation] = await take_allocations(panel, node, data.allocation_id, [])
    allocation.server_id = server.id  # held: nobody else takes it while the files move
    source = server.node_id
    server.status = "transferring"
    await panel.session.flush()
    await enqueue(
        panel.session,
        TRANSFER_JOB,
        {"server_id": str(server.id), "node_id": str(node.id), "allocation_id": str(allocation.id)},
    )
    address = f"{allocation.ip}:{allocation.port}"
    audit.record(
        panel.session, panel.audit_actor, "panel.server.transfer", resource_type=SERVER_RESOURCE,
        resource_id=str(server.id), from_node=str(source), to_node=str(node.id), allocation=address,
    )  # fmt: skip
    return TransferQueued(server_id=server.id, from_node_id=source, to_node_id=node.id, allocation=address)


# --- the job ---


async def _progress(platform: AppContext, server_id: uuid.UUID, progress: float, message: str) -> None:
    event = TransferEvent(server_id=str(server_id), status="running", progress=progress, message=message)
    await publish_now(platform, state_topic(server_id), event)


async def _push_from_storage(
    platform: AppContext, server_id: uuid.UUID, target: uuid.UUID, token: str, key: str
) -> None:
    _, body = await platform.storage.get(key)
    offset = 0
    pending = bytearray()

    async def push(data: bytes) -> None:
        await agent_link.call(
            platform,
            target,
            "backup_push",
            server_id,
            wire.BackupPushParams(backup_id=token, offset=offset, data=base64.b64encode(data).decode()),
        )

    try:
        async for piece in body:
            pending += piece
            while len(pending) >= wire.CHUNK_BYTES:
                await push(bytes(pending[: wire.CHUNK_BYTES]))
                offset += wire.CHUNK_BYTES
                del pending[: wire.CHUNK_BYTES]
        if pending or offset == 0:
            await push(bytes(pending))
    finally:
        await body.aclose()


async def transfer_server(job: JobContext, payload: dict[str, Any]) -> None:
    """Job `panel.server_transfer` (see the module)."""
    platform = job.platform
    settings = platform.app_settings(PanelSettings)
    server_id = uuid.UUID(payload["server_id"])
    target, allocation_id = uuid.UUID(payload["node_id"]), uuid.UUID(payload["allocation_id"])
    async with platform.database.transaction(writes=False) as session:
        server = await repository.get_server(session, server_id)
        if server is None or server.status != "transferring":
            return
        session.expunge(server)
    token = f"t{secrets.token_hex(12)}"
    key = storage_key(server.id, token)
    timeout = settings.file_operation_timeout
    try:
        await _progress(platform, server.id, 0.05, "archiving on the source node")
        made = await agent_link.call(
            platform,
            server.node_id,
            "backup_make",
            server.id,
            wire.BackupMakeParams(backup_id=token),
            timeout=timeout,
        )
        size, sha256 = int(made["size"]), str(made["sha256"])
        await _progress(platform, server.id, 0.3, "copying into storage")
        limit = min(parse_size(settings.backup_limit), 1 << 62)
        if await copy_archive_to_storage(platform, server, token, key, size, limit) != sha256:
            raise TransferFailed("the archive copied from the source node does not match its sha256")
        with contextlib.suppress(agent_link.AgentRefused, agent_link.NodeOffline, agent_link.AgentTimeout):
            await agent_link.call(
                platform, server.node_id, "backup_drop", server.id, wire.BackupDropParams(backup_id=token)
            )
        await _progress(platform, server.id, 0.6, "sending to the target node")
        await _push_from_storage(platform, server.id, target, token, key)
        await _progress(platform, server.id, 0.8, "extracting on the target node")
        restored = await agent_link.call(
            platform,
            target,
            "backup_restore",
            server.id,
            wire.BackupRestoreParams(
                backup_id=token,
                sha256=sha256,
                max_entries=max(settings.archive_max_entries, 1_000_000),
                max_bytes=1 << 50,
                max_ratio=max(settings.archive_max_ratio, 10_000),
                quota_bytes=0,
            ),
            timeout=timeout,
        )
        if restored.get("digest") != made["digest"]:
            raise TransferFailed("the target node does not hold what the source archived")
    except Exception as error:
        await _failed(platform, server, target, allocation_id, token, key, error)
        return
    await _switch(platform, server, target, allocation_id, int(made["files"]), size)
    with contextlib.suppress(Exception):
        await platform.storage.delete(key)
    try:
        await agent_link.call(platform, server.node_id, "delete", server.id, wire.DeleteParams())
    except Exception as error:  # the server moved; the old copy is only disk space now
        logger.warning(
            "panel_transfer_source_kept",
            server_id=str(server.id),
            node_id=str(server.node_id),
            error=str(error),
        )


def _reason(error: Exception) -> str:
    if isinstance(error, agent_link.AgentRefused | TransferFailed | ArchiveCopyFailed):
        return str(error)[:500]
    if hasattr(error, "message"):
        return str(error.message)[:500]
    return f"{type(error).__name__}: {error}"[:500]


async def _failed(
    platform: AppContext,
    server: PanelServer,
    target: uuid.UUID,
    allocation_id: uuid.UUID,
    token: str,
    key: str,
    error: Exception,
) -> None:
    reason = _reason(error)
    logger.warning("panel_transfer_failed", server_id=str(server.id), to_node=str(target), reason=reason)
    with contextlib.suppress(Exception):
        await platform.storage.delete(key)
    with contextlib.suppress(Exception):
        drop = wire.BackupDropParams(backup_id=token)
        await agent_link.call(platform, server.node_id, "backup_drop", server.id, drop)
    with contextlib.suppress(Exception):  # the target's partial copy
        await agent_link.call(platform, target, "delete", server.id, wire.DeleteParams())
    async with platform.database.transaction() as session:
        row = await repository.get_server(session, server.id)
        if row is not None and row.status == "transferring":
            row.status = "installed"
        held = await session.get(PanelAllocation, allocation_id)
        if held is not None and held.server_id == server.id and held.id != server.allocation_id:
            held.server_id = None
        audit.record(
            session, audit.SYSTEM, "panel.server.transfer_failed", resource_type=SERVER_RESOURCE,
            resource_id=str(server.id), to_node=str(target), error=reason,
        )  # fmt: skip
        event = TransferEvent(server_id=str(server.id), status="failed", progress=1.0, message=reason)
        publish(session, state_topic(server.id), event)


async def _switch(
    platform: AppContext,
    server: PanelServer,
    target: uuid.UUID,
    allocation_id: uuid.UUID,
    files: int,
    size: int,
) -> None:
    async with platform.database.transaction() as session:
        row = await repository.get_server(session, server.id)
        if row is None:
            return
        for allocation in await repository.list_allocations(session, server_id=row.id):
            if allocation.id != allocation_id:
                allocation.server_id = None
        row.node_id, row.allocation_id, row.status = target, allocation_id, "installed"
        audit.record(
            session, audit.SYSTEM, "panel.server.transfer_done", resource_type=SERVER_RESOURCE,
            resource_id=str(row.id), from_node=str(server.node_id), to_node=str(target), files=files,
            archive_bytes=size,
        )  # fmt: skip
        publish(
            session, state_topic(row.id), TransferEvent(server_id=str(row.id), status="done", progress=1.0)
        )


JOBS = (JobSpec(TRANSFER_JOB, transfer_server, max_attempts=1, timeout=4 * 3600, concurrency=2),)
