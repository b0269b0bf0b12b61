"""Who may do what with a camera: the one place the streams app decides it (actions, topics and the media
routes all ask here).

A caller holds `streams.camera.view` / `.operate` / `.manage` on a camera through a core grant of its
`viewer`, `operator` or `owner` role (`streams.camera:<id>`); `streams.admin` holds all three on every
camera. Anyone may view (watch, read the status of) a public or unlisted camera. A playback token
(`psp_…`) views its own camera only. An API key or token with scopes keeps only what its scopes name.
A camera the caller may not view does not exist for them (404); one they may view but not change answers
403 to changes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.streams import repository
from pentad.apps.streams.exceptions import (
    CameraNotFound,
    CameraPermission,
    PlaybackTokenInvalid,
    PlaybackTokenRequired,
    PlaybackTokenScope,
)
from pentad.apps.streams.models import StreamsCamera
from pentad.apps.streams.permissions import (
    CAMERA_MANAGE,
    CAMERA_OPERATE,
    CAMERA_RESOURCE,
    CAMERA_VIEW,
    STREAMS_ADMIN,
)
from pentad.apps.streams.playback import is_playback_principal, read_token
from pentad.core.auth.grants import granted_permissions
from pentad.core.auth.permissions import Permission
from pentad.core.auth.principal import Principal
from pentad.core.context import AppContext

EVERYTHING = frozenset({CAMERA_VIEW.key, CAMERA_OPERATE.key, CAMERA_MANAGE.key})
OPEN_VISIBILITIES = ("public", "unlisted")


@dataclass(frozen=True)
class CameraAccess:
    camera: StreamsCamera
    permissions: frozenset[str]
    """What the caller may do: the camera's grants (or streams.admin), plus the view of an open camera."""
    role: str | None
    """The role the caller's grants amount to (admins: owner); None when it only has the open view."""

    def has(self, permission: Permission) -> bool:
        return permission.key in self.permissions


def role_of(granted: frozenset[str]) -> str | None:
    if CAMERA_MANAGE.key in granted:
        return "owner"
    if CAMERA_OPERATE.key in granted:
        return "operator"
    return "viewer" if CAMERA_VIEW.key in granted else None


def _scoped(principal: Principal, permissions: frozenset[str]) -> frozenset[str]:
    return permissions & principal.scopes if principal.scopes is not None else permissions


async def camera_permissions(
    session: AsyncSession, platform: AppContext, principal: Principal, camera: StreamsCamera
) -> tuple[frozenset[str], frozenset[str]]:
    """What the principal may do with the camera, and the part of it its grants (or streams.admin) give."""
    if is_playback_principal(principal):
        return (frozenset({CAMERA_VIEW.key}) if principal.id == camera.id else frozenset()), frozenset()
    if principal.has(STREAMS_ADMIN):
        granted = _scoped(principal, EVERYTHING)
    elif principal.is_user:
        held = await granted_permissions(
            session, platform.permissions, principal.id, CAMERA_RESOURCE, str(camera.id)
        )
        granted = _scoped(principal, held)
    else:
        granted = frozenset()
    if camera.visibility in OPEN_VISIBILITIES:
        return granted | {CAMERA_VIEW.key}, granted
    return granted, granted


async def camera_access(
    session: AsyncSession,
    platform: AppContext,
    principal: Principal,
    camera_id: uuid.UUID,
    permission: Permission = CAMERA_VIEW,
) -> CameraAccess:
    """The camera if the caller holds `permission` on it; CameraNotFound (404) when they may not even view
    it, CameraPermission (403) when they may view but not do this. A playback token of another camera
    gets PlaybackTokenScope (403)."""
    camera = await repository.get_camera(session, camera_id)
    if camera is None:
        raise CameraNotFound()
    permissions, granted = await camera_permissions(session, platform, principal, camera)
    if CAMERA_VIEW.key not in permissions:
        if is_playback_principal(principal):
            raise PlaybackTokenScope()
        raise CameraNotFound()
    if permission.key not in permissions:
        raise CameraPermission()
    return CameraAccess(camera, permissions, role_of(granted))


async def authorize_playback(
    session: AsyncSession,
    platform: AppContext,
    camera_id: uuid.UUID,
    *,
    principal: Principal | None = None,
    token: str | None = None,
) -> StreamsCamera:
    """May this request play the camera's media (playlists, segments, snapshots, WHEP)? Public and unlisted
    cameras play for anyone; a private one for a caller who may view it, or with a playback token of this
    camera. CameraNotFound (404), PlaybackTokenRequired / PlaybackTokenInvalid (401), PlaybackTokenScope
    (403, a token of another camera)."""
    camera = await repository.get_camera(session, camera_id)
    if camera is None:
        raise CameraNotFound()
    if camera.visibility in OPEN_VISIBILITIES:
        return camera
    if token is not None:
        grant = read_token(platform.signing_secret, token)
        if grant is None:
            raise PlaybackTokenInvalid()
        if grant.camera_id != camera.id:
            raise PlaybackTokenScope()
        return camera
    if principal is None:
        raise PlaybackTokenRequired()
    return (await camera_access(session, platform, principal, camera_id)).camera
