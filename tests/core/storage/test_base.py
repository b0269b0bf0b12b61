"""The rules every backend applies: keys, declared types and their signatures, ranges, download names."""

from __future__ import annotations

import pytest

from pentad.core.storage.base import (
    MAX_KEY_BYTES,
    MAX_SEGMENT_BYTES,
    ByteRange,
    ContentTypeMismatch,
    InvalidKey,
    InvalidRange,
    ObjectTooLarge,
    RangeNotSatisfiable,
    UnsupportedContentType,
    check_declared_type,
    checked_chunks,
    content_disposition,
    upload_limit,
    validate_key,
    validate_prefix,
)
from tests.core.storage.conftest import chunks_of

SAMPLES = {
    "image/png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "image/jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01",
    "image/gif": b"GIF89a\x01\x00\x01\x00\x80\x00",
    "image/webp": b"RIFF\x24\x00\x00\x00WEBPVP8 ",
    "application/pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3",
}
HTML = b"<!DOCTYPE html><html><script>"


async def collect(data: bytes, content_type: str, *, limit: int = 1000, size: int = 4) -> bytes:
    return b"".join(
        [
            chunk
            async for chunk in checked_chunks(chunks_of(data, size), content_type=content_type, limit=limit)
        ]
    )


@pytest.mark.parametrize("key", ["a", "a/b/c.txt", ".hidden", "a/..b", "...", "é/✓", "k" * MAX_SEGMENT_BYTES])
def test_ordinary_keys_are_accepted(key: str) -> None:
    assert validate_key(key) == key


def test_a_key_may_be_as_long_as_s3_allows() -> None:
    key = "/".join(["s" * 100] * 10) + "/" + "t" * (MAX_KEY_BYTES - 1010)
    assert len(key.encode()) == MAX_KEY_BYTES
    assert validate_key(key) == key
    with pytest.raises(InvalidKey):
        validate_key(key + "t")


def test_a_key_must_be_encodable_text() -> None:
    with pytest.raises(InvalidKey):
        validate_key("lone\ud800surrogate")


@pytest.mark.parametrize("prefix", ["", "a", "a/", "a/b", "a/.", "a/..", "a/.hid"])
def test_prefixes_may_end_with_a_partial_part(prefix: str) -> None:
    assert validate_prefix(prefix) == prefix


@pytest.mark.parametrize("content_type", list(SAMPLES))
async def test_each_signature_type_accepts_its_own_bytes(content_type: str) -> None:
    assert await collect(SAMPLES[content_type], content_type) == SAMPLES[content_type]


@pytest.mark.parametrize(
    ("declared", "actual"),
    [(declared, actual) for declared in SAMPLES for actual in [*SAMPLES, "html"] if actual != declared],
)
async def test_each_signature_type_refuses_other_bytes(declared: str, actual: str) -> None:
    with pytest.raises(ContentTypeMismatch):
        await collect(HTML if actual == "html" else SAMPLES[actual], declared)


async def test_a_file_shorter_than_the_signature_is_refused() -> None:
    with pytest.raises(ContentTypeMismatch):
        await collect(b"\x89PN", "image/png")


async def test_types_without_a_signature_are_not_sniffed() -> None:
    assert await collect(b"\x89PNG\r\n\x1a\n", "application/octet-stream") == b"\x89PNG\r\n\x1a\n"
    assert await collect(b"", "text/plain") == b""


async def test_nothing_passes_before_the_first_bytes_are_checked() -> None:
    checked = checked_chunks(chunks_of(b"<html>" * 10, 1), content_type="image/gif", limit=1000)
    with pytest.raises(ContentTypeMismatch):
        await anext(checked)


async def test_the_limit_counts_every_byte() -> None:
    assert await collect(b"x" * 10, "text/plain", limit=10) == b"x" * 10
    with pytest.raises(ObjectTooLarge) as caught:
        await collect(b"x" * 11, "text/plain", limit=10)
    assert caught.value.extra == {"limit": 10}


def test_the_tighter_limit_wins() -> None:
    assert upload_limit(None, 100) == 100
    assert upload_limit(50, 100) == 50
    assert upload_limit(500, 100) == 100
    with pytest.raises(ValueError, match="negative"):
        upload_limit(-1, 100)


@pytest.mark.parametrize(
    ("declared", "stored"),
    [
        ("image/png", "image/png"),
        ("IMAGE/PNG", "image/png"),
        (" text/plain ;charset=UTF-8 ", "text/plain; charset=UTF-8"),
        ('text/plain; x="a;b"; y=z', 'text/plain; x="a;b"; y=z'),
        ("application/vnd.api+json", "application/vnd.api+json"),
    ],
)
def test_declared_types_are_normalised(declared: str, stored: str) -> None:
    assert check_declared_type(declared, None) == stored


@pytest.mark.parametrize(
    "declared",
    ["", "png", "image/", "/png", "image/png\r\nX-Evil: 1", "text/plain; charset", "a/b c", "t/" + "x" * 300],
)
def test_malformed_types_are_refused(declared: str) -> None:
    with pytest.raises(UnsupportedContentType):
        check_declared_type(declared, None)


def test_allowed_types_compare_without_parameters_or_case() -> None:
    assert check_declared_type("Image/PNG", ["image/png; q=1"]) == "image/png"
    with pytest.raises(UnsupportedContentType, match="send one of: image/gif, image/png"):
        check_declared_type("image/svg+xml", ["image/png", "image/gif"])


@pytest.mark.parametrize(
    ("header", "size", "span"),
    [
        ("bytes=0-0", 1, (0, 1)),
        ("bytes=0-", 5, (0, 5)),
        ("bytes=4-", 5, (4, 1)),
        ("bytes=-5", 5, (0, 5)),
        ("bytes=-9", 5, (0, 5)),
        ("bytes=1-99", 5, (1, 4)),
        (" bytes=1-2 ", 5, (1, 2)),
    ],
)
def test_ranges_resolve_against_the_size(header: str, size: int, span: tuple[int, int]) -> None:
    assert ByteRange.parse(header).resolve(size) == span


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=5-", 5), ("bytes=-0", 5), ("bytes=0-", 0), ("bytes=-1", 0)]
)
def test_unsatisfiable_ranges_name_the_size(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable) as caught:
        ByteRange.parse(header).resolve(size)
    assert caught.value.headers["Content-Range"] == f"bytes */{size}"


@pytest.mark.parametrize(
    "header",
    [
        "",
        "bytes=",
        "bytes=-",
        "bytes=2-1",
        "bytes=1-2,3-4",
        "bytes 1-2",
        "bits=1-2",
        "bytes=\u0663-",
        "bytes=" + "9" * 5000 + "-",
    ],
)
def test_malformed_ranges_are_refused(header: str) -> None:
    with pytest.raises(InvalidRange):
        ByteRange.parse(header)


@pytest.mark.parametrize(
    ("name", "fallback", "encoded"),
    [
        ("report.pdf", "report.pdf", "report.pdf"),
        ("C:\\Users\\me\\résumé.pdf", "r_sum_.pdf", "r%C3%A9sum%C3%A9.pdf"),
        ("../../x\x00y\ttab.txt", "xytab.txt", "xytab.txt"),
        ('50% "off".txt', "50_ _off_.txt", "50%25%20%22off%22.txt"),
        ("/", "download", "download"),
    ],
)
def test_download_names_become_safe_headers(name: str, fallback: str, encoded: str) -> None:
    assert content_disposition(name) == f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def test_download_names_are_bounded() -> None:
    assert len(content_disposition("n" * 10_000)) < 400
