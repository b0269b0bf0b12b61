"""File storage: one interface over a local folder (the default) and S3-compatible object stores.

Bytes are streamed both ways and never held whole in memory. Keys are `/`-separated paths (validate_key).
What a caller can act on is an AppError: InvalidKey and InvalidRange 400, LinkExpired and InvalidSignature
403, ObjectNotFound 404, ObjectChanged 409, ObjectTooLarge 413, UnsupportedContentType and
ContentTypeMismatch 415, RangeNotSatisfiable 416, StorageUnavailable 503.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Collection, Sequence
from pathlib import Path
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from pentad.core.config import Settings
from pentad.core.db.hooks import on_rollback
from pentad.core.storage.base import (
    SIGNATURES,
    ContentTypeMismatch,
    InvalidKey,
    InvalidRange,
    ObjectBody,
    ObjectChanged,
    ObjectNotFound,
    ObjectTooLarge,
    RangeNotSatisfiable,
    StorageUnavailable,
    StoredObject,
    UnsupportedContentType,
    validate_key,
)
from pentad.core.storage.local import LocalStorage
from pentad.core.storage.signing import InvalidSignature, LinkExpired, UrlSigner

__all__ = [
    "SIGNATURES",
    "ContentTypeMismatch",
    "InvalidKey",
    "InvalidRange",
    "InvalidSignature",
    "LinkExpired",
    "LocalStorage",
    "ObjectBody",
    "ObjectChanged",
    "ObjectNotFound",
    "ObjectTooLarge",
    "RangeNotSatisfiable",
    "Storage",
    "StorageUnavailable",
    "StoredObject",
    "UnsupportedContentType",
    "build_storage",
    "validate_key",
]

LOCAL_FOLDER_NAME = "files"


class Storage(Protocol):
    async def put(
        self,
        key: str,
        stream: AsyncIterable[bytes],
        *,
        content_type: str,
        max_bytes: int | None = None,
        allowed_types: Collection[str] | None = None,
    ) -> StoredObject:
        """Store the stream under `key`, replacing any object there, all at once or not at all.

        Refused while streaming, leaving nothing stored: more than `max_bytes` (and never more than
        PENTAD_STORAGE__MAX_OBJECT_BYTES), a `content_type` outside `allowed_types` (compared without
        parameters), or first bytes that contradict a type listed in SIGNATURES.
        """
        ...

    async def put_file(
        self,
        key: str,
        path: Path,
        content_type: str,
        *,
        max_bytes: int | None = None,
        allowed_types: Collection[str] | None = None,
    ) -> StoredObject:
        """Move the finished file at `path` (closed, no longer written) into storage under `key`, checked as
        `put` checks a stream; on success the file is gone from `path`, on failure it stays there. The local
        backend hard-links it into place when `path` is on the same filesystem (no byte is copied; it falls
        back to a copy otherwise); S3 uploads it (multipart when large)."""
        ...

    async def get(self, key: str, *, byte_range: str | None = None) -> tuple[StoredObject, ObjectBody]:
        """The object's metadata and its bytes, or only those of an HTTP-style range: `bytes=first-last`,
        `bytes=first-` or `bytes=-length`. Close the body if it is not read to the end."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object; removing one that does not exist is not an error."""
        ...

    def list(self, prefix: str = "") -> AsyncIterator[StoredObject]:
        """Every object whose key starts with `prefix` (a plain string prefix, not only whole folders), in
        key order."""
        ...

    async def signed_url(
        self, key: str, expires_in: int | None = None, *, download_name: str | None = None
    ) -> str:
        """An absolute URL anyone holding it may GET the object (and ranges of it) with, for `expires_in`
        seconds (default PENTAD_STORAGE__SIGNED_URL_TTL, at most 7 days). With `download_name`, browsers
        save the file under that name instead of showing it."""
        ...

    async def close(self) -> None: ...


def delete_on_rollback(session: AsyncSession, storage: Storage, keys: Sequence[str]) -> None:
    """Delete the objects just put under `keys` if the session's transaction does not commit (the row
    that would point at them is refused, or its commit fails): a refused upload leaves no file behind."""
    pending = list(keys)

    async def delete() -> None:
        for key in pending:
            await storage.delete(key)

    on_rollback(session, delete)


def build_storage(settings: Settings, signing_secret: bytes) -> Storage:
    """The backend PENTAD_STORAGE__BACKEND names; local signed URLs are signed with `signing_secret`."""
    storage = settings.storage
    if storage.backend == "s3":
        # Imported here: botocore takes most of a second to import, which only S3 deployments should pay.
        from pentad.core.storage.s3 import S3Storage

        return S3Storage(storage)
    return LocalStorage(
        storage,
        root=storage.local_path or settings.data_dir / LOCAL_FOLDER_NAME,
        signer=UrlSigner(signing_secret),
        base_url=settings.server.base_url,
    )
