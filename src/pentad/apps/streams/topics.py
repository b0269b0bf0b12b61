"""Authorisation of the streams realtime topics (events.py says what they carry). Clients never publish on
them. A role taken (core grants) re-checks the holder's connections at once; so does deleting a camera."""

from __future__ import annotations

import uuid

from pentad.apps.streams.access import camera_access
from pentad.apps.streams.permissions import STREAMS_USE, STREAMS_WATCH
from pentad.core.errors import AppError
from pentad.core.realtime.topics import TopicAccess, TopicSpec


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


async def _may_view_camera(access: TopicAccess) -> bool:
    """Whoever may view the camera over REST (GET /api/streams/cameras/{id}): a role on it, anyone for a
    public or unlisted camera, a playback token of it."""
    camera_id = _uuid(access.params["camera_id"])
    if camera_id is None or access.action != "subscribe":
        return False
    try:
        await camera_access(access.session, access.platform, access.principal, camera_id)
    except AppError:
        return False
    return True


async def _may_watch_directory(access: TopicAccess) -> bool:
    """Anyone holding `streams.watch` (the hub checks it before this), as GET /api/streams/directory."""
    return access.action == "subscribe"


async def _is_own_user_topic(access: TopicAccess) -> bool:
    user_id = _uuid(access.params["user_id"])
    return (
        user_id is not None
        and access.action == "subscribe"
        and access.principal.is_user
        and access.principal.id == user_id
    )


TOPICS = (
    TopicSpec("streams.camera.{camera_id}", _may_view_camera, history_size=100, requires=STREAMS_WATCH),
    TopicSpec("streams.directory", _may_watch_directory, history_size=100, requires=STREAMS_WATCH),
    TopicSpec("streams.user.{user_id}", _is_own_user_topic, history_size=100, requires=STREAMS_USE),
)
