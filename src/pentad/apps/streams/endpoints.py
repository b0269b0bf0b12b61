"""The streams REST API (/api/streams): cameras, stream keys, roles, playback tokens. Thin: each route
builds the caller's StreamsContext and makes one action call."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.streams.actions import cameras, grants, keys, playback
from pentad.apps.streams.actions.context import StreamsContext
from pentad.apps.streams.permissions import STREAMS_USE, STREAMS_WATCH
from pentad.apps.streams.schemas import (
    CameraCreate,
    CameraRead,
    CameraUpdate,
    DirectoryEntry,
    GrantCreate,
    GrantRead,
    KeyCreate,
    KeyCreated,
    KeyRead,
    PlaybackToken,
)
from pentad.core.auth.dependencies import db_session, request_actor, require, require_user
from pentad.core.auth.principal import Principal
from pentad.core.errors import problem_responses
from pentad.core.platform import get_platform

router = APIRouter(
    prefix="/api/streams",
    tags=["streams"],
    responses=problem_responses(400, 401, 403, 404, 409, 422, 429),
)

CameraId = Annotated[uuid.UUID, Path(description="Camera id.")]
KeyId = Annotated[uuid.UUID, Path(description="Stream key id.")]
UserId = Annotated[uuid.UUID, Path(description="The account's id.")]
Session = Annotated[AsyncSession, Depends(db_session)]
Member = Annotated[Principal, Depends(require(STREAMS_USE))]
Person = Annotated[Principal, Depends(require_user(STREAMS_USE))]
Watcher = Annotated[Principal, Depends(require(STREAMS_WATCH))]


def _context(request: Request, session: AsyncSession, principal: Principal) -> StreamsContext:
    return StreamsContext(session, get_platform(request), principal, request_actor(request, principal))


@router.post("/cameras", status_code=201, summary="Add a camera (you become its owner)")
async def create_camera(
    data: CameraCreate, request: Request, session: Session, principal: Person
) -> CameraRead:
    streams = _context(request, session, principal)
    camera = await cameras.do_create_camera(streams, data, principal.id)
    return await cameras.get_camera(streams, camera.id)


@router.get("/cameras", summary="The cameras you may see: yours, those shared with you, public ones")
async def list_cameras(request: Request, session: Session, principal: Member) -> list[CameraRead]:
    return await cameras.list_cameras(_context(request, session, principal))


@router.get("/me/cameras", summary="The cameras you hold a role on")
async def my_cameras(request: Request, session: Session, principal: Person) -> list[CameraRead]:
    found = await cameras.list_cameras(_context(request, session, principal))
    return [camera for camera in found if camera.role is not None]


@router.get("/directory", summary="Every public camera, live ones first (the grid)")
async def directory(request: Request, session: Session, principal: Watcher) -> list[DirectoryEntry]:
    return await cameras.list_directory(_context(request, session, principal))


@router.get("/cameras/{camera_id}", summary="A camera's settings and status")
async def get_camera(
    camera_id: CameraId, request: Request, session: Session, principal: Watcher
) -> CameraRead:
    return await cameras.get_camera(_context(request, session, principal), camera_id)


@router.patch("/cameras/{camera_id}", summary="Change a camera (owners)")
async def update_camera(
    camera_id: CameraId, data: CameraUpdate, request: Request, session: Session, principal: Member
) -> CameraRead:
    streams = _context(request, session, principal)
    await cameras.do_update_camera(streams, camera_id, data)
    return await cameras.get_camera(streams, camera_id)


@router.delete("/cameras/{camera_id}", status_code=204, summary="Delete a camera (owners)")
async def delete_camera(
    camera_id: CameraId, request: Request, session: Session, principal: Member
) -> Response:
    await cameras.do_delete_camera(_context(request, session, principal), camera_id)
    return Response(status_code=204)


@router.post("/cameras/{camera_id}/keys", status_code=201, summary="Make a stream key, shown once (owners)")
async def create_key(
    camera_id: CameraId, request: Request, session: Session, principal: Member, data: KeyCreate | None = None
) -> KeyCreated:
    name = data.name if data is not None else ""
    return await keys.do_create_key(_context(request, session, principal), camera_id, name)


@router.get("/cameras/{camera_id}/keys", summary="A camera's stream keys, without their secrets (owners)")
async def list_keys(
    camera_id: CameraId, request: Request, session: Session, principal: Member
) -> list[KeyRead]:
    return await keys.list_keys(_context(request, session, principal), camera_id)


@router.delete("/cameras/{camera_id}/keys/{key_id}", status_code=204, summary="Revoke a stream key (owners)")
async def revoke_key(
    camera_id: CameraId, key_id: KeyId, request: Request, session: Session, principal: Member
) -> Response:
    await keys.do_revoke_key(_context(request, session, principal), camera_id, key_id)
    return Response(status_code=204)


@router.post(
    "/cameras/{camera_id}/keys/{key_id}/rotate",
    status_code=201,
    summary="Replace a stream key by a new one, shown once (owners)",
)
async def rotate_key(
    camera_id: CameraId, key_id: KeyId, request: Request, session: Session, principal: Member
) -> KeyCreated:
    return await keys.do_rotate_key(_context(request, session, principal), camera_id, key_id)


@router.get("/cameras/{camera_id}/grants", summary="Who holds which role on a camera (owners)")
async def list_grants(
    camera_id: CameraId, request: Request, session: Session, principal: Member
) -> list[GrantRead]:
    return await grants.list_grants(_context(request, session, principal), camera_id)


@router.post(
    "/cameras/{camera_id}/grants", status_code=201, summary="Give an account a role on a camera (owners)"
)
async def grant_role(
    camera_id: CameraId, data: GrantCreate, request: Request, session: Session, principal: Member
) -> GrantRead:
    return await grants.do_grant(_context(request, session, principal), camera_id, data)


@router.delete(
    "/cameras/{camera_id}/grants/{user_id}", status_code=204, summary="Take an account's role (owners)"
)
async def revoke_grant(
    camera_id: CameraId, user_id: UserId, request: Request, session: Session, principal: Member
) -> Response:
    await grants.do_revoke(_context(request, session, principal), camera_id, user_id)
    return Response(status_code=204)


@router.post("/cameras/{camera_id}/playback-token", summary="A short-lived token that plays this camera only")
async def playback_token(
    camera_id: CameraId, request: Request, session: Session, principal: Member
) -> PlaybackToken:
    return await playback.do_issue_token(_context(request, session, principal), camera_id)
