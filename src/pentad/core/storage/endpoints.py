"""`GET /files/{key}`: serves the local backend's signed URLs, with HTTP ranges.

Not in the API description: the link is a capability handed out by an app, checked by its signature
rather than by credentials, and its answer is the file, not JSON.
"""

from __future__ import annotations

from datetime import UTC
from email.utils import format_datetime

from fastapi import APIRouter, Request
from starlette.responses import StreamingResponse

from pentad.core.platform import get_platform
from pentad.core.storage.base import (
    UPLOAD_CSP,
    ByteRange,
    InvalidRange,
    ObjectBody,
    StoredObject,
    content_disposition,
)
from pentad.core.storage.signing import UrlSigner

router = APIRouter(include_in_schema=False)


def _etag_header(stored: StoredObject) -> str:
    return f'"{stored.etag}"'


def _usable_range(request: Request) -> str | None:
    """The request's Range, unless HTTP says to ignore it: a malformed header, several ranges or another
    unit get the whole file rather than an error."""
    header = request.headers.get("range")
    if header is None:
        return None
    try:
        ByteRange.parse(header)
    except InvalidRange:
        return None
    return header


@router.get("/files/{key:path}")
async def serve_signed_file(
    key: str,
    request: Request,
    expires: str | None = None,
    signature: str | None = None,
    filename: str | None = None,
) -> StreamingResponse:
    platform = get_platform(request)
    remaining = UrlSigner(platform.signing_secret).verify(key, expires, filename, signature)
    storage = platform.storage
    byte_range = _usable_range(request)
    if_range = request.headers.get("if-range")
    if byte_range is not None and if_range is not None:
        # A range of a file that changed since the client's first part would splice two versions together.
        stored, body = await storage.get(key)
        if if_range != _etag_header(stored):
            return _file_response(stored, body, remaining, filename)
        await body.aclose()
    stored, body = await storage.get(key, byte_range=byte_range)
    return _file_response(stored, body, remaining, filename)


def _file_response(
    stored: StoredObject, body: ObjectBody, remaining: int, filename: str | None
) -> StreamingResponse:
    headers = {
        "Content-Type": stored.content_type,
        "Content-Length": str(body.length),
        "Accept-Ranges": "bytes",
        "ETag": _etag_header(stored),
        "Last-Modified": format_datetime(stored.modified.astimezone(UTC), usegmt=True),
        "Cache-Control": f"private, max-age={remaining}",
        "Content-Security-Policy": UPLOAD_CSP,
    }
    if filename is not None:
        headers["Content-Disposition"] = content_disposition(filename)
    if body.partial:
        last = body.offset + body.length - 1
        headers["Content-Range"] = f"bytes {body.offset}-{last}/{stored.size}"
    return StreamingResponse(body, status_code=206 if body.partial else 200, headers=headers)
