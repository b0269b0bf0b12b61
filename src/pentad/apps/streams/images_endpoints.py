"""A live camera's latest snapshot: `GET /streams/media/{camera_id}/snapshot.jpg` (also the grid's thumbnail).

The same rules as the HLS routes (media_endpoints.py), decided by the same helper
(access.authorize_playback): public and unlisted cameras for anyone, private ones with a playback token of
that camera in the query (`?token=psp_…`; none 401 `playback_token_required`, another camera's 403
`playback_token_scope`, a bad one 401 `playback_token_invalid`). A camera without a live session is 404
`stream_offline`. The picture changes all the time, so `Cache-Control: no-cache` (`private, no-cache` for a
private camera, so shared caches keep none). What it costs and how it is made: media/images.py. A snapshot
that cannot be made now is 503 (`snapshot_not_ready`, `snapshot_failed`, `snapshot_timeout`) with
Retry-After.

This router is registered before media_endpoints' catch-all `/streams/media/{camera_id}/{path}`.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from pentad.apps.streams import repository
from pentad.apps.streams.access import OPEN_VISIBILITIES, authorize_playback
from pentad.apps.streams.media.images import SnapshotRequest, latest_snapshot, snapshot_path
from pentad.apps.streams.media.packager import media_root
from pentad.apps.streams.media_endpoints import MEDIA, MEDIA_CORS, CameraId, Session, camera_hls_dir
from pentad.apps.streams.settings import StreamsSettings
from pentad.core.errors import NotFound
from pentad.core.platform import get_platform
from pentad.core.policy import route_policy

router = APIRouter(include_in_schema=False)

PUBLIC_SNAPSHOT_CACHE: Final = "no-cache"
PRIVATE_SNAPSHOT_CACHE: Final = "private, no-cache"


@router.get("/streams/media/{camera_id}/snapshot.jpg")
@route_policy(
    public="grids and players fetch snapshots without credentials; private cameras check the playback token",
    rate_limit=MEDIA,
    cors=MEDIA_CORS,
)
async def snapshot(
    camera_id: CameraId,
    request: Request,
    session: Session,
    token: Annotated[str | None, Query(max_length=512, description="Playback token (`psp_…`).")] = None,
) -> Response:
    """The latest picture of a live camera (JPEG)."""
    platform = get_platform(request)
    camera = await authorize_playback(session, platform, camera_id, token=token or None)
    live = await repository.open_sessions(session, camera.id)
    if not live:
        raise NotFound("The camera is not streaming now.", code="stream_offline")
    settings = platform.app_settings(StreamsSettings)
    root = media_root(settings, platform.data_dir)
    data = await latest_snapshot(
        SnapshotRequest(
            camera_id=camera.id,
            hls=camera_hls_dir(platform, camera.id),
            target=snapshot_path(root, camera.id),
            since=min(row.started_at for row in live).timestamp(),
            ffmpeg=settings.ffmpeg,
            max_age=settings.snapshot_max_age,
        )
    )
    cache = PUBLIC_SNAPSHOT_CACHE if camera.visibility in OPEN_VISIBILITIES else PRIVATE_SNAPSHOT_CACHE
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": cache})
