"""The streams pages (session 1: a minimal camera list with key management and the player; the grid,
timeline and health view come with the media plane): `/streams` lists your cameras and adds one,
`/streams/cameras/{id}` shows a camera and, to its owners, its stream keys (a new key shown once),
`/streams/watch/{id}` plays it live with hls.js (static/streams-player.js).
`/streams/grid` shows every camera one may see as a snapshot tile that plays live on hover or click (the
browser SDK's player, static/streams-sdk.js)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.templating import Jinja2Templates
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from pentad.apps.streams import repository
from pentad.apps.streams.access import OPEN_VISIBILITIES, camera_access
from pentad.apps.streams.actions import cameras, keys
from pentad.apps.streams.actions import recording as recording_actions
from pentad.apps.streams.actions.context import StreamsContext
from pentad.apps.streams.permissions import STREAMS_USE
from pentad.apps.streams.playback import issue_token
from pentad.apps.streams.schemas import CameraCreate, KeyCreated
from pentad.apps.streams.settings import StreamsSettings
from pentad.core.auth.dependencies import db_session, request_actor
from pentad.core.auth.principal import Principal
from pentad.core.errors import AppError
from pentad.core.platform import get_platform
from pentad.core.policy import route_policy
from pentad.core.web.pages.kit import (
    TEMPLATES_DIR,
    PageAccess,
    SignInRequired,
    failure_context,
    parse_form,
    render_page,
    see_other,
    session_principal,
)

templates = Jinja2Templates(directory=[Path(__file__).parent / "templates", TEMPLATES_DIR])

router = APIRouter(include_in_schema=False)

StreamsUser = Annotated[Principal, Depends(PageAccess(STREAMS_USE))]
Session = Annotated[AsyncSession, Depends(db_session)]


def _context(request: Request, session: AsyncSession, principal: Principal) -> StreamsContext:
    return StreamsContext(session, get_platform(request), principal, request_actor(request, principal))


@router.get("/streams")
async def cameras_page(request: Request, principal: StreamsUser, session: Session) -> Response:
    found = await cameras.list_cameras(_context(request, session, principal))
    return render_page(request, "streams_cameras.html", principal, renderer=templates, cameras=found)


@router.post("/streams/cameras")
async def create_camera_form(
    request: Request,
    principal: StreamsUser,
    session: Session,
    name: Annotated[str, Form()],
    visibility: Annotated[str, Form()] = "private",
) -> Response:
    streams = _context(request, session, principal)
    try:
        data = parse_form(CameraCreate, name=name, visibility=visibility)
        camera = await cameras.do_create_camera(streams, data, principal.id)
    except AppError as exc:
        found = await cameras.list_cameras(streams)
        return render_page(
            request, "streams_cameras.html", principal, renderer=templates,
            cameras=found, name=name, visibility=visibility, **failure_context(exc),
        )  # fmt: skip
    return see_other(f"/streams/cameras/{camera.id}")


async def _camera_page(
    request: Request, streams: StreamsContext, principal: Principal, camera_id: uuid.UUID,
    new_key: KeyCreated | None = None,
) -> Response:  # fmt: skip
    camera = await cameras.get_camera(streams, camera_id)
    camera_keys = await keys.list_keys(streams, camera_id) if camera.can_manage else []
    return render_page(
        request, "streams_camera.html", principal, renderer=templates,
        camera=camera, keys=camera_keys, new_key=new_key, rtmp_url=keys.rtmp_url(streams),
    )  # fmt: skip


@router.get("/streams/cameras/{camera_id}")
async def camera_page(
    camera_id: uuid.UUID, request: Request, principal: StreamsUser, session: Session
) -> Response:
    return await _camera_page(request, _context(request, session, principal), principal, camera_id)


@router.post("/streams/cameras/{camera_id}/keys")
async def create_key_form(
    camera_id: uuid.UUID,
    request: Request,
    principal: StreamsUser,
    session: Session,
    name: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """The new key is in this response only (pages are never cached); reloading shows its hint."""
    streams = _context(request, session, principal)
    created = await keys.do_create_key(streams, camera_id, name)
    return await _camera_page(request, streams, principal, camera_id, new_key=created)


@router.post("/streams/cameras/{camera_id}/keys/{key_id}/revoke")
async def revoke_key_form(
    camera_id: uuid.UUID, key_id: uuid.UUID, request: Request, principal: StreamsUser, session: Session
) -> Response:
    await keys.do_revoke_key(_context(request, session, principal), camera_id, key_id)
    return see_other(f"/streams/cameras/{camera_id}")


PLAYER_CSP = {"media-src": "'self' blob:", "worker-src": "'self' blob:", "connect-src": "'self'"}
"""hls.js feeds the video element through Media Source (a blob: URL) and parses in a blob: worker."""


@router.get("/streams/watch/{camera_id}")
@route_policy(public="anyone may watch a public or unlisted camera; private ones need a role", csp=PLAYER_CSP)
async def watch_page(camera_id: uuid.UUID, request: Request, session: Session) -> Response:
    """The live player. A private camera's page needs a signed-in viewer and carries a playback token,
    which the player renews (POST /api/streams/cameras/{id}/playback-token) before it expires."""
    platform = get_platform(request)
    principal = await session_principal(request)
    camera = await repository.get_camera(session, camera_id)
    if camera is not None and camera.visibility not in OPEN_VISIBILITIES:
        if principal is None:
            raise SignInRequired(request.url.path)
        try:
            await camera_access(session, platform, principal, camera_id)
        except AppError:
            camera = None
    if camera is None:
        return render_page(
            request, "error.html", principal, renderer=templates, status_code=404,
            title="No such camera", message="No such camera, or it is not shared with you.",
        )  # fmt: skip
    settings = platform.app_settings(StreamsSettings)
    base = (settings.public_media_url or "").rstrip("/")  # unset: this site, whatever its address
    source = f"{base}/streams/media/{camera.id}/index.m3u8"
    token: str | None = None
    if camera.visibility not in OPEN_VISIBILITIES:
        token = issue_token(platform.signing_secret, camera.id, settings.playback_token_ttl)
        source = f"{source}?token={token}"
    live = bool(await repository.live_camera_ids(session, [camera.id]))
    return render_page(
        request, "streams_player.html", principal, renderer=templates,
        camera=camera, live=live, source=source, token=token,
        token_ttl=settings.playback_token_ttl,
        whep=f"{base}/streams/whep/{camera.id}",
    )  # fmt: skip


# ------------------------------------------------------------------ recordings: timeline, playback, export


@router.get("/streams/cameras/{camera_id}/recordings")
@route_policy(csp=PLAYER_CSP)
async def recordings_page(
    camera_id: uuid.UUID, request: Request, principal: StreamsUser, session: Session
) -> Response:
    """The last 24 hours of a camera's recordings as a timeline; a span plays (VOD HLS with hls.js, the
    page's playback token for a private camera) and operators export the chosen range to an MP4."""
    streams = _context(request, session, principal)
    camera = await cameras.get_camera(streams, camera_id)
    timeline = await recording_actions.get_timeline(streams, camera_id, None, None)
    settings = streams.settings
    token: str | None = None
    if camera.visibility not in OPEN_VISIBILITIES:
        token = issue_token(streams.platform.signing_secret, camera.id, settings.playback_token_ttl)
    window = (timeline.end - timeline.start).total_seconds()
    bars = [
        {
            "span": span,
            "left": round((span.start - timeline.start).total_seconds() / window * 100, 3),
            "width": max(round((span.end - span.start).total_seconds() / window * 100, 3), 0.2),
        }
        for span in timeline.spans
    ]
    return render_page(
        request, "streams_recordings.html", principal, renderer=templates,
        camera=camera, timeline=timeline, bars=bars, token=token, token_ttl=settings.playback_token_ttl,
        vod_url=f"/streams/recordings/{camera.id}/vod.m3u8", export_max=settings.export.max_seconds,
    )  # fmt: skip


# ------------------------------------------------------------------ the camera grid


@router.get("/streams/grid")
@route_policy(csp=PLAYER_CSP)
async def grid_page(request: Request, principal: StreamsUser, session: Session) -> Response:
    """Every camera you may see as a tile: live ones show their latest snapshot (renewed every few
    seconds) and play live with the SDK's player (static/streams-sdk.js) while hovered or after a click;
    leaving the tile stops the player. A private camera's tile carries a playback token of that camera."""
    streams = _context(request, session, principal)
    found = await cameras.list_cameras(streams)
    settings = streams.settings
    base = (settings.public_media_url or "").rstrip("/")
    tiles = []
    for camera in sorted(found, key=lambda c: (not c.live, c.name.lower())):
        token = None
        if camera.visibility not in OPEN_VISIBILITIES:
            token = issue_token(streams.platform.signing_secret, camera.id, settings.playback_token_ttl)
        tiles.append({"camera": camera, "token": token})
    return render_page(
        request, "streams_grid.html", principal, renderer=templates,
        tiles=tiles, media_base=base, token_ttl=settings.playback_token_ttl,
    )  # fmt: skip


# ------------------------------------------------------------------ health view


@router.get("/streams/cameras/{camera_id}/health")
async def health_page(
    camera_id: uuid.UUID, request: Request, principal: StreamsUser, session: Session
) -> Response:
    """A camera's live figures (bitrate, frame rate, keyframe interval, dropped frames, viewers) and a
    chart of the last minutes, from GET /api/streams/cameras/{id}/health and then the camera's hub topic
    (static/streams-health.js, uPlot from /static/vendor). Whoever may view the camera may see it."""
    streams = _context(request, session, principal)
    camera = await cameras.get_camera(streams, camera_id)
    return render_page(
        request, "streams_health.html", principal, renderer=templates,
        camera=camera, segment_seconds=streams.settings.hls_segment_seconds,
    )  # fmt: skip
