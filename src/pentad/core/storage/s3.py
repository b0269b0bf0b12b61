"""The S3 backend: any S3-compatible store (AWS, MinIO, Ceph, ...) through aiobotocore.

An upload that fits in one part is a single PutObject; a larger one becomes a multipart upload whose parts
are sent as they fill, so at most one part is held in memory, and which is aborted if anything fails. A
ranged read first asks for the object's size and etag, so ranges mean exactly what they mean on the local
backend, and reads the range only if the etag still matches. S3 lists sizes and etags but not types, so
listing asks for each object's metadata (one HEAD per object, a few at a time). Signed URLs are presigned
GETs served by the store itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Collection, Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import structlog
from aiobotocore.config import AioConfig  # type: ignore[import-untyped]
from aiobotocore.session import get_session  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from pentad.core.config import StorageSettings
from pentad.core.storage.base import (
    READ_CHUNK_BYTES,
    ByteRange,
    ObjectBody,
    ObjectChanged,
    ObjectNotFound,
    StorageUnavailable,
    StoredObject,
    check_declared_type,
    checked_chunks,
    content_disposition,
    read_file_chunks,
    upload_limit,
    url_lifetime,
    validate_key,
    validate_prefix,
)

MAX_PARTS = 10_000
"""S3's limit on the parts of one multipart upload: larger limits get larger parts."""
LIST_HEAD_CONCURRENCY = 16
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NotFound", "404"})

logger = structlog.get_logger("pentad.storage")


@contextlib.contextmanager
def _translated_errors(key: str) -> Iterator[None]:
    """S3's answers as the storage interface's errors; a store that fails or cannot be reached is a 503."""
    try:
        yield
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code in _NOT_FOUND_CODES:
            raise ObjectNotFound(key) from None
        if code == "PreconditionFailed":
            raise ObjectChanged(key) from None
        logger.error("storage_request_failed", backend="s3", error_code=code, key=key)
        raise StorageUnavailable() from exc
    except BotoCoreError as exc:
        logger.error("storage_unreachable", backend="s3", error=str(exc))
        raise StorageUnavailable() from exc


def _stored(key: str, size: Any, metadata: Any) -> StoredObject:
    return StoredObject(
        key=key,
        size=int(size),
        content_type=str(metadata.get("ContentType") or DEFAULT_CONTENT_TYPE),
        etag=str(metadata["ETag"]).strip('"'),
        modified=metadata["LastModified"].astimezone(UTC),
    )


async def _body_chunks(body: Any, key: str) -> AsyncGenerator[bytes, None]:
    async with body:
        with _translated_errors(key):
            async for chunk in body.iter_chunks(READ_CHUNK_BYTES):
                yield chunk


class S3Storage:
    """Objects in one bucket of an S3-compatible store."""

    def __init__(self, settings: StorageSettings) -> None:
        self._settings = settings
        self._bucket = settings.s3_bucket
        self._client: Any = None
        self._client_lock = asyncio.Lock()
        self._exit_stack = contextlib.AsyncExitStack()

    async def _s3(self) -> Any:
        """The client, created on first use: Platform.build is synchronous, the client's set-up is not."""
        if self._client is None:
            async with self._client_lock:
                if self._client is None:
                    self._client = await self._exit_stack.enter_async_context(self._create_client())
        return self._client

    def _create_client(self) -> Any:
        settings = self._settings
        config = AioConfig(
            signature_version="s3v4",
            connect_timeout=5,
            read_timeout=60,
            retries={"mode": "standard", "max_attempts": 3},
            # Checksums only where S3 requires them, and path-style addressing on a custom endpoint: what
            # MinIO, Ceph and older S3-compatible stores understand. AWS (no endpoint) keeps virtual hosts.
            s3={"addressing_style": "path" if settings.s3_endpoint_url else "auto"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        return get_session().create_client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key.get_secret_value() if settings.s3_access_key else None,
            aws_secret_access_key=(
                settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None
            ),
            config=config,
        )

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
        part_size = max(self._settings.s3_part_size, -(-limit // MAX_PARTS))
        s3 = await self._s3()
        target = {"Bucket": self._bucket, "Key": key}
        buffer = bytearray()
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        with _translated_errors(key):
            try:
                async for chunk in checked_chunks(stream, content_type=content_type, limit=limit):
                    buffer += chunk
                    while len(buffer) >= part_size:
                        if upload_id is None:
                            created = await s3.create_multipart_upload(**target, ContentType=content_type)
                            upload_id = str(created["UploadId"])
                        part = bytes(memoryview(buffer)[:part_size])  # one copy, not two
                        del buffer[:part_size]
                        parts.append(await self._upload_part(s3, target, upload_id, len(parts) + 1, part))
                if upload_id is None:
                    await s3.put_object(**target, Body=bytes(buffer), ContentType=content_type)
                else:
                    if buffer:
                        parts.append(
                            await self._upload_part(s3, target, upload_id, len(parts) + 1, bytes(buffer))
                        )
                    await s3.complete_multipart_upload(
                        **target, UploadId=upload_id, MultipartUpload={"Parts": parts}
                    )
            except BaseException:
                if upload_id is not None:
                    await self._abort(s3, target, upload_id)
                raise
        return await self._head(s3, key)

    async def put_file(
        self,
        key: str,
        path: Path,
        content_type: str,
        *,
        max_bytes: int | None = None,
        allowed_types: Collection[str] | None = None,
    ) -> StoredObject:
        path = Path(path)
        stored = await self.put(
            key,
            read_file_chunks(path),
            content_type=content_type,
            max_bytes=max_bytes,
            allowed_types=allowed_types,
        )
        await asyncio.to_thread(path.unlink, missing_ok=True)
        return stored

    @staticmethod
    async def _upload_part(
        s3: Any, target: dict[str, str], upload_id: str, number: int, data: bytes
    ) -> dict[str, Any]:
        uploaded = await s3.upload_part(**target, UploadId=upload_id, PartNumber=number, Body=data)
        return {"PartNumber": number, "ETag": uploaded["ETag"]}

    @staticmethod
    async def _abort(s3: Any, target: dict[str, str], upload_id: str) -> None:
        try:
            await s3.abort_multipart_upload(**target, UploadId=upload_id)
        except (ClientError, BotoCoreError) as exc:
            # The bucket's lifecycle rule for incomplete multipart uploads removes what is left.
            logger.warning("multipart_abort_failed", backend="s3", key=target["Key"], error=str(exc))

    async def _head(self, s3: Any, key: str) -> StoredObject:
        with _translated_errors(key):
            metadata = await s3.head_object(Bucket=self._bucket, Key=key)
        return _stored(key, metadata["ContentLength"], metadata)

    async def _head_if_present(self, s3: Any, key: str) -> StoredObject | None:
        try:
            return await self._head(s3, key)
        except ObjectNotFound:
            return None  # deleted since it was listed

    async def get(self, key: str, *, byte_range: str | None = None) -> tuple[StoredObject, ObjectBody]:
        key = validate_key(key)
        wanted = None if byte_range is None else ByteRange.parse(byte_range)
        s3 = await self._s3()
        request: dict[str, Any] = {"Bucket": self._bucket, "Key": key}
        known: StoredObject | None = None
        if wanted is not None:
            known = await self._head(s3, key)
            offset, length = wanted.resolve(known.size)
            request.update(Range=f"bytes={offset}-{offset + length - 1}", IfMatch=f'"{known.etag}"')
        with _translated_errors(key):
            response = await s3.get_object(**request)
        if known is None:
            known = _stored(key, response["ContentLength"], response)
            offset, length = 0, known.size
        body = response["Body"]
        chunks = _body_chunks(body, key)
        return known, ObjectBody(
            chunks, offset=offset, length=length, partial=wanted is not None, release=body.close
        )

    async def delete(self, key: str) -> None:
        key = validate_key(key)
        s3 = await self._s3()
        with _translated_errors(key):
            await s3.delete_object(Bucket=self._bucket, Key=key)

    async def list(self, prefix: str = "") -> AsyncIterator[StoredObject]:
        prefix = validate_prefix(prefix)
        s3 = await self._s3()
        paginator = s3.get_paginator("list_objects_v2")
        with _translated_errors(prefix):
            async for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix):
                keys = [str(item["Key"]) for item in page.get("Contents", ())]
                for start in range(0, len(keys), LIST_HEAD_CONCURRENCY):
                    batch = keys[start : start + LIST_HEAD_CONCURRENCY]
                    for stored in await asyncio.gather(*(self._head_if_present(s3, key) for key in batch)):
                        if stored is not None:
                            yield stored

    async def signed_url(
        self, key: str, expires_in: int | None = None, *, download_name: str | None = None
    ) -> str:
        key = validate_key(key)
        lifetime = url_lifetime(expires_in, self._settings.signed_url_ttl)
        params = {"Bucket": self._bucket, "Key": key}
        if download_name is not None:
            params["ResponseContentDisposition"] = content_disposition(download_name)
        s3 = await self._s3()
        url: str = await s3.generate_presigned_url("get_object", Params=params, ExpiresIn=lifetime)
        return url

    async def close(self) -> None:
        await self._exit_stack.aclose()
        self._client = None
