"""The storage interface's behaviour, the same on every backend: each test runs on the local folder and on
a real S3-compatible server (moto)."""

from __future__ import annotations

import hashlib
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pentad.core.config import Settings
from pentad.core.errors import BadRequest
from pentad.core.storage import (
    ContentTypeMismatch,
    InvalidKey,
    InvalidRange,
    LocalStorage,
    ObjectNotFound,
    ObjectTooLarge,
    RangeNotSatisfiable,
    StoredObject,
    UnsupportedContentType,
    build_storage,
)
from tests.conftest import make_settings
from tests.core.storage.conftest import (
    MIB,
    PART_SIZE,
    Backend,
    chunks_of,
    patterned,
    patterned_digest,
    read_all,
)
from tests.factories import TEST_SECRET_KEY

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
HTML = b"<!doctype html><script>alert(document.cookie)</script>"
TRAVERSALS = [
    "../escape",
    "a/../../escape",
    "a/./b",
    "/etc/passwd",
    "a//b",
    "a/",
    "..",
    "a\\..\\b",
    "nul\x00byte",
    "line\nbreak",
    "",
    "k" * 1025,
    "segment-" + "s" * 300,
]


async def keys_under(backend: Backend, prefix: str) -> list[str]:
    return [stored.key async for stored in backend.storage.list(prefix)]


async def test_a_multi_mib_object_streams_in_and_out_unchanged(backend: Backend) -> None:
    size = 12 * MIB + 12_345  # more than two S3 parts, and a short last one
    stored = await backend.storage.put(
        "big/blob.bin", patterned(size), content_type="application/octet-stream"
    )
    assert (stored.key, stored.size, stored.content_type) == (
        "big/blob.bin",
        size,
        "application/octet-stream",
    )
    assert stored.etag
    assert abs(stored.modified - datetime.now(UTC)) < timedelta(minutes=5)

    meta, body = await backend.storage.get("big/blob.bin")
    digest = hashlib.sha256()
    largest_chunk = 0
    async for chunk in body:
        digest.update(chunk)
        largest_chunk = max(largest_chunk, len(chunk))
    assert meta == stored
    assert (body.offset, body.length, body.partial) == (0, size, False)
    assert digest.hexdigest() == patterned_digest(size)
    assert largest_chunk < MIB


async def test_an_upload_is_never_held_whole_in_memory(backend: Backend) -> None:
    size = 48 * MIB
    await backend.storage.put(
        "memory/warm-up", chunks_of(b"x"), content_type="text/plain"
    )  # loads S3's model
    tracemalloc.start()
    try:
        await backend.storage.put(
            "memory/probe.bin", patterned(size), content_type="application/octet-stream"
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # S3 holds the part being filled and the part being sent (the peak does not grow with the object);
    # the local backend one chunk at a time.
    assert peak < size // 2


async def test_metadata_round_trips_with_type_parameters(backend: Backend) -> None:
    stored = await backend.storage.put(
        "notes/readme.txt", chunks_of(b"hello"), content_type="Text/Plain; charset=utf-8"
    )
    assert stored.content_type == "text/plain; charset=utf-8"
    meta, body = await backend.storage.get("notes/readme.txt")
    assert (meta.content_type, meta.size, await read_all(body)) == (stored.content_type, 5, b"hello")


async def test_an_empty_object_is_stored(backend: Backend) -> None:
    stored = await backend.storage.put("empty", chunks_of(b""), content_type="application/octet-stream")
    meta, body = await backend.storage.get("empty")
    assert (stored.size, meta.size, await read_all(body)) == (0, 0, b"")


@pytest.mark.parametrize(
    ("header", "offset", "expected"),
    [
        ("bytes=0-9", 0, b"0123456789"),
        ("bytes=10-", 10, b"abcdef"),
        ("bytes=-4", 12, b"cdef"),
        ("bytes=14-999", 14, b"ef"),
        ("bytes=-100", 0, b"0123456789abcdef"),
        ("bytes=3-3", 3, b"3"),
        ("BYTES=5-6", 5, b"56"),
    ],
)
async def test_ranges_read_only_the_bytes_asked_for(
    backend: Backend, header: str, offset: int, expected: bytes
) -> None:
    await backend.storage.put("digits", chunks_of(b"0123456789abcdef"), content_type="text/plain")
    meta, body = await backend.storage.get("digits", byte_range=header)
    assert meta.size == 16
    assert (body.offset, body.length, body.partial) == (offset, len(expected), True)
    assert await read_all(body) == expected


async def test_a_range_inside_a_multi_mib_object(backend: Backend) -> None:
    size = 6 * MIB
    await backend.storage.put("big/ranged.bin", patterned(size), content_type="application/octet-stream")
    whole = b"".join([chunk async for chunk in patterned(size)])
    _, body = await backend.storage.get(
        "big/ranged.bin", byte_range=f"bytes={PART_SIZE - 10}-{PART_SIZE + 9}"
    )
    assert await read_all(body) == whole[PART_SIZE - 10 : PART_SIZE + 10]


@pytest.mark.parametrize("header", ["bytes=16-", "bytes=100-200", "bytes=-0"])
async def test_a_range_outside_the_object_is_unsatisfiable(backend: Backend, header: str) -> None:
    await backend.storage.put("digits", chunks_of(b"0123456789abcdef"), content_type="text/plain")
    with pytest.raises(RangeNotSatisfiable) as caught:
        await backend.storage.get("digits", byte_range=header)
    assert caught.value.status == 416
    assert caught.value.headers == {"Content-Range": "bytes */16"}


async def test_no_range_of_an_empty_object_is_satisfiable(backend: Backend) -> None:
    await backend.storage.put("empty", chunks_of(b""), content_type="text/plain")
    with pytest.raises(RangeNotSatisfiable):
        await backend.storage.get("empty", byte_range="bytes=-1")


@pytest.mark.parametrize("header", ["bytes=5-2", "bytes=-", "items=0-1", "bytes=0-1,4-5", "bytes=x-y"])
async def test_a_malformed_range_is_a_clear_error(backend: Backend, header: str) -> None:
    await backend.storage.put("digits", chunks_of(b"0123456789abcdef"), content_type="text/plain")
    with pytest.raises(InvalidRange) as caught:
        await backend.storage.get("digits", byte_range=header)
    assert (caught.value.status, caught.value.code) == (400, "invalid_range")


async def test_an_upload_over_the_limit_is_refused_and_leaves_nothing(backend: Backend) -> None:
    with pytest.raises(ObjectTooLarge) as caught:
        await backend.storage.put(
            "big/too-large.bin",
            patterned(12 * MIB),
            content_type="application/octet-stream",
            max_bytes=7 * MIB,
        )
    assert (caught.value.status, caught.value.code) == (413, "object_too_large")
    with pytest.raises(ObjectNotFound):
        await backend.storage.get("big/too-large.bin")
    assert await keys_under(backend, "") == []


async def test_a_refused_replacement_keeps_the_previous_object(backend: Backend) -> None:
    await backend.storage.put("avatar", chunks_of(PNG), content_type="image/png")
    with pytest.raises(ObjectTooLarge):
        await backend.storage.put("avatar", patterned(MIB), content_type="image/png", max_bytes=100)
    with pytest.raises(ContentTypeMismatch):
        await backend.storage.put("avatar", chunks_of(HTML), content_type="image/png")
    meta, body = await backend.storage.get("avatar")
    assert (meta.content_type, await read_all(body)) == ("image/png", PNG)


async def test_a_png_that_is_really_html_is_refused(backend: Backend) -> None:
    with pytest.raises(ContentTypeMismatch) as caught:
        await backend.storage.put("uploads/cat.png", chunks_of(HTML, size=7), content_type="image/png")
    assert (caught.value.status, caught.value.code) == (415, "content_type_mismatch")
    assert await keys_under(backend, "uploads/") == []


async def test_a_real_png_in_tiny_chunks_is_accepted(backend: Backend) -> None:
    stored = await backend.storage.put("uploads/cat.png", chunks_of(PNG, size=3), content_type="image/png")
    assert stored.size == len(PNG)


async def test_a_type_outside_the_allowed_ones_is_refused(backend: Backend) -> None:
    with pytest.raises(UnsupportedContentType) as caught:
        await backend.storage.put(
            "uploads/page.html",
            chunks_of(HTML),
            content_type="text/html",
            allowed_types=["image/png", "image/jpeg"],
        )
    assert (caught.value.status, caught.value.code) == (415, "unsupported_content_type")
    stored = await backend.storage.put(
        "uploads/ok.png", chunks_of(PNG), content_type="image/png; q=1", allowed_types=["image/png"]
    )
    assert await keys_under(backend, "uploads/") == [stored.key]


@pytest.mark.parametrize("key", TRAVERSALS)
async def test_keys_that_could_escape_or_mislead_are_refused(backend: Backend, key: str) -> None:
    storage = backend.storage
    with pytest.raises(InvalidKey) as caught:
        await storage.put(key, chunks_of(b"x"), content_type="text/plain")
    assert (caught.value.status, caught.value.code) == (400, "invalid_key")
    with pytest.raises(InvalidKey):
        await storage.get(key)
    with pytest.raises(InvalidKey):
        await storage.delete(key)
    with pytest.raises(InvalidKey):
        await storage.signed_url(key)
    assert await keys_under(backend, "") == []


@pytest.mark.parametrize("prefix", ["../", "/abs", "a//", "a/../", "x\x00"])
async def test_prefixes_that_could_escape_are_refused(backend: Backend, prefix: str) -> None:
    with pytest.raises(InvalidKey):
        await keys_under(backend, prefix)


async def test_list_finds_keys_by_prefix_in_key_order(backend: Backend) -> None:
    keys = ["b", "a/2", "ab", "a/b/3", "a/1", "a-z", "a", "a/.hidden", "é/x"]
    for key in keys:
        await backend.storage.put(key, chunks_of(key.encode()), content_type="text/plain")
    assert await keys_under(backend, "") == sorted(keys)
    assert await keys_under(backend, "a/") == ["a/.hidden", "a/1", "a/2", "a/b/3"]
    assert await keys_under(backend, "a") == ["a", "a-z", "a/.hidden", "a/1", "a/2", "a/b/3", "ab"]
    assert await keys_under(backend, "a/b") == ["a/b/3"]
    assert await keys_under(backend, "a/.") == ["a/.hidden"]
    assert await keys_under(backend, "é") == ["é/x"]
    assert await keys_under(backend, "zz") == []
    listed = [stored async for stored in backend.storage.list("a/2")]
    assert [(s.key, s.size, s.content_type) for s in listed] == [("a/2", 3, "text/plain")]
    assert isinstance(listed[0], StoredObject)


async def test_delete_removes_the_object_and_tolerates_absence(backend: Backend) -> None:
    await backend.storage.put("docs/a.txt", chunks_of(b"a"), content_type="text/plain")
    await backend.storage.put("docs/b.txt", chunks_of(b"b"), content_type="text/plain")
    await backend.storage.delete("docs/a.txt")
    with pytest.raises(ObjectNotFound) as caught:
        await backend.storage.get("docs/a.txt")
    assert (caught.value.status, caught.value.code) == (404, "object_not_found")
    assert await keys_under(backend, "docs/") == ["docs/b.txt"]
    await backend.storage.delete("docs/a.txt")
    await backend.storage.delete("never/was")


async def test_a_put_replaces_the_object_whole(backend: Backend) -> None:
    first = await backend.storage.put("doc", chunks_of(b"first version"), content_type="text/plain")
    second = await backend.storage.put("doc", chunks_of(b"second"), content_type="application/json")
    assert first.etag != second.etag
    meta, body = await backend.storage.get("doc")
    assert (meta.size, meta.content_type, await read_all(body)) == (6, "application/json", b"second")
    assert await keys_under(backend, "") == ["doc"]


async def test_unicode_and_punctuation_keys_round_trip(backend: Backend) -> None:
    key = "users/Zoë/ça va? #1 %20 +plus.txt"
    await backend.storage.put(key, chunks_of(b"hi"), content_type="text/plain")
    _, body = await backend.storage.get(key)
    assert await read_all(body) == b"hi"
    response = await backend.fetch(await backend.storage.signed_url(key))
    assert (response.status_code, response.content) == (200, b"hi")


async def test_a_signed_url_serves_the_object_and_its_ranges(backend: Backend) -> None:
    await backend.storage.put("share/report.pdf", chunks_of(b"%PDF-1.7 body"), content_type="application/pdf")
    url = await backend.storage.signed_url("share/report.pdf", expires_in=60)
    response = await backend.fetch(url)
    assert response.status_code == 200
    assert response.content == b"%PDF-1.7 body"
    assert response.headers["content-type"] == "application/pdf"

    partial = await backend.fetch(url, headers={"Range": "bytes=0-3"})
    assert partial.status_code == 206
    assert partial.content == b"%PDF"
    assert partial.headers["content-range"] == "bytes 0-3/13"


async def test_a_signed_url_can_name_the_download(backend: Backend) -> None:
    await backend.storage.put("share/x", chunks_of(b"data"), content_type="text/csv")
    url = await backend.storage.signed_url("share/x", download_name="Q3 report é.csv")
    response = await backend.fetch(url)
    assert response.status_code == 200
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="Q3 report _.csv"')
    assert "filename*=UTF-8''Q3%20report%20%C3%A9.csv" in disposition


@pytest.mark.parametrize("expires_in", [0, -5, 604_801])
async def test_a_signed_url_lifetime_is_bounded(backend: Backend, expires_in: int) -> None:
    with pytest.raises(BadRequest, match="between 1 and 604800 seconds"):
        await backend.storage.signed_url("any", expires_in=expires_in)


def test_the_default_backend_is_a_folder_in_the_data_directory(tmp_path: Path) -> None:
    settings: Settings = make_settings(tmp_path, "sqlite+aiosqlite://")
    storage = build_storage(settings, TEST_SECRET_KEY.encode())
    assert isinstance(storage, LocalStorage)
    assert storage.root == tmp_path / "files"


# ------------------------------------------------------------------ put_file


async def _write_file(path: Path, total: int) -> str:
    with path.open("wb") as handle:
        async for chunk in patterned(total):
            handle.write(chunk)
    return patterned_digest(total)


async def test_put_file_moves_a_finished_file_into_storage(backend: Backend, tmp_path: Path) -> None:
    size = 2 * PART_SIZE + 4321  # multipart on S3
    source = tmp_path / "segment.ts"
    digest = await _write_file(source, size)
    stored = await backend.storage.put_file("recordings/cam1/0001.ts", source, "video/mp2t")
    assert (stored.key, stored.size, stored.content_type) == ("recordings/cam1/0001.ts", size, "video/mp2t")
    assert not source.exists()
    meta, body = await backend.storage.get("recordings/cam1/0001.ts")
    assert meta == stored
    assert hashlib.sha256(await read_all(body)).hexdigest() == digest


async def test_a_refused_put_file_keeps_the_file_and_stores_nothing(backend: Backend, tmp_path: Path) -> None:
    fake = tmp_path / "photo.png"
    fake.write_bytes(HTML)
    with pytest.raises(ContentTypeMismatch):
        await backend.storage.put_file("photos/fake.png", fake, "image/png")
    with pytest.raises(ObjectTooLarge):
        await backend.storage.put_file("photos/big.png", fake, "text/html", max_bytes=len(HTML) - 1)
    with pytest.raises(UnsupportedContentType):
        await backend.storage.put_file("photos/x.png", fake, "text/html", allowed_types=["image/png"])
    assert fake.read_bytes() == HTML
    assert [entry async for entry in backend.storage.list("photos/")] == []
