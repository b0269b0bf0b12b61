"""The streams pages (session 1: a minimal camera list with key management; the grid, player, timeline
and health view come with the media plane): `/streams` lists your cameras and adds one,
`/streams/cameras/{id}` shows a camera and, to its owners, its stream keys (a new key shown once)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.templating import Jinja2Templates
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from pentad.apps.streams.actions import cameras, keys
from pentad.apps.streams.actions.context import StreamsContext
from pentad.apps.streams.permissions import STREAMS_USE
from pentad.apps.streams.schemas import CameraCreate, KeyCreated
from pentad.core.auth.dependencies import db_session, request_actor
from pentad.core.auth.principal import Principal
from pentad.core.errors import AppError
from pentad.core.platform import get_platform
from pentad.core.web.pages.kit import (
    TEMPLATES_DIR,
    PageAccess,
    failure_context,
    parse_form,
    render_page,
    see_other,
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
