"""What every storage backend shares: object metadata, key rules, upload checks, byte ranges, errors."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from pentad.core.errors import AppError, BadRequest, Conflict, NotFound, PayloadTooLarge, ServiceUnavailable

MAX_KEY_BYTES = 1024
"""S3's limit, so a key valid on one backend is valid on every backend."""
MAX_SEGMENT_BYTES = 200
"""Per `/`-separated part: the local backend adds a suffix and a version within a 255-byte file name."""
MAX_URL_TTL = 604_800
"""Seven days, the longest an S3 (SigV4) presigned URL may live."""
READ_CHUNK_BYTES = 65_536
SNIFF_BYTES = 12
"""Enough leading bytes to recognise every type in SIGNATURES."""
MAX_DOWNLOAD_NAME_CHARS = 150
UPLOAD_CSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
"""Served with user uploads: no script runs, nothing loads, and the page gets an origin of its own."""

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
_TCHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PARAMETER = rf"{_TCHARS}=(?:{_TCHARS}|\"[^\"\\\x00-\x1f\x7f]*\")"
_MEDIA_TYPE = re.compile(rf"\s*({_TCHARS}/{_TCHARS})((?:\s*;\s*{_PARAMETER})*)\s*")
_PARAMETERS = re.compile(_PARAMETER)
_RANGE = re.compile(r"bytes=([0-9]{0,19})-([0-9]{0,19})", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size: int
    content_type: str
    etag: str
    """Opaque, unquoted; changes whenever the content does. Compare it only for equality."""
    modified: datetime
    """When the object was last written, timezone-aware."""


class ObjectBody(AsyncIterator[bytes]):
    """The bytes of an object, or of the range asked for, read from the backend as they are consumed.

    `offset` and `length` say which bytes of the object these are; `partial` is true when a range was
    asked for. Close it (or read it to the end) to release the backend's file or connection.
    """

    def __init__(
        self,
        chunks: AsyncGenerator[bytes, None],
        *,
        offset: int,
        length: int,
        partial: bool,
        release: Callable[[], object],
    ) -> None:
        self._chunks = chunks
        self._release = release
        self.offset = offset
        self.length = length
        self.partial = partial

    async def __anext__(self) -> bytes:
        return await self._chunks.__anext__()

    async def aclose(self) -> None:
        await self._chunks.aclose()
        # A generator closed before its first chunk never ran, so its own clean-up did not either.
        self._release()


class InvalidKey(BadRequest):
    code = "invalid_key"


class ObjectNotFound(NotFound):
    code = "object_not_found"

    def __init__(self, key: str) -> None:
        super().__init__(f"No stored object has the key {key!r}.")


class ObjectTooLarge(PayloadTooLarge):
    code = "object_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"The file is larger than the {limit} bytes allowed.", limit=limit)


class UnsupportedContentType(AppError):
    status, code = 415, "unsupported_content_type"


class ContentTypeMismatch(AppError):
    status, code = 415, "content_type_mismatch"


class InvalidRange(BadRequest):
    code = "invalid_range"


class RangeNotSatisfiable(AppError):
    status, code = 416, "range_not_satisfiable"

    def __init__(self, size: int) -> None:
        super().__init__(
            f"The range asked for lies outside the object, which is {size} bytes long.",
            headers={"Content-Range": f"bytes */{size}"},
        )


class ObjectChanged(Conflict):
    code = "object_changed"

    def __init__(self, key: str) -> None:
        super().__init__(f"The object {key!r} was replaced while it was being read; try again.")


class StorageUnavailable(ServiceUnavailable):
    code = "storage_unavailable"

    def __init__(self) -> None:
        super().__init__("File storage is unavailable right now; try again shortly.")


def validate_key(key: str) -> str:
    """The key unchanged, or InvalidKey: `/`-separated non-empty parts, none `.` or `..`, no leading or
    trailing `/`, no backslash or control character, at most MAX_KEY_BYTES of UTF-8."""
    if not key:
        raise InvalidKey("An object key may not be empty.")
    _check_characters(key)
    if key.startswith("/"):
        raise InvalidKey("An object key may not start with '/'.")
    for segment in key.split("/"):
        _check_segment(segment)
    return key


def validate_prefix(prefix: str) -> str:
    """A key prefix for listing: the rules of validate_key, except that it may be empty and its last part
    may be partial (empty after a trailing `/`, or `.`, the start of `.hidden`)."""
    if not prefix:
        return prefix
    _check_characters(prefix)
    if prefix.startswith("/"):
        raise InvalidKey("A key prefix may not start with '/'.")
    for segment in prefix.split("/")[:-1]:
        _check_segment(segment)
    return prefix


def _check_characters(text: str) -> None:
    try:
        size = len(text.encode())
    except UnicodeEncodeError:
        raise InvalidKey("An object key must be valid Unicode text.") from None
    if size > MAX_KEY_BYTES:
        raise InvalidKey(f"An object key may be at most {MAX_KEY_BYTES} bytes long.")
    if _CONTROL_CHARACTERS.search(text) or "\\" in text:
        raise InvalidKey("An object key may not contain control characters or '\\'.")


def _check_segment(segment: str) -> None:
    if segment in ("", ".", ".."):
        raise InvalidKey("An object key's parts between '/' may not be empty, '.' or '..'.")
    if len(segment.encode()) > MAX_SEGMENT_BYTES:
        raise InvalidKey(f"An object key's parts between '/' may be at most {MAX_SEGMENT_BYTES} bytes long.")


def _is_webp(head: bytes) -> bool:
    return head[:4] == b"RIFF" and head[8:12] == b"WEBP"


SIGNATURES: dict[str, Callable[[bytes], bool]] = {
    "image/png": lambda head: head.startswith(b"\x89PNG\r\n\x1a\n"),
    "image/jpeg": lambda head: head.startswith(b"\xff\xd8\xff"),
    "image/gif": lambda head: head.startswith((b"GIF87a", b"GIF89a")),
    "image/webp": _is_webp,
    "application/pdf": lambda head: head.startswith(b"%PDF-"),
}
"""Types whose first bytes are checked on upload: a `.png` that is really HTML is refused."""


def media_type_essence(content_type: str) -> str:
    """`image/png` of `Image/PNG; charset=x`."""
    return content_type.partition(";")[0].strip().lower()


def check_declared_type(content_type: str, allowed_types: Collection[str] | None) -> str:
    """The declared type, normalised (lower-case type and subtype), if it is well-formed and allowed."""
    match = _MEDIA_TYPE.fullmatch(content_type) if len(content_type) <= 255 else None
    if match is None:
        raise UnsupportedContentType(f"{content_type[:100]!r} is not a valid media type such as 'image/png'.")
    essence = match[1].lower()
    if allowed_types is not None and essence not in {media_type_essence(item) for item in allowed_types}:
        raise UnsupportedContentType(
            f"Files of type {essence} are not accepted here; send one of: {', '.join(sorted(allowed_types))}."
        )
    return "; ".join([essence, *_PARAMETERS.findall(match[2])])


def upload_limit(max_bytes: int | None, backend_limit: int) -> int:
    """The tighter of the caller's limit and the backend's."""
    if max_bytes is None:
        return backend_limit
    if max_bytes < 0:
        raise ValueError("max_bytes may not be negative")
    return min(max_bytes, backend_limit)


def _check_signature(content_type: str, head: bytes) -> None:
    matches = SIGNATURES.get(media_type_essence(content_type))
    if matches is not None and not matches(head):
        raise ContentTypeMismatch(
            f"The file's content is not {media_type_essence(content_type)}, as its declared type claims."
        )


async def checked_chunks(
    stream: AsyncIterable[bytes], *, content_type: str, limit: int
) -> AsyncIterator[bytes]:
    """The upload's chunks, stopped with an error as soon as it passes `limit` bytes or its first bytes
    contradict its declared type; nothing is yielded before the first bytes have been checked."""
    head = b""
    checked = False
    size = 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            raise ObjectTooLarge(limit)
        if not checked:
            head += chunk
            if len(head) < SNIFF_BYTES:
                continue
            _check_signature(content_type, head)
            checked = True
            chunk, head = head, b""
        if chunk:
            yield chunk
    if not checked:
        _check_signature(content_type, head)
        if head:
            yield head


@dataclass(frozen=True, slots=True)
class ByteRange:
    """One HTTP byte range as asked for, `bytes=a-b`, `bytes=a-` or `bytes=-n`, before the size is known."""

    first: int | None
    last: int | None
    """Inclusive; with `first` None, the suffix length `n`."""

    @classmethod
    def parse(cls, header: str) -> ByteRange:
        match = _RANGE.fullmatch(header.strip())
        if match is None or match[1] == match[2] == "":
            raise InvalidRange("Ask for one range as 'bytes=first-last', 'bytes=first-' or 'bytes=-length'.")
        first = int(match[1]) if match[1] else None
        last = int(match[2]) if match[2] else None
        if first is not None and last is not None and last < first:
            raise InvalidRange("A range's last byte may not come before its first.")
        return cls(first, last)

    def resolve(self, size: int) -> tuple[int, int]:
        """(offset, length) of this range in an object of `size` bytes, or RangeNotSatisfiable."""
        if self.first is None:
            assert self.last is not None
            if self.last == 0 or size == 0:
                raise RangeNotSatisfiable(size)
            length = min(self.last, size)
            return size - length, length
        if self.first >= size:
            raise RangeNotSatisfiable(size)
        last = size - 1 if self.last is None else min(self.last, size - 1)
        return self.first, last - self.first + 1


def url_lifetime(expires_in: int | None, default: int) -> int:
    lifetime = default if expires_in is None else expires_in
    if not 1 <= lifetime <= MAX_URL_TTL:
        raise BadRequest(
            f"A signed URL must live between 1 and {MAX_URL_TTL} seconds.", code="invalid_expiry"
        )
    return lifetime


def content_disposition(download_name: str) -> str:
    """An `attachment` Content-Disposition naming the file: an ASCII fallback plus the exact UTF-8 name,
    stripped of any folder part and of characters that could break or smuggle a header."""
    name = download_name.replace("\\", "/").rpartition("/")[2]
    name = (
        "".join(char for char in name if char.isprintable()).strip()[:MAX_DOWNLOAD_NAME_CHARS] or "download"
    )
    fallback = "".join(char if " " <= char <= "~" and char not in '"\\%' else "_" for char in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


@dataclass(frozen=True, slots=True)
class FileFacts:
    size: int
    sha256: str


def inspect_file(path: Path, *, content_type: str, limit: int) -> FileFacts:
    """Check a finished file as `checked_chunks` checks an upload (its size against `limit`, its first bytes
    against its declared type), hash it and make its bytes durable (fsync). Blocking: run it in a thread."""
    size = path.stat().st_size
    if size > limit:
        raise ObjectTooLarge(limit)
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
        _check_signature(content_type, head)
        digest.update(head)
        while chunk := handle.read(READ_CHUNK_BYTES * 16):
            digest.update(chunk)
        os.fsync(handle.fileno())
    return FileFacts(size, digest.hexdigest())


async def read_file_chunks(path: Path) -> AsyncIterator[bytes]:
    """The file's bytes in chunks, read in a thread."""
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(handle.read, READ_CHUNK_BYTES):
            yield chunk
    finally:
        handle.close()
