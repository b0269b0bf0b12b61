"""The agent's file manager and backups: every read and write inside a server's folder
(<data>/servers/<id>/), confined with pentad.panel_wire.paths (each component opened with O_NOFOLLOW below
the root's descriptor) and archives checked with pentad.panel_wire.archives.

Nothing half-written ever appears in a server's folder: uploads, archives and extractions are written to
<data>/run/<id>/staging/ (the agent's own 0700 folder on the same file system, out of the game's reach),
checked against the server's disk limit while they grow, and renamed into place once whole. The disk
limit (`quota_bytes`, sent by the panel with each call; 0 = none) is enforced at write time: a write that
would take the folder past it is refused (`disk_quota`) and its staged bytes removed.

Backups are tar.gz archives of the whole folder (minus the ignore patterns) made in
<data>/run/<id>/backups/; the panel reads them in chunks into its storage and drops them. A restore is
pushed the same way, checked against its sha256, extracted into staging and only then swapped in for the
folder's content (the server must be offline: the link checks).

Every method is blocking (the link runs them in a thread) and raises AgentError with one of the codes
path_refused, not_found, exists, not_a_folder, not_a_file, disk_quota, archive_refused, too_large,
bad_offset, unknown_upload, checksum_mismatch.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pentad.agent import sandbox
from pentad.agent.runtime import AgentError
from pentad.agent.settings import AgentSettings
from pentad.agent.stats import folder_bytes
from pentad.panel_wire import archives, paths
from pentad.panel_wire import protocol as wire
from pentad.panel_wire.archives import ArchiveRefused
from pentad.panel_wire.paths import PathRefused
from pentad.panel_wire.serverspec import SERVER_ID

TOKEN = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
STALE_SECONDS = 6 * 3600
"""Staged uploads untouched for this long are removed (an upload the panel abandoned)."""


@dataclass(frozen=True)
class EntryInfo:
    name: str
    kind: str  # file | folder | symlink | other
    size: int
    mode: int
    modified_at: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "size": self.size,
            "mode": self.mode,
            "modified_at": self.modified_at,
        }


@contextlib.contextmanager
def refusals() -> Iterator[None]:
    """PathRefused, ArchiveRefused and OSErrors as AgentErrors the panel shows."""
    try:
        yield
    except AgentError:
        raise
    except PathRefused as refused:
        raise AgentError("path_refused", f"{refused.path[:300]!r}: {refused.reason}") from None
    except ArchiveRefused as refused:
        code = "disk_quota" if refused.reason == "disk_quota" else "archive_refused"
        raise AgentError(code, f"{refused.reason}: {refused.detail}") from None
    except FileNotFoundError as error:
        raise AgentError("not_found", f"{error.filename or 'the path'} does not exist") from None
    except FileExistsError:
        raise AgentError("exists", "the target exists") from None
    except NotADirectoryError:
        raise AgentError("not_a_folder", "a component of the path is not a folder") from None
    except IsADirectoryError:
        raise AgentError("not_a_file", "the path is a folder") from None
    except OSError as error:
        if error.errno in (errno.ELOOP,):
            raise AgentError("path_refused", "symlink") from None
        if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise AgentError("exists", "the target exists") from None
        if error.errno == errno.EINVAL:
            raise AgentError("path_refused", "a folder cannot move into itself") from None
        if error.errno == errno.ENOSPC:
            raise AgentError("disk_quota", "the node's disk is full") from None
        raise AgentError("io_error", f"{type(error).__name__}: {error.strerror}") from None


class ServerFiles:
    """File operations on the servers of one agent."""

    def __init__(self, settings: AgentSettings) -> None:
        self.settings = settings
        self._used: dict[str, int] = {}
        """Per upload in progress: the folder's bytes without the file it replaces (for the disk limit)."""

    # ------------------------------------------------------------------ places

    def root(self, server_id: str) -> Path:
        if not SERVER_ID.match(server_id):
            raise AgentError("unknown_server", "not a server id")
        folder = self.settings.servers_dir / server_id
        if not folder.is_dir():
            folder.mkdir(mode=0o750, parents=True, exist_ok=True)
            folder.chmod(0o750)
            owner = self.owner(server_id)
            if owner is not None:
                os.chown(folder, *owner)
        return folder

    def owner(self, server_id: str) -> tuple[int, int] | None:
        who = sandbox.identity(self.settings, server_id)
        return (who.uid, who.gid) if who.uid is not None and who.gid is not None else None

    def work_dir(self, server_id: str, kind: str) -> Path:
        """<data>/run/<id>/<kind>/ (staging, uploads, backups): the agent's, 0700."""
        folder = self.settings.run_dir / server_id / kind
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return folder

    def usage(self, server_id: str) -> int:
        return folder_bytes(self.root(server_id))

    def _chown_tree(self, server_id: str, folder: Path) -> None:
        owner = self.owner(server_id)
        if owner is None:
            return
        os.chown(folder, *owner, follow_symlinks=False)
        for _, subfolders, files, dir_fd in os.fwalk(folder, follow_symlinks=False):
            for name in subfolders + files:
                os.chown(name, *owner, dir_fd=dir_fd, follow_symlinks=False)

    # ------------------------------------------------------------------ reading

    def listing(self, server_id: str, path: str) -> list[EntryInfo]:
        with refusals(), paths.open_dir(self.root(server_id), paths.parts_of(path), path=path) as fd:
            found = []
            for name in sorted(os.listdir(fd)):
                info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                kind = (
                    "folder"
                    if stat.S_ISDIR(info.st_mode)
                    else "file"
                    if stat.S_ISREG(info.st_mode)
                    else "symlink"
                    if stat.S_ISLNK(info.st_mode)
                    else "other"
                )
                found.append(
                    EntryInfo(name, kind, info.st_size, stat.S_IMODE(info.st_mode), round(info.st_mtime, 3))
                )
        return found

    def read(self, server_id: str, path: str, offset: int, length: int) -> tuple[bytes, int]:
        """`length` bytes from `offset` and the file's size."""
        with refusals():
            fd = paths.open_beneath(self.root(server_id), path)
            with os.fdopen(fd, "rb") as file:
                size = os.fstat(file.fileno()).st_size
                file.seek(offset)
                return file.read(length), size

    # ------------------------------------------------------------------ writing

    def upload(
        self, server_id: str, upload_id: str, path: str, offset: int, data: bytes, *, final: bool, quota: int
    ) -> int:
        """Append a chunk to the staged upload `upload_id` (offset = what it holds so far), checking the
        disk limit; with `final`, move it into place at `path`. Returns the bytes staged."""
        if not TOKEN.match(upload_id):
            raise AgentError("unknown_upload", "not an upload id")
        root = self.root(server_id)
        with refusals():
            parts = paths.parts_of(path)
            if not parts:
                raise PathRefused(path, "is_root")
            uploads = self.work_dir(server_id, "uploads")
            if offset == 0:
                self._sweep(uploads)
            staged = uploads / f"{upload_id}.part"
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
            if offset == 0:
                flags |= os.O_TRUNC
            elif not staged.exists():
                raise AgentError("unknown_upload", "no such upload (it expired or was refused)")
            try:
                with os.fdopen(os.open(staged, flags, 0o600), "ab") as part:
                    if part.tell() != offset:
                        raise AgentError("bad_offset", f"the upload holds {part.tell()} bytes, not {offset}")
                    part.write(data)
                    size = part.tell()
                key = f"{server_id}/{upload_id}"
                if quota > 0:
                    # the folder is walked once per upload (and again before placing it), not per chunk
                    if final or offset == 0 or key not in self._used:
                        self._used[key] = self.usage(server_id) - self._existing_size(root, parts)
                    if self._used[key] + size > quota:
                        raise AgentError(
                            "disk_quota",
                            f"the server's disk limit ({quota // (1024 * 1024)} MiB) would be exceeded",
                        )
                if final:
                    self._used.pop(key, None)
                    self._place(server_id, staged, parts, path)
            except BaseException:
                self._used.pop(f"{server_id}/{upload_id}", None)
                staged.unlink(missing_ok=True)
                raise
            return size

    def write(self, server_id: str, path: str, data: bytes, *, quota: int) -> int:
        """Replace (or create) the file with `data` (a small file: one call)."""
        upload_id = secrets.token_hex(12)
        return self.upload(server_id, upload_id, path, 0, data, final=True, quota=quota)

    def _sweep(self, folder: Path) -> None:
        now = time.time()
        for entry in folder.iterdir():
            with contextlib.suppress(OSError):
                if now - entry.lstat().st_mtime > STALE_SECONDS:
                    archives.remove_tree(entry) if entry.is_dir() else entry.unlink()

    def _existing_size(self, root: Path, parts: list[str]) -> int:
        try:
            with paths.open_dir(root, parts[:-1]) as dir_fd:
                info = os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError, PathRefused):
            return 0
        return info.st_size if stat.S_ISREG(info.st_mode) else 0

    def _place(self, server_id: str, staged: Path, parts: list[str], path: str) -> None:
        """Rename the staged file to root/parts (replacing a regular, singly linked file there)."""
        owner = self.owner(server_id)
        with paths.open_dir(self.root(server_id), parts[:-1], create=True, path=path, owner=owner) as dir_fd:
            mode = 0o644
            try:
                info = os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                info = None
            if info is not None:
                if stat.S_ISDIR(info.st_mode):
                    raise AgentError("not_a_file", f"{path[:300]!r} is a folder")
                if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
                    raise PathRefused(path, "symlink" if stat.S_ISLNK(info.st_mode) else "not_a_file")
                mode = stat.S_IMODE(info.st_mode)
                owner = (info.st_uid, info.st_gid)
            os.chmod(staged, mode)
            if owner is not None:
                os.chown(staged, *owner)
            os.rename(staged, parts[-1], dst_dir_fd=dir_fd)

    def mkdir(self, server_id: str, path: str) -> None:
        with refusals():
            parts = paths.parts_of(path)
            if not parts:
                raise PathRefused(path, "is_root")
            root = self.root(server_id)
            with paths.open_dir(root, parts[:-1], path=path) as dir_fd:
                os.mkdir(parts[-1], 0o755, dir_fd=dir_fd)
                owner = self.owner(server_id)
                if owner is not None:
                    os.chown(parts[-1], *owner, dir_fd=dir_fd, follow_symlinks=False)

    def rename(self, server_id: str, source: str, target: str) -> None:
        """Rename or move `source` to `target` (both inside the folder; the target must not exist). A
        symlink is moved as the link it is, never followed."""
        with refusals():
            root = self.root(server_id)
            src, dst = paths.parts_of(source), paths.parts_of(target)
            if not src or not dst:
                raise PathRefused(source if not src else target, "is_root")
            with (
                paths.open_dir(root, src[:-1], path=source) as src_fd,
                paths.open_dir(root, dst[:-1], path=target) as dst_fd,
            ):
                os.stat(src[-1], dir_fd=src_fd, follow_symlinks=False)  # not_found
                with contextlib.suppress(FileNotFoundError):
                    os.stat(dst[-1], dir_fd=dst_fd, follow_symlinks=False)
                    raise FileExistsError(target)
                os.rename(src[-1], dst[-1], src_dir_fd=src_fd, dst_dir_fd=dst_fd)

    def delete(self, server_id: str, targets: list[str]) -> int:
        """Delete files and folders (folders with what they hold; a symlink is removed, not followed)."""
        removed = 0
        with refusals():
            root = self.root(server_id)
            for target in targets:
                parts = paths.parts_of(target)
                if not parts:
                    raise PathRefused(target, "is_root")
                with paths.open_dir(root, parts[:-1], path=target) as dir_fd:
                    info = os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False)
                    if stat.S_ISDIR(info.st_mode):
                        shutil.rmtree(parts[-1], dir_fd=dir_fd)
                    else:
                        os.unlink(parts[-1], dir_fd=dir_fd)
                removed += 1
        return removed

    # ------------------------------------------------------------------ archives

    def archive(
        self, server_id: str, folder: str, names: list[str], fmt: archives.ArchiveFormat, *, quota: int
    ) -> dict[str, Any]:
        """Archive `names` (inside `folder`; [] = all of it) into `folder`/archive-<time>.<fmt>, entries
        named relative to `folder` (extracting it there puts them back where they were)."""
        root = self.root(server_id)
        with refusals():
            base = paths.parts_of(folder)
            selection = ["/".join([*base, *paths.parts_of(name)]) for name in names] or ["/".join(base)]
            name = f"archive-{time.strftime('%Y-%m-%d_%H%M%S')}-{secrets.token_hex(2)}.{fmt}"
            target = "/".join([*base, name])
            staged = self.work_dir(server_id, "staging") / f"{secrets.token_hex(8)}.{fmt}"
            room = quota - self.usage(server_id) if quota > 0 else None
            if room is not None and room <= 0:
                raise AgentError("disk_quota", "the server is at its disk limit")
            try:
                with staged.open("wb") as output:
                    summary = archives.create(
                        root,
                        [item for item in selection if item] or [],
                        output,
                        fmt,
                        max_output=room,
                        base="/".join(base),
                    )
                self._place(server_id, staged, [*base, name], target)
            finally:
                staged.unlink(missing_ok=True)
        return {"path": target, "files": summary.files, "bytes": summary.bytes, "skipped": summary.skipped}

    def extract(
        self, server_id: str, path: str, folder: str, limits: archives.Limits, *, quota: int
    ) -> dict[str, Any]:
        """Extract the archive at `path` into `folder` (merged with what is there: files replaced, folders
        kept), all or nothing: checked and written to staging first."""
        root = self.root(server_id)
        staging = self.work_dir(server_id, "staging") / secrets.token_hex(8)
        with refusals():
            dest = paths.parts_of(folder)
            fd = paths.open_beneath(root, path)
            with os.fdopen(fd, "rb") as source:
                head = source.read(512)
            fmt = archives.format_of(path, head)
            copy = staging.with_suffix(".archive")
            try:
                with os.fdopen(paths.open_beneath(root, path), "rb") as source, copy.open("wb") as target:
                    shutil.copyfileobj(source, target, archives.CHUNK)  # our copy: the game cannot swap it
                room = quota - self.usage(server_id) if quota > 0 else None
                if room is not None:
                    limits = archives.Limits(
                        limits.max_entries, limits.max_bytes, limits.max_ratio, quota_bytes=max(room, 0)
                    )
                staging.mkdir(mode=0o700)
                summary = archives.extract(copy, fmt, staging, limits)
                self._merge(server_id, staging, dest, folder)
            finally:
                copy.unlink(missing_ok=True)
                archives.remove_tree(staging)
        return {"path": folder, "files": summary.files, "bytes": summary.bytes}

    def _merge(self, server_id: str, staging: Path, dest: list[str], folder: str) -> None:
        """Move the staged tree into root/dest: checked first (a staged file may replace only a regular
        singly linked file, a staged folder only go into a folder), then renamed entry by entry."""
        root = self.root(server_id)
        self._chown_tree(server_id, staging)
        owner = self.owner(server_id)
        staged = [(path, info) for path, _, info in archives._walk(staging, "")]
        for path, info in staged:
            parts = [*dest, *path.split("/")]
            try:
                with paths.open_dir(root, parts[:-1], path=folder) as dir_fd:
                    there = os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if stat.S_ISDIR(info.st_mode) and not stat.S_ISDIR(there.st_mode):
                raise AgentError("exists", f"{'/'.join(parts)[:300]!r} exists and is not a folder")
            if stat.S_ISREG(info.st_mode) and (not stat.S_ISREG(there.st_mode) or there.st_nlink > 1):
                raise AgentError("exists", f"{'/'.join(parts)[:300]!r} exists and is not a plain file")
        for path, info in staged:
            parts = [*dest, *path.split("/")]
            if stat.S_ISDIR(info.st_mode):
                with paths.open_dir(root, parts, create=True, path=folder, owner=owner):
                    pass
            elif stat.S_ISREG(info.st_mode):
                with paths.open_dir(root, parts[:-1], create=True, path=folder, owner=owner) as dir_fd:
                    os.rename(staging / path, parts[-1], dst_dir_fd=dir_fd)

    # ------------------------------------------------------------------ backups

    def _backup_file(self, server_id: str, backup_id: str, suffix: str = "tar.gz") -> Path:
        if not TOKEN.match(backup_id):
            raise AgentError("bad_request", "not a backup id")
        return self.work_dir(server_id, "backups") / f"{backup_id}.{suffix}"

    def backup_make(self, server_id: str, backup_id: str, ignore: list[str]) -> dict[str, Any]:
        """Archive the whole folder (minus `ignore`) into the agent's backups folder: its size, sha256 and
        the digest of what it holds (archives.TreeSummary)."""
        root = self.root(server_id)
        target = self._backup_file(server_id, backup_id)
        with refusals():
            try:
                with target.open("wb") as output:
                    summary = archives.create(root, [], output, "tar.gz", ignore=ignore)
                digest = hashlib.sha256()
                with target.open("rb") as made:
                    while chunk := made.read(archives.CHUNK):
                        digest.update(chunk)
            except BaseException:
                target.unlink(missing_ok=True)
                raise
        return {
            "size": target.stat().st_size,
            "sha256": digest.hexdigest(),
            "files": summary.files,
            "folders": summary.folders,
            "bytes": summary.bytes,
            "skipped": summary.skipped,
            "digest": summary.digest,
        }

    def backup_read(self, server_id: str, backup_id: str, offset: int, length: int) -> tuple[bytes, int]:
        target = self._backup_file(server_id, backup_id)
        with refusals(), target.open("rb") as made:
            made.seek(offset)
            return made.read(length), target.stat().st_size

    def backup_drop(self, server_id: str, backup_id: str) -> None:
        for suffix in ("tar.gz", "restore"):
            self._backup_file(server_id, backup_id, suffix).unlink(missing_ok=True)

    def backup_push(self, server_id: str, backup_id: str, offset: int, data: bytes) -> int:
        """Append a chunk of a backup to restore (offset: what was pushed so far)."""
        target = self._backup_file(server_id, backup_id, "restore")
        with refusals():
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
            if offset == 0:
                flags |= os.O_TRUNC
            with os.fdopen(os.open(target, flags, 0o600), "ab") as part:
                if part.tell() != offset:
                    raise AgentError("bad_offset", f"the restore holds {part.tell()} bytes, not {offset}")
                part.write(data)
                return part.tell()

    def backup_restore(
        self, server_id: str, backup_id: str, sha256: str, limits: archives.Limits, *, quota: int
    ) -> dict[str, Any]:
        """Replace the folder's content with the pushed backup: checked against `sha256`, extracted into
        staging (refused as any archive would be), then the old content removed and the new moved in."""
        pushed = self._backup_file(server_id, backup_id, "restore")
        root = self.root(server_id)
        staging = self.work_dir(server_id, "staging") / secrets.token_hex(8)
        with refusals():
            try:
                digest = hashlib.sha256()
                with pushed.open("rb") as source:
                    while chunk := source.read(archives.CHUNK):
                        digest.update(chunk)
                if digest.hexdigest() != sha256:
                    raise AgentError("checksum_mismatch", "the pushed backup does not match its sha256")
                if quota > 0:
                    limits = archives.Limits(limits.max_entries, limits.max_bytes, limits.max_ratio, quota)
                staging.mkdir(mode=0o700)
                summary = archives.extract(pushed, "tar.gz", staging, limits)
                with paths.open_dir(root, []) as root_fd:
                    for name in os.listdir(root_fd):
                        info = os.stat(name, dir_fd=root_fd, follow_symlinks=False)
                        if stat.S_ISDIR(info.st_mode):
                            shutil.rmtree(name, dir_fd=root_fd)
                        else:
                            os.unlink(name, dir_fd=root_fd)
                self._merge(server_id, staging, [], "")
            finally:
                pushed.unlink(missing_ok=True)
                archives.remove_tree(staging)
        return {"files": summary.files, "bytes": summary.bytes, "digest": summary.digest}


def _limits(params: wire.ArchiveLimitsParams) -> archives.Limits:
    return archives.Limits(params.max_entries, params.max_bytes, params.max_ratio)


def _decode(data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except ValueError:
        raise AgentError("bad_request", "data is not base64") from None


def file_call(files: ServerFiles, server_id: str, params: wire.Frame) -> dict[str, Any]:
    """Do one file_* / backup_* call (blocking: the link runs it in a thread); its reply's result."""
    if isinstance(params, wire.FileListParams):
        return {"entries": [entry.as_dict() for entry in files.listing(server_id, params.path)]}
    if isinstance(params, wire.FileReadParams):
        data, size = files.read(server_id, params.path, params.offset, params.length)
        return {"data": base64.b64encode(data).decode(), "size": size}
    if isinstance(params, wire.FileUploadParams):
        staged = files.upload(
            server_id,
            params.upload_id,
            params.path,
            params.offset,
            _decode(params.data),
            final=params.final,
            quota=params.quota_bytes,
        )
        return {"size": staged}
    if isinstance(params, wire.FileRenameParams):
        files.rename(server_id, params.source, params.target)
        return {}
    if isinstance(params, wire.FileDeleteParams):
        return {"deleted": files.delete(server_id, list(params.paths))}
    if isinstance(params, wire.FileMkdirParams):
        files.mkdir(server_id, params.path)
        return {}
    if isinstance(params, wire.FileArchiveParams):
        return files.archive(
            server_id, params.folder, list(params.names), params.format, quota=params.quota_bytes
        )
    if isinstance(params, wire.FileExtractParams):
        return files.extract(server_id, params.path, params.folder, _limits(params), quota=params.quota_bytes)
    if isinstance(params, wire.BackupMakeParams):
        return files.backup_make(server_id, params.backup_id, list(params.ignore))
    if isinstance(params, wire.BackupReadParams):
        data, size = files.backup_read(server_id, params.backup_id, params.offset, params.length)
        return {"data": base64.b64encode(data).decode(), "size": size}
    if isinstance(params, wire.BackupDropParams):
        files.backup_drop(server_id, params.backup_id)
        return {}
    if isinstance(params, wire.BackupPushParams):
        return {"size": files.backup_push(server_id, params.backup_id, params.offset, _decode(params.data))}
    if isinstance(params, wire.BackupRestoreParams):
        return files.backup_restore(
            server_id, params.backup_id, params.sha256, _limits(params), quota=params.quota_bytes
        )
    raise AgentError("bad_request", f"{type(params).__name__} is not a file call")
