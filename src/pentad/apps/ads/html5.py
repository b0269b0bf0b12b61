"""HTML5 creatives: an uploaded zip (or one HTML file) served from a sandbox.

Upload (`POST /api/ads/campaigns/{id}/creatives/html5`, multipart: `file`, `name`, `destination_url`,
`width`, `height`, `alt_text`): at most PENTAD_ADS__MAX_HTML5_BYTES as sent and unpacked, at most
MAX_FILES files of the types in TYPES, no path outside the archive (zip slip: absolute paths, `..`,
backslashes, drive letters), no links, an `index.html` at the top (or in the one folder everything is
in); a single HTML file becomes `index.html`. Anything else is a 400 `invalid_html5` or 413, and nothing is
stored. The files go to core storage at `ads/creatives/<id>/html5/<path>`.

Serving: `GET /ads/h/<id>/<path>` (public) answers each file with
`Content-Security-Policy: sandbox allow-scripts allow-popups allow-popups-to-escape-sandbox` (its own
opaque origin even when opened directly: no Pentad cookies, storage or same-origin requests),
`frame-ancestors *` (any publisher's page may frame it) and nosniff. The loader frames `index.html` in an
`<iframe sandbox="allow-scripts allow-popups allow-popups-to-escape-sandbox">` with
`?clickTAG=<the signed click URL>` (IAB clickTAG): the creative opens that URL on a click, so clicks are
counted and redirected like any other ad's.
"""

from __future__ import annotations

import io
import posixpath
import stat
import uuid
import zipfile
from collections.abc import AsyncIterator
from typing import Annotated, Any, Final

from fastapi import APIRouter, Request, UploadFile
from fastapi import Path as PathParam
from starlette.responses import Response, StreamingResponse

from pentad.core.errors import BadRequest, NotFound, PayloadTooLarge
from pentad.core.platform import get_platform
from pentad.core.policy import UNLIMITED, route_policy
from pentad.core.storage import ObjectNotFound, Storage

SANDBOX: Final = "allow-scripts allow-popups allow-popups-to-escape-sandbox"
ENTRY: Final = "index.html"
MAX_FILES: Final = 100
MAX_PATH: Final = 200
TYPES: Final = {
    ".html": "text/html; charset=utf-8", ".htm": "text/html; charset=utf-8", ".js": "text/javascript",
    ".css": "text/css", ".json": "application/json", ".svg": "image/svg+xml", ".png": "image/png",
    ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp",
    ".woff": "font/woff", ".woff2": "font/woff2", ".mp4": "video/mp4", ".webm": "video/webm",
    ".txt": "text/plain; charset=utf-8",
}  # fmt: skip
ZIP_MAGIC: Final = b"PK\x03\x04"

router = APIRouter(include_in_schema=False)


class InvalidHtml5(BadRequest):
    code = "invalid_html5"


def storage_prefix(creative_id: uuid.UUID) -> str:
    return f"ads/creatives/{creative_id}/html5/"


def _clean(name: str) -> str:
    """A member's path inside the creative, or InvalidHtml5 for one that would leave it."""
    if "\\" in name or name.startswith("/") or ":" in name or "\x00" in name:
        raise InvalidHtml5(f"The archive holds a path that is not allowed: {name[:80]!r}.")
    normal = posixpath.normpath(name)
    if normal.startswith("..") or normal == "." or len(normal) > MAX_PATH:
        raise InvalidHtml5(f"The archive holds a path that is not allowed: {name[:80]!r}.")
    return normal


def unpack(data: bytes, max_bytes: int) -> dict[str, bytes]:
    """The files of an upload (a zip, or one HTML document) by path, checked (module docstring)."""
    if not data.startswith(ZIP_MAGIC):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidHtml5("Upload a zip archive or one UTF-8 HTML file.") from None
        if "<" not in text:
            raise InvalidHtml5("Upload a zip archive or one UTF-8 HTML file.")
        return {ENTRY: data}
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [info for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, ValueError):
        raise InvalidHtml5("The zip archive cannot be read.") from None
    if len(members) > MAX_FILES:
        raise InvalidHtml5(f"An HTML5 creative has at most {MAX_FILES} files.")
    if sum(info.file_size for info in members) > max_bytes:
        raise PayloadTooLarge(
            f"Unpacked, an HTML5 creative is at most {max_bytes} bytes.", code="html5_too_large"
        )
    paths: dict[str, zipfile.ZipInfo] = {}
    for info in members:
        if stat.S_ISLNK(info.external_attr >> 16):
            raise InvalidHtml5("The archive holds a link.")
        path = _clean(info.filename)
        if posixpath.splitext(path)[1].lower() not in TYPES:
            raise InvalidHtml5(f"This kind of file is not allowed in an HTML5 creative: {path[:80]!r}.")
        paths[path] = info
    tops = {path.split("/", 1)[0] for path in paths}
    prefix = ""
    if ENTRY not in paths and len(tops) == 1 and f"{next(iter(tops))}/{ENTRY}" in paths:
        prefix = next(iter(tops)) + "/"
    if f"{prefix}{ENTRY}" not in paths:
        raise InvalidHtml5("The archive needs an index.html at its top.")
    files: dict[str, bytes] = {}
    total = 0
    for path, info in paths.items():
        with archive.open(info) as member:
            content = member.read(max_bytes - total + 1)  # the sizes in the directory may lie
        total += len(content)
        if total > max_bytes:
            raise PayloadTooLarge(
                f"Unpacked, an HTML5 creative is at most {max_bytes} bytes.", code="html5_too_large"
            )
        files[path[len(prefix) :]] = content
    return files


async def read_upload(upload: UploadFile, max_bytes: int) -> dict[str, bytes]:
    data = await upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"An HTML5 creative may be at most {max_bytes} bytes.", code="creative_too_large"
        )
    return unpack(data, max_bytes)


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def store(storage: Storage, creative_id: uuid.UUID, files: dict[str, bytes]) -> dict[str, Any]:
    """Store the files; what the creative's `variants` records of them."""
    keys = []
    for path, content in sorted(files.items()):
        key = storage_prefix(creative_id) + path
        content_type = TYPES[posixpath.splitext(path)[1].lower()]
        await storage.put(key, _one_chunk(content), content_type=content_type, max_bytes=max(1, len(content)))
        keys.append(key)
    return {"entry": ENTRY, "files": sorted(files), "keys": keys}


def entry_url(base_url: str, creative_id: uuid.UUID) -> str:
    return f"{base_url}/ads/h/{creative_id}/{ENTRY}"


@router.get("/ads/h/{creative_id}/{path:path}")
@route_policy(
    public="an HTML5 ad's files, framed by any publisher's page in a sandbox",
    rate_limit=UNLIMITED,
    csp={
        "sandbox": SANDBOX,
        "frame-ancestors": "*",
        "script-src": "'self' 'unsafe-inline'",
        "style-src": "'self' 'unsafe-inline'",
        "img-src": "'self' data:",
        "media-src": "'self'",
        "font-src": "'self' data:",
        "form-action": "'none'",
    },
)
async def html5_file(
    request: Request, creative_id: uuid.UUID, path: Annotated[str, PathParam(max_length=MAX_PATH)]
) -> Response:
    try:
        clean = _clean(path)
    except InvalidHtml5:
        raise NotFound("No such file.") from None
    content_type = TYPES.get(posixpath.splitext(clean)[1].lower())
    if content_type is None:
        raise NotFound("No such file.")
    try:
        found, body = await get_platform(request).storage.get(storage_prefix(creative_id) + clean)
    except ObjectNotFound:
        raise NotFound("No such file.") from None
    return StreamingResponse(
        body,
        media_type=content_type,
        headers={"Cache-Control": "public, max-age=86400", "Content-Length": str(found.size)},
    )
