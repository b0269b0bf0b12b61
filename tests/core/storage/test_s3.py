"""The S3 backend against a real S3-compatible server (moto): multipart uploads and their clean-up,
presigned URLs, conditional ranged reads, and a store that cannot be reached."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from pentad.core.storage import (
    ObjectChanged,
    ObjectTooLarge,
    Storage,
    StorageUnavailable,
    StoredObject,
    build_storage,
)
from pentad.core.storage.s3 import S3Storage
from tests.core.storage.conftest import MIB, chunks_of, patterned, raw_s3_client, s3_settings
from tests.factories import TEST_SECRET_KEY, free_port

UNREACHABLE_BOUND_SECONDS = 60.0


async def pending_uploads(session: Any, endpoint: str, bucket: str) -> list[Any]:
    async with raw_s3_client(session, endpoint) as s3:
        listed = await s3.list_multipart_uploads(Bucket=bucket)
    return list(listed.get("Uploads", []))


async def raw_etag(session: Any, endpoint: str, bucket: str, key: str) -> str:
    async with raw_s3_client(session, endpoint) as s3:
        head = await s3.head_object(Bucket=bucket, Key=key)
    return str(head["ETag"])


async def test_a_small_upload_is_one_put_and_a_large_one_is_multipart(
    s3_storage: Storage, botocore_session: Any, moto_endpoint: str, s3_bucket: str
) -> None:
    await s3_storage.put("small", chunks_of(b"tiny"), content_type="text/plain")
    large = await s3_storage.put("large", patterned(12 * MIB), content_type="application/octet-stream")
    assert "-" not in await raw_etag(botocore_session, moto_endpoint, s3_bucket, "small")
    assert (await raw_etag(botocore_session, moto_endpoint, s3_bucket, "large")).strip('"').endswith("-3")
    assert large.size == 12 * MIB


async def test_a_multipart_upload_that_fails_is_aborted(
    s3_storage: Storage, botocore_session: Any, moto_endpoint: str, s3_bucket: str
) -> None:
    async def cut_after_two_parts() -> AsyncIterator[bytes]:
        async for chunk in patterned(11 * MIB):
            yield chunk
        raise ConnectionResetError("client went away")

    with pytest.raises(ObjectTooLarge):
        await s3_storage.put(
            "big", patterned(12 * MIB), content_type="application/octet-stream", max_bytes=11 * MIB
        )
    with pytest.raises(ConnectionResetError):
        await s3_storage.put("cut", cut_after_two_parts(), content_type="application/octet-stream")
    assert await pending_uploads(botocore_session, moto_endpoint, s3_bucket) == []
    assert [stored async for stored in s3_storage.list()] == []


async def test_a_presigned_url_carries_its_lifetime_and_download_name(
    s3_storage: Storage, s3_bucket: str
) -> None:
    url = await s3_storage.signed_url("docs/a.txt", expires_in=120, download_name="a.txt")
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert parts.path == f"/{s3_bucket}/docs/a.txt"
    assert query["X-Amz-Expires"] == ["120"]
    assert query["response-content-disposition"][0].startswith('attachment; filename="a.txt"')
    assert "X-Amz-Signature" in query


async def test_a_ranged_read_of_a_replaced_object_is_refused(
    s3_storage: Storage,
    botocore_session: Any,
    moto_endpoint: str,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The range is worked out from one version; the read must not return bytes of another."""
    await s3_storage.put("doc", chunks_of(b"first version"), content_type="text/plain")
    assert isinstance(s3_storage, S3Storage)
    real_head = s3_storage._head

    async def head_then_replace(s3: Any, key: str) -> StoredObject:
        stored = await real_head(s3, key)
        async with raw_s3_client(botocore_session, moto_endpoint) as raw:
            await raw.put_object(Bucket=s3_bucket, Key=key, Body=b"second version")
        return stored

    monkeypatch.setattr(s3_storage, "_head", head_then_replace)
    with pytest.raises(ObjectChanged) as caught:
        await s3_storage.get("doc", byte_range="bytes=0-4")
    assert (caught.value.status, caught.value.code) == (409, "object_changed")


async def test_an_unreachable_store_is_unavailable_not_an_internal_error(tmp_path: Path) -> None:
    settings = s3_settings(tmp_path, f"http://127.0.0.1:{free_port()}", "nowhere")
    storage = build_storage(settings, TEST_SECRET_KEY.encode())
    try:
        # One operation: botocore retries a refused connection with backoff, a few seconds each time.
        async with asyncio.timeout(UNREACHABLE_BOUND_SECONDS):
            with pytest.raises(StorageUnavailable) as caught:
                await storage.put("x", chunks_of(b"x"), content_type="text/plain")
        assert (caught.value.status, caught.value.code) == (503, "storage_unavailable")
    finally:
        await storage.close()
