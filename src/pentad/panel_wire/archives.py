"""Archives (tar.gz, tar, zip) made from a confined root and extracted into a fresh folder, refusing anything
that could land outside it or blow up: entries with `..`, absolute names, symlinks, hard links, devices,
FIFOs, more than `max_entries` entries, more than `max_bytes` expanded, an expansion ratio over
`max_ratio`. Every entry is checked before the first byte is written (`plan`), and the bytes written are
counted again while extracting (a zip's declared sizes may lie), so a refused archive writes nothing
outside the caller's staging folder, which the caller removes.

`TreeSummary.digest` names a folder's content: sha256 over the sorted lines `d <path>` (folders) and
`f <path> <size> <sha256>` (regular files). `create` returns the summary of what it archived and
`summarize` that of a folder, so a backup restored into a scratch folder is proven equal to what was
archived. Symlinks and special files are never archived (they are counted in `skipped`).

Shared by the agent (file manager, backups) and the panel (backup verification): stdlib only.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import os
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO, Literal

from pentad.panel_wire import paths
from pentad.panel_wire.paths import PathRefused

ArchiveFormat = Literal["tar.gz", "tar", "zip"]
FORMATS: tuple[ArchiveFormat, ...] = ("tar.gz", "tar", "zip")
CHUNK = 1024 * 1024
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_ZIP_SYMLINK = 0o120000


class ArchiveRefused(ValueError):
    """An archive (or a tree to archive) refused: `reason` is a short machine word for the API's error
    (unsafe_path, link, special_file, too_many_entries, too_large, ratio, disk_quota, unreadable,
    unknown_format)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Limits:
    max_entries: int = 100_000
    max_bytes: int = 10 * 1024**3
    """Most bytes all entries may expand to."""
    max_ratio: int = 200
    """Largest expanded size / archive size."""
    quota_bytes: int | None = None
    """What the destination may still take (None: no quota); more is refused as disk_quota."""


@dataclass(frozen=True)
class Entry:
    path: str
    kind: Literal["file", "dir"]
    size: int


@dataclass
class TreeSummary:
    files: int = 0
    folders: int = 0
    bytes: int = 0
    skipped: int = 0
    lines: list[str] = field(default_factory=list, repr=False)

    @property
    def digest(self) -> str:
        return hashlib.sha256("\n".join(sorted(self.lines)).encode()).hexdigest()


def format_of(name: str, head: bytes) -> ArchiveFormat:
    """The archive's format from its first bytes (its name breaks ties: .tar has no magic at 0)."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "tar.gz"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    raise ArchiveRefused("unknown_format", f"{name} is not a tar, tar.gz or zip archive")


def _entry_path(name: str) -> str:
    text = name
    while text.startswith("./"):
        text = text[2:]
    if text.startswith("/"):
        raise ArchiveRefused("unsafe_path", f"entry {name[:200]!r} is absolute")
    try:
        parts = paths.parts_of(text.rstrip("/"))
    except PathRefused as refused:
        raise ArchiveRefused("unsafe_path", f"entry {name[:200]!r}: {refused.reason}") from None
    return "/".join(parts)


def plan(archive: Path, fmt: ArchiveFormat, limits: Limits) -> list[Entry]:
    """Every entry of the archive, checked (ArchiveRefused for the first one that is not safe)."""
    entries: list[Entry] = []
    total = 0
    archive_size = max(archive.stat().st_size, 1)

    def add(entry: Entry) -> None:
        nonlocal total
        if len(entries) >= limits.max_entries:
            raise ArchiveRefused("too_many_entries", f"more than {limits.max_entries} entries")
        total += entry.size
        if total > limits.max_bytes:
            raise ArchiveRefused("too_large", f"expands to more than {limits.max_bytes} bytes")
        if total > 1024 * 1024 and total / archive_size > limits.max_ratio:
            raise ArchiveRefused("ratio", f"expands more than {limits.max_ratio} times its size")
        if limits.quota_bytes is not None and total > limits.quota_bytes:
            raise ArchiveRefused("disk_quota", "extracting it would exceed the server's disk limit")
        entries.append(entry)

    try:
        if fmt == "zip":
            with zipfile.ZipFile(archive) as zipped:
                for info in zipped.infolist():
                    mode = info.external_attr >> 16
                    if stat.S_IFMT(mode) == _ZIP_SYMLINK:
                        raise ArchiveRefused("link", f"entry {info.filename[:200]!r} is a symlink")
                    if mode and stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
                        raise ArchiveRefused("special_file", f"entry {info.filename[:200]!r}")
                    path = _entry_path(info.filename)
                    if not path:
                        continue
                    kind: Literal["file", "dir"] = "dir" if info.is_dir() else "file"
                    add(Entry(path, kind, 0 if kind == "dir" else info.file_size))
        else:
            with tarfile.open(archive, "r:gz" if fmt == "tar.gz" else "r:") as tarred:
                for member in tarred:
                    if member.issym() or member.islnk():
                        raise ArchiveRefused("link", f"entry {member.name[:200]!r} is a link")
                    if not (member.isfile() or member.isdir()):
                        raise ArchiveRefused("special_file", f"entry {member.name[:200]!r}")
                    path = _entry_path(member.name)
                    if not path:
                        continue
                    add(
                        Entry(
                            path, "dir" if member.isdir() else "file", member.size if member.isfile() else 0
                        )
                    )
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as error:
        raise ArchiveRefused("unreadable", f"{type(error).__name__}: {error}"[:300]) from None
    return entries


def extract(archive: Path, fmt: ArchiveFormat, staging: Path, limits: Limits) -> TreeSummary:
    """Extract into `staging` (a fresh folder of the caller's) after `plan` accepted every entry; the bytes
    written are counted against the same limits. Returns the summary of what was written."""
    plan(archive, fmt, limits)
    budget = min(limits.max_bytes, limits.quota_bytes if limits.quota_bytes is not None else limits.max_bytes)
    written = 0
    summary = TreeSummary()

    def write(path: str, source: IO[bytes]) -> None:
        nonlocal written
        parts = path.split("/")
        digest = hashlib.sha256()
        size = 0
        with paths.open_dir(staging, parts[:-1], create=True, path=path) as dir_fd:
            fd = os.open(
                parts[-1],
                os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o644,
                dir_fd=dir_fd,
            )
            with os.fdopen(fd, "wb") as target:
                while chunk := source.read(CHUNK):
                    written += len(chunk)
                    size += len(chunk)
                    if written > budget:
                        reason = "too_large" if budget == limits.max_bytes else "disk_quota"
                        raise ArchiveRefused(reason, "the archive expands beyond what is allowed")
                    digest.update(chunk)
                    target.write(chunk)
        summary.files += 1
        summary.bytes += size
        summary.lines.append(f"f {path} {size} {digest.hexdigest()}")

    def folder(path: str) -> None:
        with paths.open_dir(staging, path.split("/"), create=True, path=path):
            pass

    try:
        if fmt == "zip":
            with zipfile.ZipFile(archive) as zipped:
                for info in zipped.infolist():
                    path = _entry_path(info.filename)
                    if not path:
                        continue
                    if info.is_dir():
                        folder(path)
                    else:
                        with zipped.open(info) as source:
                            write(path, source)
        else:
            with tarfile.open(archive, "r:gz" if fmt == "tar.gz" else "r:") as tarred:
                for member in tarred:
                    path = _entry_path(member.name)
                    if not path:
                        continue
                    if member.isdir():
                        folder(path)
                    elif member.isfile():
                        extracted = tarred.extractfile(member)
                        if extracted is not None:
                            with extracted:
                                write(path, extracted)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as error:
        raise ArchiveRefused("unreadable", f"{type(error).__name__}: {error}"[:300]) from None
    except PathRefused as refused:  # e.g. a file entry, then a folder entry of the same name
        raise ArchiveRefused("unsafe_path", f"{refused.path[:200]!r}: {refused.reason}") from None
    return summarize(staging)


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether `path` matches one of the ignore patterns (fnmatch, like .pteroignore lines; a pattern
    without `/` matches any name on the way, one ending in `/` folders and what they hold)."""
    names = path.split("/")
    for raw in patterns:
        pattern = raw.strip().rstrip("/")
        if not pattern or pattern.startswith("#"):
            continue
        if "/" in pattern:
            if fnmatch.fnmatchcase(path, pattern.lstrip("/")) or path.startswith(pattern.lstrip("/") + "/"):
                return True
        elif any(fnmatch.fnmatchcase(name, pattern) for name in names):
            return True
    return False


def _walk(root: Path | str, top: str) -> Iterator[tuple[str, int, os.stat_result]]:
    """(relative path, dir_fd of its folder, lstat) of everything under `top` (a folder inside root; ""
    the root), folders before what they hold, never following a symlink."""
    parts = paths.parts_of(top)
    with paths.open_dir(root, parts, path=top) as top_fd:
        for folder, subfolders, files, dir_fd in os.fwalk(".", dir_fd=top_fd, follow_symlinks=False):
            subfolders.sort()
            base = "/".join(part for part in [top.strip("/"), folder.removeprefix(".").strip("/")] if part)
            for name in sorted(subfolders) + sorted(files):
                info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                yield (f"{base}/{name}" if base else name), dir_fd, info


def summarize(root: Path | str) -> TreeSummary:
    """The summary (files, bytes, digest) of every folder and regular file under `root`."""
    summary = TreeSummary()
    for path, dir_fd, info in _walk(root, ""):
        if stat.S_ISDIR(info.st_mode):
            summary.folders += 1
            summary.lines.append(f"d {path}")
        elif stat.S_ISREG(info.st_mode):
            digest = hashlib.sha256()
            fd = os.open(path.rsplit("/", 1)[-1], _READ_FLAGS, dir_fd=dir_fd)
            with os.fdopen(fd, "rb") as source:
                size = 0
                while chunk := source.read(CHUNK):
                    size += len(chunk)
                    digest.update(chunk)
            summary.files += 1
            summary.bytes += size
            summary.lines.append(f"f {path} {size} {digest.hexdigest()}")
        else:
            summary.skipped += 1
    return summary


class _HashingReader:
    def __init__(self, source: BinaryIO) -> None:
        self.source = source
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self.source.read(size)
        self.digest.update(chunk)
        self.size += len(chunk)
        return chunk


def create(
    root: Path | str,
    names: list[str],
    output: BinaryIO,
    fmt: ArchiveFormat,
    *,
    ignore: list[str] | None = None,
    max_output: int | None = None,
    exclude_top: str | None = None,
    base: str = "",
) -> TreeSummary:
    """Write an archive of `names` (paths inside root; [] = the whole root) to `output`, skipping symlinks,
    special files, ignored paths and `exclude_top` (the archive itself when it is written inside root).
    Entries are named relative to the folder `base` (the names' folder: an archive made in a folder
    extracts back into it); `base` itself is not an entry. ArchiveRefused("disk_quota") once the output
    passes `max_output` bytes."""
    prefix = base.strip("/") + "/" if base.strip("/") else ""
    patterns = ignore or []
    summary = TreeSummary()
    tops = names or [""]
    tarred: tarfile.TarFile | None = None
    zipped: zipfile.ZipFile | None = None
    if fmt == "zip":
        zipped = zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED, compresslevel=6)
    else:
        tarred = tarfile.open(  # noqa: SIM115 - closed in the finally below
            fileobj=output, mode="w:gz" if fmt == "tar.gz" else "w:", format=tarfile.PAX_FORMAT
        )

    def check_output() -> None:
        if max_output is not None and output.tell() > max_output:
            raise ArchiveRefused("disk_quota", "the archive would exceed the server's disk limit")

    try:
        for top in tops:
            top_parts = paths.parts_of(top)
            entries: Iterator[tuple[str, int, os.stat_result]]
            if top_parts:
                parent = "/".join(top_parts[:-1])
                with paths.open_dir(root, top_parts[:-1], path=top) as parent_fd:
                    info = os.stat(top_parts[-1], dir_fd=parent_fd, follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode):
                    entries = _chain_top(root, "/".join(top_parts), info, parent)
                else:
                    entries = iter([("/".join(top_parts), -1, info)])
            else:
                entries = _walk(root, "")
            for path, dir_fd, info in entries:
                if path == exclude_top or ignored(path, patterns):
                    continue
                if prefix and not path.startswith(prefix):
                    continue  # the base folder itself (names given as [base])
                name = path.removeprefix(prefix)
                if stat.S_ISDIR(info.st_mode):
                    summary.folders += 1
                    summary.lines.append(f"d {name}")
                    if tarred is not None:
                        member = tarfile.TarInfo(name)
                        member.type = tarfile.DIRTYPE
                        member.mode = stat.S_IMODE(info.st_mode)
                        member.mtime = int(info.st_mtime)
                        tarred.addfile(member)
                    elif zipped is not None:
                        zipped.writestr(zipfile.ZipInfo(name + "/"), b"")
                    continue
                if not stat.S_ISREG(info.st_mode):
                    summary.skipped += 1
                    continue
                if dir_fd == -1:
                    fd = paths.open_beneath(root, path)
                else:
                    fd = os.open(path.rsplit("/", 1)[-1], _READ_FLAGS, dir_fd=dir_fd)
                    if not stat.S_ISREG(os.fstat(fd).st_mode):
                        os.close(fd)
                        summary.skipped += 1
                        continue
                    os.set_blocking(fd, True)
                with os.fdopen(fd, "rb") as source:
                    now = os.fstat(source.fileno())
                    reader = _HashingReader(source)
                    if tarred is not None:
                        member = tarfile.TarInfo(name)
                        member.size = now.st_size
                        member.mode = stat.S_IMODE(now.st_mode)
                        member.mtime = int(now.st_mtime)
                        tarred.addfile(member, reader)
                    elif zipped is not None:
                        zinfo = zipfile.ZipInfo.from_file(f"/proc/self/fd/{source.fileno()}", name)
                        zinfo.compress_type = zipfile.ZIP_DEFLATED
                        with zipped.open(zinfo, "w", force_zip64=True) as target:
                            while chunk := reader.read(CHUNK):
                                target.write(chunk)
                summary.files += 1
                summary.bytes += reader.size
                summary.lines.append(f"f {name} {reader.size} {reader.digest.hexdigest()}")
                check_output()
    finally:
        if tarred is not None:
            tarred.close()
        if zipped is not None:
            zipped.close()
    check_output()
    return summary


def _chain_top(
    root: Path | str, top: str, info: os.stat_result, parent: str
) -> Iterator[tuple[str, int, os.stat_result]]:
    yield top, -2, info
    yield from _walk(root, top)


def remove_tree(folder: Path) -> None:
    """Remove a staging or scratch folder of ours (never follows symlinks inside it)."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(folder)
