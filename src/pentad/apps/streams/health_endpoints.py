"""A camera's live health: `GET /api/streams/cameras/{camera_id}/health`, for whoever may view the camera
(as GET /api/streams/cameras/{id}: a role on it, anyone for a public or unlisted camera, a playback token of
it; others get 404, another camera's token 403). The figures are the media plane's latest (every 2 s,
media/health.py); the camera's hub topic carries the same as `camera.health` events when they change."""

from __future__ import annotations

from fastapi import APIRouter, Request

from pentad.apps.streams import repository
from pentad.apps.streams.access import camera_access
from pentad.apps.streams.actions.live import current_health
from pentad.apps.streams.endpoints import CameraId, Session, Watcher
from pentad.apps.streams.schemas import HealthRead
from pentad.core.errors import problem_responses
from pentad.core.platform import get_platform

router = APIRouter(
    prefix="/api/streams", tags=["streams"], responses=problem_responses(401, 403, 404, 422, 429)
)


@router.get("/cameras/{camera_id}/health", summary="A live camera's bitrate, frame rate, keyframes, viewers")
async def camera_health(
    camera_id: CameraId, request: Request, session: Session, principal: Watcher
) -> HealthRead:
    platform = get_platform(request)
    access = await camera_access(session, platform, principal, camera_id)
    live = bool(await repository.live_camera_ids(session, [access.camera.id]))
    health = await current_health(platform, access.camera.id) if live else None
    return HealthRead(live=live, health=health)
