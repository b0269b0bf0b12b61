"""The local backend: a folder holding each object's bytes in one file and its metadata in another.

For the key `a/b/photo.png`, under the root:

    a.d/b.d/photo.png.m                the metadata (JSON): type, size, etag, time, and the data version
    a.d/b.d/photo.png.<version>.f      the bytes, exactly as uploaded
    .incoming/                         uploads in progress

Folders end in `.d`, metadata in `.m` and data in `.f`, so the files of two keys never collide, even when
one key is a folder of the other (`a` and `a/b` both exist, as on S3). A put streams into `.incoming`,
moves the finished bytes into place under a new version, then replaces the metadata file: that rename is
the commit, so a reader sees the whole old object or the whole new one, never a mix, and a failed upload
leaves nothing behind. The data a put displaces is deleted after the commit. A put and a delete racing on
one key can leave an unreferenced data file behind; it is never served.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import os
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlencode

from pentad.core.config import StorageSettings
from pentad.core.storage.base import (
    READ_CHUNK_BYTES,
    ByteRange,
    ObjectBody,
    ObjectNotFound,
    StoredObject,
    check_declared_type,
    checked_chunks,
    inspect_file,
    read_file_chunks,
    upload_limit,
    url_lifetime,
    validate_key,
    validate_prefix,
)
from pentad.core.storage.signing import UrlSigner

INCOMING = ".incoming"
FOLDER_SUFFIX = ".d"
METADATA_SUFFIX = ".m"
DATA_SUFFIX = ".f"
_OPEN_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class _Entry:
    stored: StoredObject
    version: str


def _data_name(name: str, version: str) -> str:
    return f"{name}.{version}{DATA_SUFFIX}"


def _read_entry(metadata_path: Path, key: str) -> _Entry | None:
    try:
        raw = json.loads(metadata_path.read_bytes())
    except FileNotFoundError:
        return None
    stored = StoredObject(
        key=key,
        size=raw["size"],
        content_type=raw["content_type"],
        etag=raw["etag"],
        modified=datetime.fromisoformat(raw["modified"]),
    )
    return _Entry(stored, raw["version"])


def _write_durably(path: Path, data: bytes) -> None:
    with path.open("xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _create_part(path: Path) -> BinaryIO:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("xb")


_NO_LINK_ERRORS = frozenset({errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP})
"""Another filesystem, or one without hard links (or out of them): copy instead."""


def _link(source: Path, part: Path) -> None:
    part.parent.mkdir(parents=True, exist_ok=True)
    os.link(source, part)


def _flush_durably(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _scan(folder: Path, name_prefix: str) -> list[tuple[str, bool]]:
    """(name, is_folder) of the objects and folders directly in `folder` whose names start with
    `name_prefix`, in the order of the keys they hold: a folder `a` sorts as `a/`, as its keys do."""
    try:
        entries = os.listdir(folder)
    except FileNotFoundError:
        return []
    found = [
        (entry[:-2], entry.endswith(FOLDER_SUFFIX))
        for entry in entries
        if entry.endswith((FOLDER_SUFFIX, METADATA_SUFFIX)) and entry[:-2].startswith(name_prefix)
    ]
    return sorted(found, key=lambda item: item[0] + "/" if item[1] else item[0])


async def _file_chunks(handle: BinaryIO, length: int) -> AsyncGenerator[bytes, None]:
    try:
        remaining = length
        while remaining > 0:
            chunk = await asyncio.to_thread(handle.read, min(READ_CHUNK_BYTES, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        handle.close()


class LocalStorage:
    """Objects in a local folder; signed URLs point at this platform's `GET /files/{key}`."""

    def __init__(self, settings: StorageSettings, *, root: Path, signer: UrlSigner, base_url: str) -> None:
        self.root = root
        self._settings = settings
        self._signer = signer
        self._base_url = base_url.rstrip("/")

    def _folder(self, folder_key: str) -> Path:
        """The folder holding the keys that start with `folder_key/` (the root for '')."""
        if not folder_key:
            return self.root
        return self.root.joinpath(*(part + FOLDER_SUFFIX for part in folder_key.split("/")))

    def _place(self, key: str) -> tuple[Path, str]:
        """The folder holding a key's files, and the key's last part."""
        folder_key, _, name = key.rpartition("/")
        return self._folder(folder_key), name

    async def put(
        self,
        key: str,
        stream: AsyncIterable[bytes],
        *,
        content_type: str,
        max_bytes: int | None = None,
        allowed_types: Collection[str] | None = None,
    ) -> StoredObject:
        key = validate_key(key)
        content_type = check_declared_type(content_type, allowed_types)
        limit = upload_limit(max_bytes, self._settings.max_object_bytes)
        version = secrets.token_hex(8)
        part = self.root / INCOMING / f"{version}.part"
        digest = hashlib.sha256()
        size = 0
        try:
            handle = await asyncio.to_thread(_create_part, part)
            try:
                async for chunk in checked_chunks(stream, content_type=content_type, limit=limit):
                    digest.update(chunk)
                    size += len(chunk)
                    await asyncio.to_thread(handle.write, chunk)
                await asyncio.to_thread(_flush_durably, handle)
            finally:
                handle.close()
            stored = StoredObject(key, size, content_type, digest.hexdigest(), datetime.now(UTC))
            await asyncio.to_thread(self._commit, _Entry(stored, version), part)
        except BaseException:
            await asyncio.to_thread(part.unlink, missing_ok=True)
            raise
        return stored

    async def put_file(
        self,
        key: str,
        path: Path,
        content_type: str,
        *,
        max_bytes: int | None = None,
        allowed_types: Collection[str] | None = None,
    ) -> StoredObject:
        key = validate_key(key)
        content_type = check_declared_type(content_type, allowed_types)
        limit = upload_limit(max_bytes, self._settings.max_object_bytes)
        path = Path(path)
        version = secrets.token_hex(8)
        part = self.root / INCOMING / f"{version}.part"
        try:
            # A second name for the same bytes: if anything below fails, the caller's name still holds them.
            await asyncio.to_thread(_link, path, part)
        except OSError as exc:
            if exc.errno not in _NO_LINK_ERRORS:
                raise
            stored = await self.put(
                key, read_file_chunks(path), content_type=content_type, max_bytes=max_bytes
            )
        else:
            try:
                facts = await asyncio.to_thread(inspect_file, part, content_type=content_type, limit=limit)
                stored = StoredObject(key, facts.size, content_type, facts.sha256, datetime.now(UTC))
                await asyncio.to_thread(self._commit, _Entry(stored, version), part)
            except BaseException:
                await asyncio.to_thread(part.unlink, missing_ok=True)
                raise
        await asyncio.to_thread(path.unlink, missing_ok=True)
        return stored

    def _commit(self, entry: _Entry, part: Path) -> None:
        folder, name = self._place(entry.stored.key)
        folder.mkdir(parents=True, exist_ok=True)
        data_path = folder / _data_name(name, entry.version)
        metadata_path = folder / (name + METADATA_SUFFIX)
        staged_metadata = part.with_suffix(".metadata")
        os.replace(part, data_path)
        try:
            previous = _read_entry(metadata_path, entry.stored.key)
            stored = entry.stored
            _write_durably(
                staged_metadata,
                json.dumps(
                    {
                        "version": entry.version,
                        "size": stored.size,
                        "content_type": stored.content_type,
                        "etag": stored.etag,
                        "modified": stored.modified.isoformat(),
                    }
                ).encode(),
            )
            os.replace(staged_metadata, metadata_path)
        except BaseException:
            staged_metadata.unlink(missing_ok=True)
            data_path.unlink(missing_ok=True)
            raise
        if previous is not None:
            (folder / _data_name(name, previous.version)).unlink(missing_ok=True)

    async def get(self, key: str, *, byte_range: str | None = None) -> tuple[StoredObject, ObjectBody]:
        key = validate_key(key)
        wanted = None if byte_range is None else ByteRange.parse(byte_range)
        entry, handle = await asyncio.to_thread(self._open, key)
        size = entry.stored.size
        try:
            offset, length = (0, size) if wanted is None else wanted.resolve(size)
            handle.seek(offset)
        except BaseException:
            handle.close()
            raise
        body = ObjectBody(
            _file_chunks(handle, length),
            offset=offset,
            length=length,
            partial=wanted is not None,
            release=handle.close,
        )
        return entry.stored, body

    def _open(self, key: str) -> tuple[_Entry, BinaryIO]:
        folder, name = self._place(key)
        for _ in range(_OPEN_ATTEMPTS):
            entry = _read_entry(folder / (name + METADATA_SUFFIX), key)
            if entry is None:
                break
            try:
                return entry, (folder / _data_name(name, entry.version)).open("rb")
            except FileNotFoundError:
                continue  # replaced between the two reads: the metadata now names the new data
        raise ObjectNotFound(key)

    async def delete(self, key: str) -> None:
        key = validate_key(key)
        await asyncio.to_thread(self._delete, key)

    def _delete(self, key: str) -> None:
        folder, name = self._place(key)
        metadata_path = folder / (name + METADATA_SUFFIX)
        entry = _read_entry(metadata_path, key)
        if entry is not None:
            metadata_path.unlink(missing_ok=True)
            (folder / _data_name(name, entry.version)).unlink(missing_ok=True)

    async def list(self, prefix: str = "") -> AsyncIterator[StoredObject]:
        prefix = validate_prefix(prefix)
        folder_key, _, name_prefix = prefix.rpartition("/")
        key_base = folder_key + "/" if folder_key else ""
        async for stored in self._walk(self._folder(folder_key), key_base, name_prefix):
            yield stored

    async def _walk(self, folder: Path, key_base: str, name_prefix: str) -> AsyncIterator[StoredObject]:
        for name, is_folder in await asyncio.to_thread(_scan, folder, name_prefix):
            if is_folder:
                async for stored in self._walk(folder / (name + FOLDER_SUFFIX), f"{key_base}{name}/", ""):
                    yield stored
                continue
            entry = await asyncio.to_thread(_read_entry, folder / (name + METADATA_SUFFIX), key_base + name)
            if entry is not None:
                yield entry.stored

    async def signed_url(
        self, key: str, expires_in: int | None = None, *, download_name: str | None = None
    ) -> str:
        key = validate_key(key)
        expires = int(time.time()) + url_lifetime(expires_in, self._settings.signed_url_ttl)
        query = {"expires": str(expires)}
        if download_name is not None:
            query["filename"] = download_name
        query["signature"] = self._signer.sign(key, expires, download_name)
        return f"{self._base_url}/files/{quote(key, safe='/')}?{urlencode(query)}"

    async def close(self) -> None:
        """Nothing to release: every read and write closes its own file."""
