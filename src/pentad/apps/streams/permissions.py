"""The streams app's named permissions and the per-camera roles that grant them."""

from __future__ import annotations

from pentad.core.auth.permissions import Permission

STREAMS_USE = Permission(
    "streams.use", "Add your own cameras, list the ones you may see, get playback tokens."
)
STREAMS_ADMIN = Permission("streams.admin", "See and manage every camera, its sessions and the ingest setup.")
STREAMS_INGEST = Permission("streams.ingest", "Authorise publishers (nginx-rtmp's callbacks); machines only.")
STREAMS_WATCH = Permission("streams.watch", "Watch cameras you may see and follow their live events.")

CAMERA_VIEW = Permission("streams.camera.view", "Watch a camera and see its settings and status.")
CAMERA_OPERATE = Permission(
    "streams.camera.operate", "Operate a camera: record, export, take snapshots, start and stop pulls."
)
CAMERA_MANAGE = Permission(
    "streams.camera.manage", "Manage a camera: its settings, stream keys, who may use it, deleting it."
)

CAMERA_RESOURCE = "streams.camera"

CAMERA_ROLES = {
    "viewer": (CAMERA_VIEW,),
    "operator": (CAMERA_VIEW, CAMERA_OPERATE),
    "owner": (CAMERA_VIEW, CAMERA_OPERATE, CAMERA_MANAGE),
}

ALL = (STREAMS_USE, STREAMS_ADMIN, STREAMS_INGEST, STREAMS_WATCH, CAMERA_VIEW, CAMERA_OPERATE, CAMERA_MANAGE)
