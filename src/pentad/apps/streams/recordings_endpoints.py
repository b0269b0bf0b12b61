"""Recordings: start and stop (`/api/streams/cameras/{id}/recording`), the timeline and segments of a
range, MP4 exports (`/api/streams/…/exports`), and playback of a range as a VOD HLS playlist
(`/streams/recordings/{camera_id}/vod.m3u8?start=&end=`, not in the OpenAPI document: it serves media).

The VOD routes are authorised like live playback (access.authorize_playback): public and unlisted
cameras play for anyone, private ones with `?token=psp_…` of that camera, which every URI of the playlist
carries on (media_endpoints.rewrite_playlist). A recorded segment never changes: `immutable`.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Final, Protocol
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import FileResponse

from pentad.apps.streams import repository
from pentad.apps.streams.access import OPEN_VISIBILITIES, authorize_playback
from pentad.apps.streams.actions import exports, recording
from pentad.apps.streams.actions.context import StreamsContext
from pentad.apps.streams.exceptions import RangeEmpty, SegmentNotFound
from pentad.apps.streams.media.packager import media_root
from pentad.apps.streams.media.recorder import microseconds, stored_path
from pentad.apps.streams.media_endpoints import (
    MEDIA,
    MEDIA_CORS,
    PLAYLIST_CACHE,
    PLAYLIST_TYPE,
    PRIVATE_SEGMENT_CACHE,
    PUBLIC_SEGMENT_CACHE,
    rewrite_playlist,
)
from pentad.apps.streams.permissions import STREAMS_USE, STREAMS_WATCH
from pentad.apps.streams.schemas import ExportCreate, ExportRead, RecordingRead, SegmentRead, Timeline
from pentad.apps.streams.settings import StreamsSettings
from pentad.core.auth.dependencies import db_session, request_actor, require
from pentad.core.auth.principal import Principal
from pentad.core.errors import problem_responses
from pentad.core.platform import get_platform
from pentad.core.policy import route_policy

router = APIRouter(
    prefix="/api/streams",
    tags=["streams"],
    responses=problem_responses(400, 401, 403, 404, 409, 422, 429),
)
media_router = APIRouter(include_in_schema=False)

CameraId = Annotated[uuid.UUID, PathParam(description="Camera id.")]
ExportId = Annotated[uuid.UUID, PathParam(description="Export id.")]
Session = Annotated[AsyncSession, Depends(db_session)]
Member = Annotated[Principal, Depends(require(STREAMS_USE))]
Watcher = Annotated[Principal, Depends(require(STREAMS_WATCH))]
Start = Annotated[
    datetime | None,
    Query(description="Start of the range (ISO 8601; no zone: UTC). Unset: 24 h before the end."),
]
End = Annotated[datetime | None, Query(description="End of the range (ISO 8601; no zone: UTC). Unset: now.")]
Token = Annotated[str | None, Query(max_length=512, description="Playback token (`psp_…`).")]

MP4_TYPE: Final = "video/mp4"


def _context(request: Request, session: AsyncSession, principal: Principal) -> StreamsContext:
    return StreamsContext(session, get_platform(request), principal, request_actor(request, principal))


@router.put("/cameras/{camera_id}/recording", summary="Start recording on demand (operators)")
async def start_recording(
    camera_id: CameraId, request: Request, session: Session, principal: Member
) -> RecordingRead:
    """Records whenever the camera is live until stopped. If it records already (on demand, or
    continuously while live), that recording is returned and nothing changes."""
    found, _ = await recording.do_start_recording(_context(request, session, principal), camera_id)
    return found


@router.delete("/cameras/{camera_id}/recording", status_code=204, summary="Stop recording (operators)")
async def stop_recording(
    camera_id: CameraId, request: Request, session: Session, principal: Member
) -> Response:
    """Ends every recording under way; a camera that does not record is left as it is."""
    await recording.do_stop_recording(_context(request, session, principal), camera_id)
    return Response(status_code=204)


@router.get(
    "/cameras/{camera_id}/recordings", summary="The timeline of a range: recordings and recorded spans"
)
async def timeline(
    camera_id: CameraId, request: Request, session: Session, principal: Watcher, start: Start = None,
    end: End = None,
) -> Timeline:  # fmt: skip
    return await recording.get_timeline(_context(request, session, principal), camera_id, start, end)


@router.get("/cameras/{camera_id}/segments", summary="The recorded segments of a range, in time order")
async def segments(
    camera_id: CameraId, request: Request, session: Session, principal: Watcher, start: Start = None,
    end: End = None, limit: Annotated[int, Query(ge=1, le=recording.SEGMENT_LIST_MAX)] = 1000,
) -> list[SegmentRead]:  # fmt: skip
    streams = _context(request, session, principal)
    return await recording.list_segments(streams, camera_id, start, end, limit)


@router.post(
    "/cameras/{camera_id}/exports", status_code=202, summary="Export a recorded range as an MP4 (operators)"
)
async def create_export(
    camera_id: CameraId, data: ExportCreate, request: Request, session: Session, principal: Member
) -> ExportRead:
    """Queues the job `streams.export_range`; follow it on the camera's topic (`export.progress`) or here."""
    return await exports.do_create_export(_context(request, session, principal), camera_id, data)


@router.get("/cameras/{camera_id}/exports", summary="A camera's exports, newest first (operators)")
async def list_exports(
    camera_id: CameraId, request: Request, session: Session, principal: Member
) -> list[ExportRead]:
    return await exports.list_exports(_context(request, session, principal), camera_id)


@router.get("/exports/{export_id}", summary="An export's status (operators of its camera)")
async def get_export(
    export_id: ExportId, request: Request, session: Session, principal: Member
) -> ExportRead:
    return await exports.get_export(_context(request, session, principal), export_id)


@router.get(
    "/exports/{export_id}/file",
    summary="Download a finished export (MP4)",
    response_class=FileResponse,
    responses={200: {"content": {MP4_TYPE: {}}, "description": "The MP4."}},
)
async def export_file(export_id: ExportId, request: Request, session: Session, principal: Member) -> Response:
    path, name = await exports.export_file(_context(request, session, principal), export_id)
    return FileResponse(
        path, media_type=MP4_TYPE, filename=name, headers={"Cache-Control": "private, no-store"}
    )


# ------------------------------------------------------------------ VOD playback of a range


class PlaylistSegment(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def recording_id(self) -> uuid.UUID: ...

    @property
    def start_us(self) -> int: ...

    @property
    def duration_ms(self) -> int: ...


def vod_playlist(segments: Sequence[PlaylistSegment]) -> str:
    """An HLS VOD playlist of recorded segments (time order): their wall-clock starts, a discontinuity
    wherever one does not follow on from the previous (a gap, another recording)."""
    longest = max(s.duration_ms for s in segments) / 1000
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        f"#EXT-X-TARGETDURATION:{max(1, math.ceil(longest))}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    previous: PlaylistSegment | None = None
    for segment in segments:
        follows = (
            previous is not None
            and previous.recording_id == segment.recording_id
            and abs(segment.start_us - (previous.start_us + previous.duration_ms * 1000))
            <= recording.SPAN_TOLERANCE_US
        )
        if previous is not None and not follows:
            lines.append("#EXT-X-DISCONTINUITY")
        if not follows:
            start = recording.from_us(segment.start_us)
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{start.isoformat(timespec='milliseconds')}")
        lines.append(f"#EXTINF:{segment.duration_ms / 1000:.3f},")
        lines.append(f"{segment.id}.ts")
        previous = segment
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


@media_router.get("/streams/recordings/{camera_id}/vod.m3u8")
@route_policy(
    public="players fetch recordings without credentials; private cameras check the playback token here",
    rate_limit=MEDIA,
    cors=MEDIA_CORS,
)
async def vod(
    camera_id: CameraId,
    request: Request,
    session: Session,
    start: Annotated[datetime, Query(description="Start of the range (ISO 8601).")],
    end: Annotated[datetime, Query(description="End of the range (ISO 8601).")],
    token: Token = None,
) -> Response:
    """The recorded segments of [start, end) as an HLS VOD playlist (at most 4 hours)."""
    platform = get_platform(request)
    camera = await authorize_playback(session, platform, camera_id, token=token or None)
    begin, finish = recording.check_range(start, end, recording.VOD_MAX)
    found = await repository.segment_spans_between(
        session, camera.id, microseconds(begin), microseconds(finish), limit=100_000
    )
    if not found:
        raise RangeEmpty()
    carried = f"token={quote(token, safe='')}" if token else ""
    return Response(
        rewrite_playlist(vod_playlist(found), carried),
        media_type=PLAYLIST_TYPE,
        headers={"Cache-Control": PLAYLIST_CACHE},
    )


@media_router.get("/streams/recordings/{camera_id}/{segment_id}.ts")
@route_policy(
    public="players fetch recordings without credentials; private cameras check the playback token here",
    rate_limit=MEDIA,
    cors=MEDIA_CORS,
)
async def recorded_segment(
    camera_id: CameraId,
    segment_id: Annotated[int, PathParam(ge=1, le=2**62, description="Segment id.")],
    request: Request,
    session: Session,
    token: Token = None,
) -> Response:
    """One recorded segment (MPEG-TS)."""
    platform = get_platform(request)
    camera = await authorize_playback(session, platform, camera_id, token=token or None)
    segment = await repository.get_segment(session, segment_id)
    if segment is None or segment.camera_id != camera.id:
        raise SegmentNotFound()
    root = media_root(platform.app_settings(StreamsSettings), platform.data_dir)
    path = stored_path(root, segment.storage_key)
    if path is None or not await anyio.to_thread.run_sync(path.is_file):
        raise SegmentNotFound()
    cache = PUBLIC_SEGMENT_CACHE if camera.visibility in OPEN_VISIBILITIES else PRIVATE_SEGMENT_CACHE
    return FileResponse(path, media_type="video/mp2t", headers={"Cache-Control": cache})
