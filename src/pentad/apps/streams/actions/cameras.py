"""Cameras: create, list, read, change, delete."""

from __future__ import annotations

import ipaddress
import uuid
from urllib.parse import urlsplit

from pentad.apps.streams import repository
from pentad.apps.streams.access import CameraAccess, camera_permissions, role_of
from pentad.apps.streams.actions.context import StreamsContext
from pentad.apps.streams.events import DIRECTORY_TOPIC, CameraChanged, CameraLive, camera_topic
from pentad.apps.streams.exceptions import RtspTargetNotAllowed
from pentad.apps.streams.models import StreamsCamera
from pentad.apps.streams.permissions import CAMERA_MANAGE, CAMERA_RESOURCE, CAMERA_VIEW
from pentad.apps.streams.schemas import CameraCreate, CameraRead, CameraUpdate, DirectoryEntry
from pentad.apps.streams.views import camera_read, rtsp_context
from pentad.core import audit
from pentad.core.auth.grants import delete_resource_grants, grant_role, resource_ids_for
from pentad.core.db.base import utcnow, uuid7
from pentad.core.errors import BadRequest
from pentad.core.netguard import is_public_address
from pentad.core.realtime.publish import publish, recheck_topic

LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")


def check_rtsp_target(streams: StreamsContext, url: str) -> None:
    """Camera owners may pull only from public addresses; streams admins from private ones too, while
    RTSP__ALLOW_PRIVATE says so (noted on the camera, `rtsp_private_allowed`). Host names are resolved and
    checked by the puller each time it connects (media/rtsp.py pinned_url); here a literal address or a
    local name is refused at once."""
    if streams.is_admin and streams.settings.rtsp.allow_private:
        return
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host in LOCAL_NAMES or host.endswith(".localhost"):
        raise RtspTargetNotAllowed()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return
    if not is_public_address(address):
        raise RtspTargetNotAllowed()


def private_approved(streams: StreamsContext) -> bool:
    """Would this caller's RTSP URL be pulled from a private address (see check_rtsp_target)?"""
    return streams.is_admin and streams.settings.rtsp.allow_private


def _check_source(source: str, rtsp_url: str | None) -> None:
    if source == "rtsp" and rtsp_url is None:
        raise BadRequest("A camera of source `rtsp` needs its `rtsp_url`.", code="rtsp_url_required")
    if source != "rtsp" and rtsp_url is not None:
        raise BadRequest("Only cameras of source `rtsp` take an `rtsp_url`.", code="rtsp_url_unexpected")


async def do_create_camera(streams: StreamsContext, data: CameraCreate, owner_id: uuid.UUID) -> StreamsCamera:
    """A new camera; `owner_id` (the caller, or an account named on the command line) gets its owner role."""
    _check_source(data.source, data.rtsp_url)
    if data.rtsp_url is not None:
        check_rtsp_target(streams, data.rtsp_url)
    camera = StreamsCamera(
        id=uuid7(),
        owner_id=owner_id,
        **data.model_dump(exclude={"rtsp_url"}),
    )
    if data.rtsp_url is not None:
        camera.rtsp_url_enc = streams.platform.keyring.encrypt(data.rtsp_url, context=rtsp_context(camera.id))
        camera.rtsp_private_allowed = private_approved(streams)
    streams.session.add(camera)
    await streams.session.flush()
    await grant_role(
        streams.session,
        streams.platform,
        owner_id,
        CAMERA_RESOURCE,
        camera.id,
        "owner",
        actor=streams.audit_actor,
    )
    audit.record(
        streams.session,
        streams.audit_actor,
        "streams.camera.create",
        resource_type=CAMERA_RESOURCE,
        resource_id=str(camera.id),
        visibility=camera.visibility,
        source=camera.source,
    )
    return camera


async def get_camera(streams: StreamsContext, camera_id: uuid.UUID) -> CameraRead:
    access = await streams.access(camera_id)
    live = await repository.live_camera_ids(streams.session, [camera_id])
    return camera_read(streams.platform, access, live=bool(live))


async def list_cameras(streams: StreamsContext) -> list[CameraRead]:
    """The cameras the caller may see listed: those they hold a role on and every public one (all of them
    for streams admins). Unlisted cameras of others play by id but are never listed."""
    principal = streams.principal
    if streams.is_admin:
        cameras = await repository.list_cameras(streams.session)
    elif principal is not None and principal.is_user:
        ids = await resource_ids_for(
            streams.session, streams.platform.permissions, principal.id, CAMERA_RESOURCE, CAMERA_VIEW
        )
        cameras = await repository.list_cameras(
            streams.session, ids=[uuid.UUID(i) for i in ids], visibility="public"
        )
    else:
        cameras = await repository.list_cameras(streams.session, visibility="public")
    live = await repository.live_camera_ids(streams.session, [camera.id for camera in cameras])
    found = []
    for camera in cameras:
        if principal is None:
            access = CameraAccess(camera, frozenset({CAMERA_VIEW.key, CAMERA_MANAGE.key}), "owner")
        else:
            permissions, granted = await camera_permissions(
                streams.session, streams.platform, principal, camera
            )
            if CAMERA_VIEW.key not in permissions:
                continue
            access = CameraAccess(camera, permissions, role_of(granted))
        found.append(camera_read(streams.platform, access, live=camera.id in live))
    return found


async def list_directory(streams: StreamsContext) -> list[DirectoryEntry]:
    """Every public camera (the grid), live ones first."""
    cameras = await repository.list_cameras(streams.session, visibility="public")
    live = await repository.live_camera_ids(streams.session, [camera.id for camera in cameras])
    entries = [DirectoryEntry(id=camera.id, name=camera.name, live=camera.id in live) for camera in cameras]
    return sorted(entries, key=lambda entry: not entry.live)


async def do_update_camera(streams: StreamsContext, camera_id: uuid.UUID, data: CameraUpdate) -> CameraAccess:
    access = await streams.access(camera_id, CAMERA_MANAGE)
    camera = access.camera
    changes = data.model_dump(exclude_unset=True)
    for required in ("name", "visibility", "source", "profile", "recording_mode", "rtsp_transport"):
        if required in changes and changes[required] is None:
            raise BadRequest(f"`{required}` may not be null.", code="field_required")
    source = changes.get("source", camera.source)
    if "rtsp_url" in changes:
        rtsp_url = changes.pop("rtsp_url")
        if rtsp_url is not None:
            check_rtsp_target(streams, rtsp_url)
        camera.rtsp_private_allowed = rtsp_url is not None and private_approved(streams)
    else:
        rtsp_url = (
            None
            if camera.rtsp_url_enc is None
            else streams.platform.keyring.decrypt(camera.rtsp_url_enc, context=rtsp_context(camera.id))
        )
    if source != "rtsp" and "source" in changes and "rtsp_url" not in data.model_fields_set:
        rtsp_url = None  # leaving RTSP drops the URL with its credentials
    _check_source(source, rtsp_url)
    was_public = camera.visibility == "public"
    was_open = camera.visibility != "private"
    for name, value in changes.items():
        setattr(camera, name, value)
    camera.rtsp_url_enc = (
        None
        if rtsp_url is None
        else streams.platform.keyring.encrypt(rtsp_url, context=rtsp_context(camera.id))
    )
    camera.updated_at = utcnow()
    await streams.session.flush()
    audit.record(
        streams.session,
        streams.audit_actor,
        "streams.camera.update",
        resource_type=CAMERA_RESOURCE,
        resource_id=str(camera.id),
        fields=sorted(data.model_fields_set),
    )
    notify_camera_changed(streams, camera, "camera.updated", was_public=was_public)
    if was_open and camera.visibility == "private":
        # Anyone may have watched it without a role: every subscriber is asked again (owner, roles and
        # its playback tokens stay; the rest get `unsubscribed`).
        recheck_topic(streams.session, camera_topic(camera.id))
    return access


async def do_delete_camera(streams: StreamsContext, camera_id: uuid.UUID) -> None:
    """The camera goes: its keys are revoked, every role on it taken (those holders' subscriptions to it
    end), open sessions are closed. Its recordings stay until retention removes them."""
    camera = (await streams.access(camera_id, CAMERA_MANAGE)).camera
    now = utcnow()
    camera.deleted_at = now
    camera.rtsp_url_enc = None
    await repository.revoke_camera_keys(streams.session, camera.id, now)
    for live in await repository.open_sessions(streams.session, camera.id):
        live.ended_at = now
        live.end_reason = "camera_deleted"
        publish(
            streams.session,
            camera_topic(camera.id),
            CameraLive(
                type="camera.offline", camera_id=camera.id, session_id=live.id, reason="camera_deleted"
            ),
        )
    await delete_resource_grants(
        streams.session, streams.platform, CAMERA_RESOURCE, camera.id, actor=streams.audit_actor
    )
    await streams.session.flush()
    audit.record(
        streams.session,
        streams.audit_actor,
        "streams.camera.delete",
        resource_type=CAMERA_RESOURCE,
        resource_id=str(camera.id),
    )
    notify_camera_changed(streams, camera, "camera.deleted", was_public=camera.visibility == "public")
    recheck_topic(streams.session, camera_topic(camera.id))  # a deleted camera is readable by nobody


def notify_camera_changed(
    streams: StreamsContext, camera: StreamsCamera, change: str, *, was_public: bool
) -> None:
    """On the camera's topic; on the directory too when the camera is or was public."""
    event = CameraChanged(
        type="camera.deleted" if change == "camera.deleted" else "camera.updated",
        camera_id=camera.id,
        name=camera.name,
        visibility=camera.visibility,
    )
    publish(streams.session, camera_topic(camera.id), event)
    if was_public or camera.visibility == "public":
        publish(streams.session, DIRECTORY_TOPIC, event)
