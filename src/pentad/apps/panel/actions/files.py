"""The file manager: a server's folder on its node, read and changed through the node's agent.

The panel decides who may (each verb needs its Pterodactyl key on the server: `file.read` to list,
`file.read-content` to read and download, `file.create` to upload and make folders, `file.update` to write
and rename/move, `file.delete`, `file.archive` to make and extract archives), checks the paths it is given
(no `..`, no absolute path, no NUL or backslash: 400 `path_refused` before the agent is asked), and relays
the call; the agent (pentad.agent.files) does the work confined to the server's folder, with the server's
disk limit (`disk_mb`) enforced as the bytes are written. Bytes cross the link in chunks of
wire.CHUNK_BYTES, so uploads and downloads stream: neither side holds a whole file.

No transaction is held while the agent works (power.release_database); each change is recorded in the
audit log (`panel.server.file.<verb>`, resource the server) with the request's commit.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from pentad.apps.panel import agent_link, repository
from pentad.apps.panel.actions.context import PanelContext
from pentad.apps.panel.actions.power import release_database
from pentad.apps.panel.chunks import read_ahead
from pentad.apps.panel.exceptions import ServerTransferring
from pentad.apps.panel.permissions import SERVER_PERMISSIONS, SERVER_RESOURCE
from pentad.core import audit
from pentad.core.auth.permissions import Permission
from pentad.core.errors import AppError, BadRequest, Conflict, NotFound, PayloadTooLarge, PermissionDenied
from pentad.panel_wire import archives, paths
from pentad.panel_wire import protocol as wire

FILE_READ = SERVER_PERMISSIONS["file.read"]
FILE_READ_CONTENT = SERVER_PERMISSIONS["file.read-content"]
FILE_CREATE = SERVER_PERMISSIONS["file.create"]
FILE_UPDATE = SERVER_PERMISSIONS["file.update"]
FILE_DELETE = SERVER_PERMISSIONS["file.delete"]
FILE_ARCHIVE = SERVER_PERMISSIONS["file.archive"]
MiB = 1024 * 1024


# --- errors ---


class PathRefused(BadRequest):
    code = "path_refused"


class FileNotFound(NotFound):
    code = "file_not_found"


class FileExists(Conflict):
    code = "file_exists"


class DiskQuotaExceeded(Conflict):
    code = "disk_quota"


class ArchiveRefused(BadRequest):
    code = "archive_refused"


class FileTooLarge(PayloadTooLarge):
    code = "file_too_large"


class FileDenied(PermissionDenied):
    code = "file_denied"


AGENT_ERRORS: dict[str, type[AppError]] = {
    "path_refused": PathRefused,
    "not_found": FileNotFound,
    "exists": FileExists,
    "not_a_folder": PathRefused,
    "not_a_file": PathRefused,
    "disk_quota": DiskQuotaExceeded,
    "archive_refused": ArchiveRefused,
    "too_large": FileTooLarge,
}
"""The agent's refusals (pentad.agent.files) as the API's errors; others stay 409 agent_refused."""


def check_path(path: str, *, root_allowed: bool = True) -> str:
    """The path as the agent will read it ("a/b"), or PathRefused (400) naming why."""
    try:
        parts = paths.parts_of(path)
    except paths.PathRefused as refused:
        raise PathRefused(
            f"The path {path[:200]!r} is refused: {refused.reason}.", reason=refused.reason
        ) from None
    if not parts and not root_allowed:
        raise PathRefused("The server's folder itself cannot be the target.", reason="is_root")
    return "/".join(parts)


# --- views ---


class FileEntry(BaseModel):
    name: str
    path: str = Field(description="relative to the server's folder")
    kind: Literal["file", "folder", "symlink", "other"] = Field(
        description="symlinks are shown, never followed: reading or writing through one is refused"
    )
    size: int
    mode: str = Field(description="permission bits, octal, e.g. 0644")
    modified_at: datetime


class FileListing(BaseModel):
    server_id: uuid.UUID
    path: str
    entries: list[FileEntry]


class ArchiveMade(BaseModel):
    path: str = Field(description="the new archive, inside the server's folder")
    files: int
    bytes: int = Field(description="bytes of the files archived (before compression)")
    skipped: int = Field(description="symlinks and special files left out")


class Extracted(BaseModel):
    path: str = Field(description="the folder extracted into")
    files: int
    bytes: int


class Uploaded(BaseModel):
    path: str
    size: int


# --- the link ---


class _Target:
    __slots__ = ("denylist", "node_id", "quota", "server_id")

    def __init__(self, server_id: uuid.UUID, node_id: uuid.UUID, quota: int, denylist: list[str]) -> None:
        self.server_id, self.node_id, self.quota, self.denylist = server_id, node_id, quota, denylist


async def _target(
    context: PanelContext, server_id: uuid.UUID, permission: Permission, *names: str
) -> _Target:
    """The server (the caller holding `permission` on it), with `names` checked against its template's
    `file_denylist` (an egg's files no one may read or change through the file manager: 403 file_denied)."""
    access = await context.access(server_id, permission)
    server = access.server
    if server.status == "transferring":
        raise ServerTransferring()  # what is written now might be left behind on the source node
    template = await repository.get_template(context.session, server.template_id)
    denylist = list(template.file_denylist or []) if template is not None else []
    target = _Target(server.id, server.node_id, max(server.disk_mb, 0) * MiB, denylist)
    for name in names:
        if denylist and archives.ignored(name, denylist):
            raise FileDenied(f"{name[:200]!r} is on the template's deny list.", path=name[:200])
    await release_database(context.session)
    return target


async def ask(
    context: PanelContext,
    target: _Target,
    method: wire.CallMethod,
    params: wire.Frame,
    *,
    long: bool = False,
) -> dict[str, Any]:
    """Call the agent; its file refusals become the API's errors."""
    timeout = context.settings.file_operation_timeout if long else None
    try:
        return await agent_link.call(
            context.platform, target.node_id, method, target.server_id, params, timeout=timeout
        )
    except agent_link.AgentRefused as refused:
        error = AGENT_ERRORS.get(refused.agent_code)
        if error is None:
            raise
        message = refused.message.removeprefix("The node's agent refused: ")
        raise error(message[:500]) from None


def _record(context: PanelContext, target: _Target, verb: str, **details: Any) -> None:
    audit.record(
        context.session,
        context.audit_actor,
        f"panel.server.file.{verb}",
        resource_type=SERVER_RESOURCE,
        resource_id=target.server_id,
        **details,
    )


# --- reading ---


async def list_files(context: PanelContext, server_id: uuid.UUID, path: str) -> FileListing:
    folder = check_path(path)
    target = await _target(context, server_id, FILE_READ)
    result = await ask(context, target, "file_list", wire.FileListParams(path=folder))
    entries = [
        FileEntry(
            name=entry["name"],
            path=f"{folder}/{entry['name']}" if folder else entry["name"],
            kind=entry["kind"],
            size=entry["size"],
            mode=f"{entry['mode']:04o}",
            modified_at=datetime.fromtimestamp(entry["modified_at"], UTC),
        )
        for entry in result.get("entries", [])
    ]
    return FileListing(server_id=target.server_id, path=folder, entries=entries)


async def _chunk(context: PanelContext, target: _Target, path: str, offset: int) -> tuple[bytes, int]:
    result = await ask(context, target, "file_read", wire.FileReadParams(path=path, offset=offset))
    return base64.b64decode(result["data"]), int(result["size"])


async def read_file(context: PanelContext, server_id: uuid.UUID, path: str) -> bytes:
    """The whole file, for the editor (at most `file_read_max_bytes`: 413 file_too_large beyond)."""
    name = check_path(path, root_allowed=False)
    target = await _target(context, server_id, FILE_READ_CONTENT, name)
    limit = context.settings.file_read_max_bytes
    data, size = await _chunk(context, target, name, 0)
    if size > limit:
        raise FileTooLarge(f"The file has {size} bytes; the editor opens files up to {limit}: download it.")
    received = bytearray(data)

    async def read(offset: int) -> bytes:
        more, _ = await _chunk(context, target, name, offset)
        return more

    if data:
        async for more in read_ahead(read, size, start=len(data)):
            received += more
    _record(context, target, "read", path=name)
    return bytes(received[:limit])


async def download_file(
    context: PanelContext, server_id: uuid.UUID, path: str
) -> tuple[str, int, AsyncIterator[bytes]]:
    """The file's name, size and bytes (streamed from the node chunk by chunk while they are sent)."""
    name = check_path(path, root_allowed=False)
    target = await _target(context, server_id, FILE_READ_CONTENT, name)
    first, size = await _chunk(context, target, name, 0)
    _record(context, target, "download", path=name)

    async def read(offset: int) -> bytes:
        data, _ = await _chunk(context, target, name, offset)
        return data

    async def stream() -> AsyncIterator[bytes]:
        if not first:
            return
        yield first
        async for data in read_ahead(read, size, start=len(first)):
            yield data

    return name.rsplit("/", 1)[-1], size, stream()


# --- writing ---


async def _rechunk(stream: AsyncIterator[bytes], limit: int) -> AsyncIterator[tuple[bytes, bool]]:
    """The stream in pieces of wire.CHUNK_BYTES, each with `last`; FileTooLarge past `limit` bytes."""
    buffer = bytearray()
    total = 0
    async for piece in stream:
        total += len(piece)
        if total > limit:
            raise FileTooLarge(f"A file may be at most {limit} bytes.")
        buffer += piece
        while len(buffer) > wire.CHUNK_BYTES:
            yield bytes(buffer[: wire.CHUNK_BYTES]), False
            del buffer[: wire.CHUNK_BYTES]
    yield bytes(buffer), True


async def _send_file(
    context: PanelContext, target: _Target, name: str, stream: AsyncIterator[bytes], limit: int
) -> int:
    upload_id = secrets.token_hex(16)
    offset = 0
    async for chunk, last in _rechunk(stream, limit):
        params = wire.FileUploadParams(
            upload_id=upload_id,
            path=name,
            offset=offset,
            data=base64.b64encode(chunk).decode(),
            final=last,
            quota_bytes=target.quota,
        )
        await ask(context, target, "file_upload", params)
        offset += len(chunk)
    return offset


async def write_file(
    context: PanelContext, server_id: uuid.UUID, path: str, stream: AsyncIterator[bytes]
) -> Uploaded:
    """Replace or create the file with the editor's content (`file.update`)."""
    name = check_path(path, root_allowed=False)
    target = await _target(context, server_id, FILE_UPDATE, name)
    size = await _send_file(context, target, name, stream, context.settings.file_read_max_bytes)
    _record(context, target, "write", path=name, size=size)
    return Uploaded(path=name, size=size)


async def upload_file(
    context: PanelContext, server_id: uuid.UUID, path: str, stream: AsyncIterator[bytes]
) -> Uploaded:
    """Upload a file (`file.create`): streamed to the node, placed only once whole and within the disk
    limit; a refused upload leaves nothing in the server's folder."""
    name = check_path(path, root_allowed=False)
    target = await _target(context, server_id, FILE_CREATE, name)
    size = await _send_file(context, target, name, stream, context.settings.upload_max_bytes)
    _record(context, target, "upload", path=name, size=size)
    return Uploaded(path=name, size=size)


async def make_folder(context: PanelContext, server_id: uuid.UUID, path: str) -> None:
    name = check_path(path, root_allowed=False)
    target = await _target(context, server_id, FILE_CREATE)
    await ask(context, target, "file_mkdir", wire.FileMkdirParams(path=name))
    _record(context, target, "mkdir", path=name)


async def rename_file(context: PanelContext, server_id: uuid.UUID, source: str, destination: str) -> None:
    """Rename or move (`file.update`); the destination must not exist."""
    old, new = check_path(source, root_allowed=False), check_path(destination, root_allowed=False)
    target = await _target(context, server_id, FILE_UPDATE, old, new)
    await ask(context, target, "file_rename", wire.FileRenameParams(source=old, target=new))
    _record(context, target, "rename", source=old, destination=new)


async def delete_files(context: PanelContext, server_id: uuid.UUID, names: list[str]) -> int:
    checked = [check_path(name, root_allowed=False) for name in names]
    target = await _target(context, server_id, FILE_DELETE, *checked)
    result = await ask(context, target, "file_delete", wire.FileDeleteParams(paths=checked), long=True)
    _record(context, target, "delete", paths=checked[:100])
    return int(result.get("deleted", 0))


async def make_archive(
    context: PanelContext,
    server_id: uuid.UUID,
    folder: str,
    names: list[str],
    fmt: Literal["tar.gz", "tar", "zip"],
) -> ArchiveMade:
    base = check_path(folder)
    checked = [check_path(name, root_allowed=False) for name in names]
    target = await _target(context, server_id, FILE_ARCHIVE)
    params = wire.FileArchiveParams(folder=base, names=checked, format=fmt, quota_bytes=target.quota)
    result = await ask(context, target, "file_archive", params, long=True)
    made = ArchiveMade.model_validate(result)
    _record(context, target, "archive", path=made.path, files=made.files)
    return made


async def extract_archive(context: PanelContext, server_id: uuid.UUID, path: str, folder: str) -> Extracted:
    """Extract an archive of the folder into `folder`: every entry checked first (no `..`, absolute
    names, links or special files; entry count, size and ratio capped), nothing written if one is refused
    or the result would pass the disk limit."""
    name = check_path(path, root_allowed=False)
    base = check_path(folder)
    target = await _target(context, server_id, FILE_ARCHIVE)
    settings = context.settings
    params = wire.FileExtractParams(
        path=name,
        folder=base,
        max_entries=settings.archive_max_entries,
        max_bytes=settings.upload_max_bytes * 10,
        max_ratio=settings.archive_max_ratio,
        quota_bytes=target.quota,
    )
    result = await ask(context, target, "file_extract", params, long=True)
    done = Extracted.model_validate(result)
    _record(context, target, "extract", path=name, folder=base, files=done.files)
    return done
