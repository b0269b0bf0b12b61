"""Backups of a server's folder: made on its node, kept in core storage (local folder or S3), verified by a
test restore, restored into the folder, downloaded, deleted, pruned past the retention count.

Making one (`backup.create`) adds a `pending` row and the job `panel.backup_make` in the same transaction
and answers 202. The job asks the agent to archive the folder (tar.gz, minus the ignore patterns, symlinks
left out), streams it chunk by chunk from the node into storage (`panel/backups/<server>/<backup>.tar.gz`)
checking its sha256 against the agent's, then reads it back from storage into a scratch folder of the
panel (pentad.panel_wire.archives: the same checks as any extraction) and compares the digest of what came
out with the digest of what went in. Only then is the backup `ok`; anything else ends `failed` with the
reason, and the stored object is removed. Older unlocked `ok` backups past `backup_retention` are then
deleted (row and object).

Restoring (`backup.restore`, the server offline) marks the server `restoring` (no power action can start
it meanwhile) and runs `panel.backup_restore`: the object is pushed to the node in chunks, the agent checks
its sha256, extracts it into staging and swaps it in for the folder's content.

Both jobs publish `backup` events on the server's state topic (`panel.server.{id}.state`) as they go
(status, progress 0..1, message), and report progress on their job. Every request is audited
(`panel.server.backup.<verb>`), as are the jobs' outcomes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import re
import secrets
import tempfile
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import structlog
from pydantic import BaseModel, Field

from pentad.apps.panel import agent_link, repository
from pentad.apps.panel.actions.context import PanelContext
from pentad.apps.panel.chunks import read_ahead
from pentad.apps.panel.exceptions import ServerTransferring
from pentad.apps.panel.models import PanelBackup, PanelServer
from pentad.apps.panel.permissions import SERVER_PERMISSIONS, SERVER_RESOURCE
from pentad.apps.panel.settings import PanelSettings
from pentad.apps.panel.topics import state_topic
from pentad.core import audit
from pentad.core.context import AppContext, JobContext
from pentad.core.db.base import utcnow
from pentad.core.db.hooks import on_commit
from pentad.core.errors import Conflict, NotFound
from pentad.core.jobs.queue import enqueue
from pentad.core.jobs.registry import JobSpec
from pentad.core.realtime.publish import publish, publish_now
from pentad.panel_wire import archives
from pentad.panel_wire import protocol as wire

logger = structlog.get_logger("pentad.panel.backups")

BACKUP_READ = SERVER_PERMISSIONS["backup.read"]
BACKUP_CREATE = SERVER_PERMISSIONS["backup.create"]
BACKUP_DELETE = SERVER_PERMISSIONS["backup.delete"]
BACKUP_DOWNLOAD = SERVER_PERMISSIONS["backup.download"]
BACKUP_RESTORE = SERVER_PERMISSIONS["backup.restore"]
MAKE_JOB = "panel.backup_make"
RESTORE_JOB = "panel.backup_restore"
CONTENT_TYPE = "application/gzip"
DOWNLOAD_TTL = 300
RESTORABLE_STATES = frozenset({"offline", "crashed"})
_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]?)I?B?\s*$", re.IGNORECASE)


# --- errors ---


class BackupNotFound(NotFound):
    code = "backup_not_found"

    def __init__(self) -> None:
        super().__init__("No such backup of this server.")


class BackupBusy(Conflict):
    code = "backup_in_progress"

    def __init__(self) -> None:
        super().__init__("A backup of this server is being made; wait until it ends.")


class BackupNotReady(Conflict):
    code = "backup_not_ready"

    def __init__(self, status: str) -> None:
        super().__init__(
            f"The backup is {status}: only a verified (ok) backup can be used.", backup_status=status
        )


class BackupLocked(Conflict):
    code = "backup_locked"

    def __init__(self) -> None:
        super().__init__("The backup is locked; unlock it before deleting it.")


class ServerNotStopped(Conflict):
    code = "server_not_stopped"

    def __init__(self, state: str, status: str) -> None:
        super().__init__(
            f"The server is {state} ({status}): stop it before restoring a backup.",
            state=state,
            server_status=status,
        )


# --- views ---


class BackupRead(BaseModel):
    id: uuid.UUID
    server_id: uuid.UUID
    name: str
    status: Literal["pending", "running", "ok", "failed"]
    locked: bool
    ignore: list[str]
    size: int | None = Field(description="bytes of the tar.gz")
    sha256: str | None
    files: int | None
    bytes: int | None = Field(description="bytes of the files it holds")
    error: str | None
    created_at: datetime
    completed_at: datetime | None
    verified_at: datetime | None = Field(description="when a test restore into a scratch folder matched")
    restored_at: datetime | None


class BackupCreate(BaseModel):
    name: str = Field("", max_length=200, description="default: the date")
    ignore: list[str] = Field(
        default_factory=list,
        max_length=500,
        description="patterns left out (like .pteroignore lines: `*.log`, `cache/`)",
    )
    locked: bool = Field(False, description="never pruned by the retention count")


class BackupDownload(BaseModel):
    url: str = Field(description="a signed link to the tar.gz, valid for a few minutes")
    expires_in: int


class BackupEvent(BaseModel):
    """On `panel.server.{id}.state`: a backup's progress."""

    type: Literal["backup"] = "backup"
    server_id: str
    backup_id: str
    action: Literal["make", "restore", "delete", "prune"]
    status: str
    progress: float = 0.0
    message: str | None = None


def view(backup: PanelBackup) -> BackupRead:
    return BackupRead.model_validate(backup, from_attributes=True)


def parse_size(text: str) -> int:
    """ "20GB" -> bytes (K, M, G, T are powers of 1024)."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"not a size: {text!r}")
    unit = match.group(2).upper()
    power = "KMGT".index(unit) + 1 if unit else 0
    return int(match.group(1)) * (1 << (10 * power))


def storage_key(server_id: uuid.UUID, backup_id: uuid.UUID) -> str:
    return f"panel/backups/{server_id}/{backup_id}.tar.gz"


def agent_backup_id(backup_id: uuid.UUID) -> str:
    return backup_id.hex


def _record(context: PanelContext, server_id: uuid.UUID, verb: str, **details: Any) -> None:
    audit.record(
        context.session,
        context.audit_actor,
        f"panel.server.backup.{verb}",
        resource_type=SERVER_RESOURCE,
        resource_id=server_id,
        **details,
    )


# --- requests ---


async def list_backups(context: PanelContext, server_id: uuid.UUID) -> list[BackupRead]:
    await context.access(server_id, BACKUP_READ)
    return [view(backup) for backup in await repository.list_backups(context.session, server_id)]


async def get_backup(context: PanelContext, server_id: uuid.UUID, backup_id: uuid.UUID) -> BackupRead:
    await context.access(server_id, BACKUP_READ)
    return view(await _backup(context, server_id, backup_id))


async def _backup(context: PanelContext, server_id: uuid.UUID, backup_id: uuid.UUID) -> PanelBackup:
    backup = await repository.get_backup(context.session, server_id, backup_id)
    if backup is None:
        raise BackupNotFound()
    return backup


async def do_create_backup(context: PanelContext, server_id: uuid.UUID, data: BackupCreate) -> BackupRead:
    access = await context.access(server_id, BACKUP_CREATE)
    session = context.session
    if access.server.status == "transferring":
        raise ServerTransferring()
    if await repository.busy_backup(session, server_id) is not None:
        raise BackupBusy()
    backup = PanelBackup(
        server_id=access.server.id,
        name=data.name.strip() or f"backup {utcnow():%Y-%m-%d %H:%M:%S}",
        status="pending",
        locked=data.locked,
        ignore=[pattern[:500] for pattern in data.ignore],
        created_by=context.user_id,
    )
    session.add(backup)
    await session.flush()
    await enqueue(session, MAKE_JOB, {"backup_id": str(backup.id)})
    _record(context, server_id, "create", backup_id=str(backup.id), name=backup.name)
    publish(session, state_topic(server_id), _event(backup, "make", "pending"))
    return view(backup)


async def do_delete_backup(context: PanelContext, server_id: uuid.UUID, backup_id: uuid.UUID) -> None:
    await context.access(server_id, BACKUP_DELETE)
    backup = await _backup(context, server_id, backup_id)
    if backup.status in ("pending", "running"):
        raise BackupBusy()
    if backup.locked:
        raise BackupLocked()
    key = backup.storage_key
    await context.session.delete(backup)
    _record(context, server_id, "delete", backup_id=str(backup_id), name=backup.name)
    publish(context.session, state_topic(server_id), _event(backup, "delete", "deleted"))
    await context.session.flush()
    if key is not None:
        await context.platform.storage.delete(key)


async def do_lock_backup(
    context: PanelContext, server_id: uuid.UUID, backup_id: uuid.UUID, *, locked: bool
) -> BackupRead:
    await context.access(server_id, BACKUP_DELETE)
    backup = await _backup(context, server_id, backup_id)
    backup.locked = locked
    _record(context, server_id, "lock" if locked else "unlock", backup_id=str(backup_id))
    return view(backup)


async def forget_server_backups(context: PanelContext, server_id: uuid.UUID) -> int:
    """A server is being deleted: its backup rows go with it (CASCADE); their stored archives are deleted
    once that commits. Returns how many."""
    keys = [b.storage_key for b in await repository.list_backups(context.session, server_id) if b.storage_key]
    storage = context.platform.storage

    async def delete_objects() -> None:
        for key in keys:
            try:
                await storage.delete(key)
            except Exception:
                logger.exception("panel_backup_object_not_deleted", key=key)

    if keys:
        on_commit(context.session, delete_objects)
    return len(keys)


async def download_link(context: PanelContext, server_id: uuid.UUID, backup_id: uuid.UUID) -> BackupDownload:
    await context.access(server_id, BACKUP_DOWNLOAD)
    backup = await _backup(context, server_id, backup_id)
    if backup.status != "ok" or backup.storage_key is None:
        raise BackupNotReady(backup.status)
    name = f"{backup.name}.tar.gz".replace("/", "-").replace(":", "-")
    url = await context.platform.storage.signed_url(backup.storage_key, DOWNLOAD_TTL, download_name=name)
    _record(context, server_id, "download", backup_id=str(backup_id))
    return BackupDownload(url=url, expires_in=DOWNLOAD_TTL)


async def do_restore_backup(context: PanelContext, server_id: uuid.UUID, backup_id: uuid.UUID) -> BackupRead:
    """Queue the restore (the server must be offline; it is `restoring` until the job ends)."""
    access = await context.access(server_id, BACKUP_RESTORE)
    server = access.server
    backup = await _backup(context, server_id, backup_id)
    if backup.status != "ok":
        raise BackupNotReady(backup.status)
    if server.state not in RESTORABLE_STATES or server.status != "installed":
        raise ServerNotStopped(server.state, server.status)
    server.status = "restoring"
    await enqueue(context.session, RESTORE_JOB, {"backup_id": str(backup.id)})
    _record(context, server_id, "restore", backup_id=str(backup_id), name=backup.name)
    publish(context.session, state_topic(server_id), _event(backup, "restore", "pending"))
    return view(backup)


# --- events ---


def _event(
    backup: PanelBackup, action: str, status: str, progress: float = 0.0, message: str | None = None
) -> BackupEvent:
    return BackupEvent(
        server_id=str(backup.server_id),
        backup_id=str(backup.id),
        action=action,
        status=status,
        progress=round(progress, 3),
        message=message,
    )


async def _progress(job: JobContext, backup: PanelBackup, action: str, fraction: float, message: str) -> None:
    await job.progress(fraction, message)
    await publish_now(
        job.platform, state_topic(backup.server_id), _event(backup, action, "running", fraction, message)
    )


# --- the jobs ---


async def _load(platform: AppContext, backup_id: uuid.UUID) -> tuple[PanelBackup, PanelServer] | None:
    async with platform.database.transaction(writes=False) as session:
        backup = await session.get(PanelBackup, backup_id)
        if backup is None:
            return None
        server = await repository.get_server(session, backup.server_id)
        if server is None:
            return None
        session.expunge(backup)
        session.expunge(server)
        return backup, server


class BackupFailed(Exception):
    pass


class ArchiveCopyFailed(Exception):
    """A node's archive did not reach storage whole."""


async def copy_archive_to_storage(
    platform: AppContext, server: PanelServer, token: str, key: str, size: int, limit: int
) -> str:
    """The archive `token` the server's node made (a backup, or a transfer's copy) into storage at `key`,
    read chunk by chunk with several reads in flight; its sha256. ArchiveCopyFailed when it comes short."""
    digest = hashlib.sha256()

    async def read(offset: int) -> bytes:
        result = await agent_link.call(
            platform,
            server.node_id,
            "backup_read",
            server.id,
            wire.BackupReadParams(backup_id=token, offset=offset),
        )
        return base64.b64decode(result["data"])

    async def chunks() -> AsyncIterator[bytes]:
        copied = 0
        async for data in read_ahead(read, size):
            digest.update(data)
            copied += len(data)
            yield data
        if copied != size:
            raise ArchiveCopyFailed("the node's archive ended early")

    stored = await platform.storage.put(key, chunks(), content_type=CONTENT_TYPE, max_bytes=limit)
    if stored.size != size:
        raise ArchiveCopyFailed("the archive copied from the node is not whole")
    return digest.hexdigest()


async def make_backup(job: JobContext, payload: dict[str, Any]) -> None:
    """Job `panel.backup_make`: archive on the node, copy into storage, verify, prune (see the module)."""
    platform = job.platform
    settings = platform.app_settings(PanelSettings)
    loaded = await _load(platform, uuid.UUID(payload["backup_id"]))
    if loaded is None:
        return
    backup, server = loaded
    if backup.status not in ("pending", "running"):
        return
    await _set(platform, backup.id, status="running")
    key = storage_key(server.id, backup.id)
    token = agent_backup_id(backup.id)
    timeout = settings.file_operation_timeout
    try:
        await _progress(job, backup, "make", 0.05, "archiving on the node")
        made = await agent_link.call(
            platform,
            server.node_id,
            "backup_make",
            server.id,
            wire.BackupMakeParams(backup_id=token, ignore=backup.ignore),
            timeout=timeout,
        )
        size, sha256 = int(made["size"]), str(made["sha256"])
        await _progress(job, backup, "make", 0.3, "copying into storage")
        limit = min(parse_size(settings.backup_limit), 1 << 62)
        if await copy_archive_to_storage(platform, server, token, key, size, limit) != sha256:
            raise BackupFailed("the archive copied from the node does not match its sha256")
        with contextlib.suppress(agent_link.AgentRefused, agent_link.NodeOffline, agent_link.AgentTimeout):
            await agent_link.call(
                platform, server.node_id, "backup_drop", server.id, wire.BackupDropParams(backup_id=token)
            )
        await _progress(job, backup, "make", 0.7, "verifying: test restore into a scratch folder")
        verified = await verify(platform, key, sha256, settings)
        if verified.digest != made["digest"]:
            raise BackupFailed("the test restore does not hold what was archived")
    except Exception as error:
        reason = _reason(error)
        logger.warning(
            "panel_backup_failed", backup_id=str(backup.id), server_id=str(server.id), reason=reason
        )
        with contextlib.suppress(Exception):
            await platform.storage.delete(key)
        with contextlib.suppress(Exception):
            await agent_link.call(
                platform, server.node_id, "backup_drop", server.id, wire.BackupDropParams(backup_id=token)
            )
        await _finish(platform, backup, "failed", reason)
        return
    await _finish(
        platform,
        backup,
        "ok",
        None,
        storage_key=key,
        size=size,
        sha256=sha256,
        digest=str(made["digest"]),
        files=int(made["files"]),
        bytes=int(made["bytes"]),
        verified_at=utcnow(),
    )
    await prune(platform, server.id, settings.backup_retention)


def _reason(error: Exception) -> str:
    if isinstance(error, agent_link.AgentRefused | BackupFailed | ArchiveCopyFailed):
        return str(error)[:500]
    if isinstance(error, archives.ArchiveRefused):
        return f"the test restore refused the archive: {error}"[:500]
    if hasattr(error, "message"):
        return str(error.message)[:500]
    return f"{type(error).__name__}: {error}"[:500]


async def verify(
    platform: AppContext, key: str, sha256: str, settings: PanelSettings
) -> archives.TreeSummary:
    """Read the stored backup back into a scratch folder of the panel and summarise what came out (the
    sha256 of the stored bytes must match too)."""
    scratch_root = platform.data_dir / "panel" / "scratch"
    await asyncio.to_thread(scratch_root.mkdir, mode=0o700, parents=True, exist_ok=True)
    scratch = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="verify-", dir=scratch_root))
    archive = scratch / "backup.tar.gz"
    try:
        digest = hashlib.sha256()
        _, body = await platform.storage.get(key)
        try:
            with await asyncio.to_thread(archive.open, "wb") as target:
                async for chunk in body:
                    digest.update(chunk)
                    await asyncio.to_thread(target.write, chunk)
        finally:
            await body.aclose()
        if digest.hexdigest() != sha256:
            raise BackupFailed("the stored backup does not match its sha256")
        folder = scratch / "restored"
        await asyncio.to_thread(folder.mkdir, mode=0o700)
        limits = archives.Limits(
            max_entries=max(settings.archive_max_entries, 1_000_000),
            max_bytes=1 << 50,
            max_ratio=max(settings.archive_max_ratio, 10_000),
        )
        return await asyncio.to_thread(archives.extract, archive, "tar.gz", folder, limits)
    finally:
        await asyncio.to_thread(archives.remove_tree, scratch)


async def _set(platform: AppContext, backup_id: uuid.UUID, **fields: Any) -> None:
    async with platform.database.transaction() as session:
        row = await session.get(PanelBackup, backup_id)
        if row is not None:
            for name, value in fields.items():
                setattr(row, name, value)


async def _finish(
    platform: AppContext, backup: PanelBackup, status: str, error: str | None, **fields: Any
) -> None:
    async with platform.database.transaction() as session:
        row = await session.get(PanelBackup, backup.id)
        if row is None:
            return
        row.status, row.error, row.completed_at = status, error, utcnow()
        for name, value in fields.items():
            setattr(row, name, value)
        audit.record(
            session,
            audit.SYSTEM,
            f"panel.server.backup.{'made' if status == 'ok' else 'failed'}",
            resource_type=SERVER_RESOURCE,
            resource_id=row.server_id,
            backup_id=str(row.id),
            **({"error": error} if error else {"sha256": row.sha256, "size": row.size}),
        )
        publish(session, state_topic(row.server_id), _event(row, "make", status, 1.0, error))


async def prune(platform: AppContext, server_id: uuid.UUID, keep: int) -> int:
    """Delete the oldest unlocked `ok` backups of the server past `keep` (0: keep all)."""
    if keep <= 0:
        return 0
    async with platform.database.transaction() as session:
        backups = [b for b in await repository.list_backups(session, server_id) if b.status == "ok"]
        doomed = [b for b in backups[keep:] if not b.locked]
        keys = [b.storage_key for b in doomed if b.storage_key]
        for backup in doomed:
            await session.delete(backup)
            audit.record(
                session,
                audit.SYSTEM,
                "panel.server.backup.prune",
                resource_type=SERVER_RESOURCE,
                resource_id=server_id,
                backup_id=str(backup.id),
                name=backup.name,
            )
            publish(session, state_topic(server_id), _event(backup, "prune", "deleted"))
    for key in keys:
        await platform.storage.delete(key)
    return len(doomed)


async def restore_backup(job: JobContext, payload: dict[str, Any]) -> None:
    """Job `panel.backup_restore`: push the stored backup to the node, which checks and swaps it in."""
    platform = job.platform
    settings = platform.app_settings(PanelSettings)
    loaded = await _load(platform, uuid.UUID(payload["backup_id"]))
    if loaded is None:
        return
    backup, server = loaded
    token = f"r{secrets.token_hex(12)}"
    error: str | None = None
    try:
        if backup.storage_key is None or backup.sha256 is None:
            raise BackupFailed("the backup has no stored archive")
        await _progress(job, backup, "restore", 0.05, "sending the backup to the node")
        _, body = await platform.storage.get(backup.storage_key)
        offset = 0
        try:
            pending = bytearray()
            async for piece in body:
                pending += piece
                while len(pending) >= wire.CHUNK_BYTES:
                    await _push(platform, server, token, offset, bytes(pending[: wire.CHUNK_BYTES]))
                    offset += wire.CHUNK_BYTES
                    del pending[: wire.CHUNK_BYTES]
            if pending or offset == 0:
                await _push(platform, server, token, offset, bytes(pending))
        finally:
            await body.aclose()
        await _progress(job, backup, "restore", 0.6, "restoring on the node")
        await agent_link.call(
            platform,
            server.node_id,
            "backup_restore",
            server.id,
            wire.BackupRestoreParams(
                backup_id=token,
                sha256=backup.sha256,
                max_entries=max(settings.archive_max_entries, 1_000_000),
                max_bytes=1 << 50,
                max_ratio=max(settings.archive_max_ratio, 10_000),
                quota_bytes=0,
            ),
            timeout=settings.file_operation_timeout,
        )
    except Exception as failure:
        error = _reason(failure)
        logger.warning("panel_backup_restore_failed", backup_id=str(backup.id), reason=error)
        with contextlib.suppress(Exception):
            await agent_link.call(
                platform, server.node_id, "backup_drop", server.id, wire.BackupDropParams(backup_id=token)
            )
    async with platform.database.transaction() as session:
        row = await repository.get_server(session, server.id)
        if row is not None and row.status == "restoring":
            row.status = "installed"
        stored_backup = await session.get(PanelBackup, backup.id)
        if stored_backup is not None and error is None:
            stored_backup.restored_at = utcnow()
        audit.record(
            session,
            audit.SYSTEM,
            "panel.server.backup.restored" if error is None else "panel.server.backup.restore_failed",
            resource_type=SERVER_RESOURCE,
            resource_id=server.id,
            backup_id=str(backup.id),
            **({"error": error} if error else {}),
        )
        publish(
            session,
            state_topic(server.id),
            _event(backup, "restore", "ok" if error is None else "failed", 1.0, error),
        )


async def _push(platform: AppContext, server: PanelServer, token: str, offset: int, data: bytes) -> None:
    await agent_link.call(
        platform,
        server.node_id,
        "backup_push",
        server.id,
        wire.BackupPushParams(backup_id=token, offset=offset, data=base64.b64encode(data).decode()),
    )


JOBS = (
    JobSpec(MAKE_JOB, make_backup, max_attempts=1, timeout=4 * 3600, concurrency=2),
    JobSpec(RESTORE_JOB, restore_backup, max_attempts=1, timeout=4 * 3600, concurrency=2),
)
