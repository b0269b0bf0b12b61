"""Live HLS of a camera: `/streams/media/{camera_id}/…` playlists and segments, and hls.js for the player.

The media plane writes each live camera's HLS under `<MEDIA_DIR>/hls/<camera id>/` (a media playlist
`index.m3u8` and its segments; a ladder adds one folder per rendition under a master `index.m3u8`). These
routes serve that folder, never anything else:

- Who may play: public and unlisted cameras for anyone; private ones with a playback token of that camera
  in the query (`?token=psp_…`, from `POST /api/streams/cameras/{id}/playback-token`). A token of another
  camera is 403 `playback_token_scope`, an expired or tampered one 401 `playback_token_invalid`, none 401
  `playback_token_required` (access.authorize_playback decides). The token is in the URL because a player
  (hls.js, Safari, ffmpeg, VLC) sends no headers of ours; every relative URI of a playlist served with a
  token is rewritten to carry it, so the segments and variant playlists it names play too. The URIs also
  carry the live session (`s=`), so a segment name reused by a later stream is another URL.
- Only names the packager makes are served: one optional rendition folder and a file name of letters,
  digits, `_` and `-` with a known media extension (anything else, `..` included, is 404 before the disk
  is touched), resolved and checked to stay inside the camera's folder (a symlink cannot lead out).
- A camera without a live session is offline: 404 `stream_offline`, even when old files are left.
- Playlists change every segment: `Cache-Control: no-cache`. A segment never changes once it is listed
  (the packager writes to a temporary name and renames): `public, max-age=31536000, immutable`, or
  `private, …` for a private camera so shared caches keep none.
- Each playlist request counts its player among the camera's HLS viewers (actions/live.py).
- Cross-origin players (an embed on another site) may read them: `Access-Control-Allow-Origin: *`
  without credentials (the token is in the URL, no cookie is needed or sent).
"""

from __future__ import annotations

import contextlib
import re
import uuid
from pathlib import Path
from typing import Annotated, Final
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import FileResponse, Response

import pentad
from pentad.apps.streams import repository
from pentad.apps.streams.access import OPEN_VISIBILITIES, authorize_playback
from pentad.apps.streams.actions.live import note_hls_viewer, player_id
from pentad.apps.streams.media.packager import hls_dir, media_root
from pentad.apps.streams.settings import StreamsSettings
from pentad.core.auth.dependencies import db_session
from pentad.core.context import AppContext
from pentad.core.cors import CorsPolicy
from pentad.core.errors import NotFound, ServiceUnavailable
from pentad.core.platform import get_platform
from pentad.core.policy import UNLIMITED, RateLimitClass, route_policy

router = APIRouter(include_in_schema=False)

MEDIA: Final = RateLimitClass("streams_media", "6000/minute")
"""Per-address budget of playlist and segment requests (a viewer makes about two a second)."""
MEDIA_CORS: Final = CorsPolicy(origins="*", methods=("GET",))

PLAYLIST_TYPE: Final = "application/vnd.apple.mpegurl"
CONTENT_TYPES: Final = {
    "m3u8": PLAYLIST_TYPE,
    "ts": "video/mp2t",
    "m4s": "video/iso.segment",
    "mp4": "video/mp4",
    "aac": "audio/aac",
    "vtt": "text/vtt",
}
MEDIA_PATH: Final = re.compile(
    r"(?:([A-Za-z0-9_-]{1,64})/)?([A-Za-z0-9_-]{1,128})\.(m3u8|ts|m4s|mp4|aac|vtt)"
)
"""What the packager writes: `index.m3u8`, `seg_000042.ts`, `720p/index.m3u8`, `720p/seg_000042.ts`."""
MAX_PLAYLIST_BYTES: Final = 1 << 20
PLAYLIST_CACHE: Final = "no-cache"
PUBLIC_SEGMENT_CACHE: Final = "public, max-age=31536000, immutable"
PRIVATE_SEGMENT_CACHE: Final = "private, max-age=31536000, immutable"
URI_ATTRIBUTE: Final = re.compile(r'URI="([^"]*)"')
ABSOLUTE: Final = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*:|/)")

CameraId = Annotated[uuid.UUID, PathParam(description="Camera id.")]
Session = Annotated[AsyncSession, Depends(db_session)]


def camera_hls_dir(platform: AppContext, camera_id: uuid.UUID) -> Path:
    """Where the media plane writes the camera's live HLS: `<MEDIA_DIR>/hls/<camera id>` (packager.py)."""
    return hls_dir(media_root(platform.app_settings(StreamsSettings), platform.data_dir), camera_id)


def _not_found() -> NotFound:
    return NotFound("No such media file.", code="media_not_found")


def _confined(root: Path, relative: str) -> Path | None:
    """The file `relative` names under `root`, if it is a regular file that really lies inside it."""
    try:
        base = root.resolve(strict=True)
        path = (root / relative).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not path.is_relative_to(base) or not path.is_file():
        return None
    return path


def _with_query(uri: str, carried: str) -> str:
    if not carried or not uri or ABSOLUTE.match(uri):
        return uri  # a URI of another server (or an absolute path) never gets the token
    return f"{uri}{'&' if '?' in uri else '?'}{carried}"


def rewrite_playlist(text: str, carried: str) -> str:
    """The playlist with `carried` (e.g. `token=psp_…`) added to every relative URI it names: the
    segment and variant lines, and the URI="…" attributes of tags (EXT-X-MAP, EXT-X-MEDIA, EXT-X-PART,
    EXT-X-PRELOAD-HINT, EXT-X-RENDITION-REPORT, EXT-X-I-FRAME-STREAM-INF)."""
    if not carried:
        return text
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            lines.append(line)
        elif stripped.startswith("#"):
            lines.append(URI_ATTRIBUTE.sub(lambda m: f'URI="{_with_query(m.group(1), carried)}"', line))
        else:
            lines.append(_with_query(stripped, carried))
    return "\n".join(lines) + "\n"


async def _read_playlist(path: Path) -> str | None:
    def read() -> str | None:
        try:
            with path.open("rb") as file:
                data = file.read(MAX_PLAYLIST_BYTES + 1)
        except OSError:
            return None
        if len(data) > MAX_PLAYLIST_BYTES:
            return None
        return data.decode("utf-8", errors="replace")

    return await anyio.to_thread.run_sync(read)


@router.get("/streams/media/{camera_id}/{media_path:path}")
@route_policy(
    public="players fetch live HLS without credentials; private cameras check the playback token here",
    rate_limit=MEDIA,
    cors=MEDIA_CORS,
)
async def media_file(
    camera_id: CameraId,
    media_path: str,
    request: Request,
    session: Session,
    token: Annotated[str | None, Query(max_length=512, description="Playback token (`psp_…`).")] = None,
) -> Response:
    """A live playlist or segment of a camera."""
    match = MEDIA_PATH.fullmatch(media_path)
    if match is None:
        raise _not_found()
    platform = get_platform(request)
    camera = await authorize_playback(session, platform, camera_id, token=token or None)
    live = await repository.open_sessions(session, camera.id)
    if not live:
        raise NotFound("The camera is not streaming now.", code="stream_offline")
    path = await anyio.to_thread.run_sync(_confined, camera_hls_dir(platform, camera.id), media_path)
    if path is None:
        raise _not_found()
    extension = match.group(3)
    if extension == "m3u8":
        text = await _read_playlist(path)
        if text is None:
            raise _not_found()
        # The stream's session in every URI: a new stream numbers its segments from 0 again, and a
        # browser must not play a segment it kept (immutable) from an earlier stream under that name.
        carried = f"s={min(row.id for row in live).hex}"
        await _note_viewer(platform, camera.id, request)
        if token:
            carried += f"&token={quote(token, safe='')}"
        return Response(
            rewrite_playlist(text, carried),
            media_type=PLAYLIST_TYPE,
            headers={"Cache-Control": PLAYLIST_CACHE},
        )
    cache = PUBLIC_SEGMENT_CACHE if camera.visibility in OPEN_VISIBILITIES else PRIVATE_SEGMENT_CACHE
    return FileResponse(path, media_type=CONTENT_TYPES[extension], headers={"Cache-Control": cache})


async def _note_viewer(platform: AppContext, camera_id: uuid.UUID, request: Request) -> None:
    """Count the player among the camera's HLS viewers (actions/live.py); a cache away costs no playback."""
    address = request.client.host if request.client else ""
    with contextlib.suppress(ServiceUnavailable):
        await note_hls_viewer(platform, camera_id, player_id(address, request.headers.get("user-agent", "")))


# ------------------------------------------------------------------ hls.js for the player

VENDOR_DIR: Final = Path(pentad.__file__).resolve().parents[2] / "web" / "node_modules"
VENDOR_FILES: Final = {"hls.min.mjs": "hls.js/dist/hls.min.mjs"}
"""The files of web/node_modules the player loads, as /streams/vendor/<name> (hls.js, from npm)."""


@router.get("/streams/vendor/{name}")
@route_policy(public="the player's HLS library (hls.js)", rate_limit=UNLIMITED)
async def vendor_file(name: str) -> Response:
    relative = VENDOR_FILES.get(name)
    path = VENDOR_DIR / relative if relative else None
    if path is None or not path.is_file():
        raise NotFound("No such file.")
    return FileResponse(
        path, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"}
    )
