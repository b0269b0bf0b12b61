"""The local backend's files on disk: one data file and one metadata file per object, nothing left behind by
a failed or replaced upload, nothing written outside its folder."""

from __future__ import annotations

import errno
import gc
import glob
import os
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pentad.core.storage import ContentTypeMismatch, InvalidKey, LocalStorage, ObjectTooLarge, Storage
from pentad.core.storage import local as local_module
from tests.core.storage.conftest import MIB, chunks_of, patterned, read_all

HTML = b"<html><body>not an image</body></html>"


def open_files_under(root: Path) -> list[str]:
    """Files under `root` this process holds open (Linux)."""
    targets = (os.readlink(fd) for fd in glob.glob("/proc/self/fd/*") if os.path.islink(fd))
    return [target for target in targets if target.startswith(str(root))]


def files_under(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


@pytest.fixture
def local(local_storage: Storage) -> LocalStorage:
    assert isinstance(local_storage, LocalStorage)
    return local_storage


async def test_an_object_is_a_data_file_and_a_metadata_file(local: LocalStorage) -> None:
    await local.put("a/b/photo.png", chunks_of(b"\x89PNG\r\n\x1a\n...."), content_type="image/png")
    files = files_under(local.root)
    assert len(files) == 2
    assert "a.d/b.d/photo.png.m" in files
    data = next(name for name in files if name.endswith(".f"))
    assert data.startswith("a.d/b.d/photo.png.")
    assert (local.root / data).read_bytes() == b"\x89PNG\r\n\x1a\n...."


async def test_a_key_and_a_folder_of_the_same_name_live_side_by_side(local: LocalStorage) -> None:
    await local.put("a", chunks_of(b"file"), content_type="text/plain")
    await local.put("a/b", chunks_of(b"inside"), content_type="text/plain")
    await local.put("a.d", chunks_of(b"suffix-like"), content_type="text/plain")
    for key, content in {"a": b"file", "a/b": b"inside", "a.d": b"suffix-like"}.items():
        _, body = await local.get(key)
        assert await read_all(body) == content


async def test_a_replaced_object_leaves_only_its_new_data(local: LocalStorage) -> None:
    for version in range(3):
        await local.put("doc.txt", chunks_of(f"version {version}".encode()), content_type="text/plain")
    files = files_under(local.root)
    assert len(files) == 2
    _, body = await local.get("doc.txt")
    assert await read_all(body) == b"version 2"


async def test_a_reader_finishes_the_version_it_started_while_a_put_replaces_it(local: LocalStorage) -> None:
    await local.put("video", patterned(2 * MIB), content_type="application/octet-stream")
    expected = b"".join([chunk async for chunk in patterned(2 * MIB)])
    _, body = await local.get("video")
    first = await anext(body)
    await local.put("video", chunks_of(b"replacement"), content_type="application/octet-stream")
    assert first + await read_all(body) == expected
    _, body = await local.get("video")
    assert await read_all(body) == b"replacement"


async def test_a_body_releases_its_file_when_read_or_closed_unread(local: LocalStorage) -> None:
    await local.put("clip", patterned(MIB), content_type="application/octet-stream")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, unread = await local.get("clip")
        _, partly_read = await local.get("clip", byte_range="bytes=0-")
        await anext(partly_read)
        _, read = await local.get("clip")
        assert len(open_files_under(local.root)) == 3
        await unread.aclose()
        await partly_read.aclose()
        await read_all(read)
        assert open_files_under(local.root) == []
        del unread, partly_read, read
        gc.collect()
    assert [str(warning.message) for warning in caught if warning.category is ResourceWarning] == []


async def test_failed_uploads_leave_no_file(local: LocalStorage) -> None:
    async def broken_stream() -> AsyncIterator[bytes]:
        yield b"x" * 100_000
        raise ConnectionResetError("client went away")

    with pytest.raises(ObjectTooLarge):
        await local.put("big", patterned(3 * MIB), content_type="application/octet-stream", max_bytes=MIB)
    with pytest.raises(ContentTypeMismatch):
        await local.put("fake.png", chunks_of(HTML), content_type="image/png")
    with pytest.raises(ConnectionResetError):
        await local.put("cut", broken_stream(), content_type="application/octet-stream")
    assert files_under(local.root) == []


async def test_a_delete_removes_both_files(local: LocalStorage) -> None:
    await local.put("x/y", chunks_of(b"1"), content_type="text/plain")
    await local.delete("x/y")
    assert files_under(local.root) == []


@pytest.mark.parametrize("key", ["../escape", "../../escape", "/tmp/escape", "x/../../escape"])
async def test_nothing_is_written_outside_the_folder(local: LocalStorage, tmp_path: Path, key: str) -> None:
    with pytest.raises(InvalidKey):
        await local.put(key, chunks_of(b"x"), content_type="text/plain")
    assert not (tmp_path / "escape").exists()
    assert not (tmp_path.parent / "escape").exists()
    assert files_under(local.root) == []


async def test_put_file_on_the_same_filesystem_links_the_bytes_instead_of_copying(
    local: LocalStorage, tmp_path: Path
) -> None:
    source = tmp_path / "segment.ts"
    source.write_bytes(b"G" + bytes(range(256)) * 4000)
    inode = source.stat().st_ino
    stored = await local.put_file("recordings/0001.ts", source, "video/mp2t")
    (data_file,) = list(local.root.rglob("*.f"))
    assert data_file.stat().st_ino == inode
    assert data_file.stat().st_nlink == 1
    assert not source.exists()
    assert stored.size == 1 + 256 * 4000
    assert [path.name for path in (local.root / ".incoming").iterdir()] == []


async def test_put_file_across_filesystems_copies_and_removes_the_source(
    local: LocalStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def cross_device(_source: object, _target: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(local_module.os, "link", cross_device)
    source = tmp_path / "segment.ts"
    source.write_bytes(b"G" * 5000)
    inode = source.stat().st_ino
    stored = await local.put_file("recordings/0002.ts", source, "video/mp2t")
    (data_file,) = list(local.root.rglob("*.f"))
    assert data_file.stat().st_ino != inode
    assert not source.exists()
    meta, body = await local.get("recordings/0002.ts")
    assert (meta, await read_all(body)) == (stored, b"G" * 5000)
