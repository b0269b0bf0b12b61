"""API views of the streams app's rows."""

from __future__ import annotations

from typing import cast
from urllib.parse import urlsplit, urlunsplit

from pentad.apps.streams.access import CameraAccess
from pentad.apps.streams.models import StreamsCamera, StreamsKey
from pentad.apps.streams.permissions import CAMERA_MANAGE, CAMERA_OPERATE
from pentad.apps.streams.schemas import CameraRead, CameraRole, KeyRead
from pentad.core.context import AppContext
from pentad.core.crypto import column_context

MASK = "****"


def rtsp_context(camera_id: object) -> str:
    return column_context("streams_cameras", "rtsp_url_enc", camera_id)


def masked_url(url: str) -> str:
    """The URL with its password (if any) replaced by `****`; the user name stays, to tell accounts apart."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:{MASK}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def camera_read(platform: AppContext, access: CameraAccess, *, live: bool) -> CameraRead:
    camera: StreamsCamera = access.camera
    manager = access.has(CAMERA_MANAGE)
    rtsp_url = None
    if manager and camera.rtsp_url_enc is not None:
        rtsp_url = masked_url(platform.keyring.decrypt(camera.rtsp_url_enc, context=rtsp_context(camera.id)))
    return CameraRead(
        id=camera.id,
        owner_id=camera.owner_id,
        name=camera.name,
        visibility=camera.visibility,
        source=camera.source,
        profile=camera.profile,
        recording_mode=camera.recording_mode,
        retention_days=camera.retention_days,
        retention_bytes=camera.retention_bytes,
        thumbnail_interval=camera.thumbnail_interval,
        rtsp_url=rtsp_url,
        rtsp_transport=camera.rtsp_transport,
        live=live,
        role=cast("CameraRole | None", access.role),
        can_operate=access.has(CAMERA_OPERATE),
        can_manage=manager,
        created_at=camera.created_at,
        updated_at=camera.updated_at,
    )


def key_read(key: StreamsKey) -> KeyRead:
    return KeyRead.model_validate(key)
