"""Paths confined to a root folder (a game server's folder): every component walked with O_NOFOLLOW from a
directory descriptor, so `..`, absolute paths, symlinks (anywhere on the way, also ones swapped in while we
walk) and special files can never take a read or a write outside the root. Stdlib only."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class PathRefused(ValueError):
    """A path that names something outside the root, or something we never touch (a symlink, a FIFO, a
    device, a hard-linked file for writing). `reason` is a short machine word for the API's error."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"path {path!r} refused: {reason}")
        self.path = path
        self.reason = reason


def parts_of(path: str) -> list[str]:
    """The components of a relative path ("" and "." mean the root itself); refuses NUL, absolute paths,
    `..`, backslashes and names longer than 255 bytes."""
    if "\x00" in path:
        raise PathRefused(path, "nul")
    if len(path.encode()) > MAX_PATH_BYTES:
        raise PathRefused(path, "too_long")
    if path.startswith("/"):
        raise PathRefused(path, "absolute")
    if "\\" in path:
        raise PathRefused(path, "backslash")
    parts = [part for part in PurePosixPath(path).parts if part != "."]
    for part in parts:
        if part == "..":
            raise PathRefused(path, "parent")
        if len(part.encode()) > MAX_NAME_BYTES:
            raise PathRefused(path, "too_long")
    return parts


@contextlib.contextmanager
def open_dir(
    root: Path | str,
    parts: list[str],
    *,
    create: bool = False,
    path: str = "",
    owner: tuple[int, int] | None = None,
) -> Iterator[int]:
    """A descriptor of the folder `root/parts…`, each component opened with O_NOFOLLOW below the last
    (created with mode 0o755, owned by `owner` (uid, gid) when given, when `create`). A symlink on the way
    is refused, never followed."""
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts:
            try:
                next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
                next_fd = _open_dir_below(fd, part, path)
                os.fchmod(next_fd, 0o755)  # whatever the umask
                if owner is not None:
                    os.fchown(next_fd, *owner)
            except OSError as exc:
                raise _refusal(exc, path or "/".join(parts)) from None
            os.close(fd)
            fd = next_fd
        yield fd
    finally:
        os.close(fd)


def _open_dir_below(fd: int, part: str, path: str) -> int:
    try:
        return os.open(part, _DIR_FLAGS, dir_fd=fd)
    except OSError as exc:
        raise _refusal(exc, path) from None


def _refusal(exc: OSError, path: str) -> Exception:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return PathRefused(path, "symlink_or_not_a_folder")
    return exc


def open_beneath(root: Path | str, path: str, flags: int = os.O_RDONLY, mode: int = 0o644) -> int:
    """Open the regular file `path` inside `root` (flags: os.O_RDONLY, or O_WRONLY|O_CREAT|O_TRUNC …).
    Refuses the root itself, symlinks, FIFOs, sockets, devices, and (when writing) files with more than one
    hard link, whose other names may be outside the root."""
    parts = parts_of(path)
    if not parts:
        raise PathRefused(path, "is_root")
    with open_dir(root, parts[:-1], create=bool(flags & os.O_CREAT), path=path) as dir_fd:
        try:
            fd = os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise PathRefused(path, "symlink") from None
            if exc.errno == errno.ENXIO:  # a FIFO without a reader, opened for writing
                raise PathRefused(path, "not_a_file") from None
            raise
    info = os.fstat(fd)
    writing = bool(flags & (os.O_WRONLY | os.O_RDWR))
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise PathRefused(path, "not_a_file")
    if writing and info.st_nlink > 1:
        os.close(fd)
        raise PathRefused(path, "hard_link")
    os.set_blocking(fd, True)
    return fd


def read_bytes(root: Path | str, path: str, limit: int | None = None) -> bytes:
    """The file's bytes (at most `limit`; more raises PathRefused("too_large"))."""
    fd = open_beneath(root, path)
    with os.fdopen(fd, "rb") as file:
        data = file.read() if limit is None else file.read(limit + 1)
    if limit is not None and len(data) > limit:
        raise PathRefused(path, "too_large")
    return data


def write_bytes(
    root: Path | str, path: str, data: bytes, mode: int = 0o644, owner: tuple[int, int] | None = None
) -> None:
    """Replace (or create) the file atomically: a temporary file beside it, then rename. The target, when it
    exists, must be a regular file with one link, and keeps its owner and mode; a new file gets `mode` and
    `owner` (uid, gid), as do missing folders on the way, which are created."""
    parts = parts_of(path)
    if not parts:
        raise PathRefused(path, "is_root")
    with open_dir(root, parts[:-1], create=True, path=path, owner=owner) as dir_fd:
        try:
            info = os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            info = None
        if info is not None and (not stat.S_ISREG(info.st_mode) or info.st_nlink > 1):
            raise PathRefused(path, "symlink" if stat.S_ISLNK(info.st_mode) else "not_a_file")
        temp = f".{parts[-1][:200]}.pentad-{os.getpid()}.tmp"
        fd = os.open(
            temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd
        )
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            uid_gid = (info.st_uid, info.st_gid) if info is not None else owner
            if uid_gid is not None:
                os.chown(temp, *uid_gid, dir_fd=dir_fd, follow_symlinks=False)
            file_mode = stat.S_IMODE(info.st_mode) if info is not None else mode
            os.chmod(temp, file_mode, dir_fd=dir_fd, follow_symlinks=False)
            os.rename(temp, parts[-1], src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=dir_fd)
            raise


def exists(root: Path | str, path: str) -> bool:
    """Whether `path` names a regular file inside `root` (a symlink is not one)."""
    try:
        os.close(open_beneath(root, path))
    except (FileNotFoundError, PathRefused, NotADirectoryError):
        return False
    return True
