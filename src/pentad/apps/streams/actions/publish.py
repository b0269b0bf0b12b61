"""What the media plane asks the control plane: may this key publish, and the lives of the sessions it
accepts. These take the AppContext a service gets (not a request) and own their transactions.

- `authorize_publish(platform, raw_key)`: the camera a stream key publishes to, or None (unknown, revoked,
  garbled, camera deleted or pulled over RTSP). It never raises on bad input and never logs the key.
- `start_session(platform, grant, engine=…, node=…)`: a `streams_sessions` row, `streams.stream_started`,
  `camera.online` on the camera's topic (and the directory's for a public camera).
- `end_session(platform, session_id, reason, …)`: closes it (once), `streams.stream_ended`, `camera.offline`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.streams import repository
from pentad.apps.streams.actions.keys import hash_key, looks_like_key
from pentad.apps.streams.events import (
    DIRECTORY_TOPIC,
    STREAM_ENDED,
    STREAM_STARTED,
    CameraLive,
    CameraUnreachable,
    StreamEnded,
    StreamStarted,
    camera_topic,
)
from pentad.apps.streams.models import StreamsCamera, StreamsSession
from pentad.core.context import AppContext
from pentad.core.db.base import utcnow
from pentad.core.events import emit
from pentad.core.realtime.publish import publish

PUBLISHING_SOURCES = ("rtmp", "whip")


@dataclass(frozen=True)
class PublishGrant:
    """What an accepted publisher may do: publish to this camera, with its settings."""

    camera_id: uuid.UUID
    key_id: uuid.UUID | None
    """None for a pulled camera (RTSP), which has no key."""
    source: str
    profile: str
    recording_mode: str
    visibility: str


async def authorize_publish(platform: AppContext, raw_key: str) -> PublishGrant | None:
    """The grant for a good key (its `last_used_at` is noted), None for anything else. A query string
    after the key (`psk_…?x=y`, as some encoders send) is ignored."""
    key_text = raw_key.partition("?")[0]
    if not looks_like_key(key_text):
        return None
    async with platform.database.transaction() as session:
        key = await repository.get_key_by_hash(session, hash_key(key_text))
        if key is None or key.revoked_at is not None:
            return None
        camera = await repository.get_camera(session, key.camera_id)
        if camera is None or camera.source not in PUBLISHING_SOURCES:
            return None
        await repository.touch_key(session, key.id, utcnow())
        return PublishGrant(
            camera.id, key.id, camera.source, camera.profile, camera.recording_mode, camera.visibility
        )


async def pull_unreachable(
    platform: AppContext, camera_id: uuid.UUID, *, attempt: int, retry_in: float
) -> None:
    """Tell the camera's watchers that its RTSP source failed again (a `camera.unreachable` event)."""
    async with platform.database.transaction() as session:
        camera = await repository.get_camera(session, camera_id)
        if camera is None:
            return
        event = CameraUnreachable(camera_id=camera_id, attempt=attempt, retry_in=round(retry_in, 2))
        publish(session, camera_topic(camera_id), event)


def _notify_live(session: AsyncSession, camera: StreamsCamera | None, event: CameraLive) -> None:
    publish(session, camera_topic(event.camera_id), event)
    if camera is not None and camera.visibility == "public":
        publish(session, DIRECTORY_TOPIC, event)


async def start_session(
    platform: AppContext,
    grant: PublishGrant,
    *,
    engine: str,
    node: str = "",
    video: dict[str, Any] | None = None,
    audio: dict[str, Any] | None = None,
) -> uuid.UUID:
    """Record that the grant's camera went live; the session's id."""
    async with platform.database.transaction() as session:
        row = StreamsSession(
            camera_id=grant.camera_id,
            key_id=grant.key_id,
            engine=engine,
            source=grant.source,
            node=node,
            started_at=utcnow(),
            video=video,
            audio=audio,
        )
        session.add(row)
        await session.flush()
        await emit(
            session,
            STREAM_STARTED.name,
            StreamStarted(camera_id=grant.camera_id, session_id=row.id, engine=engine, source=grant.source),
        )
        camera = await repository.get_camera(session, grant.camera_id)
        _notify_live(
            session, camera, CameraLive(type="camera.online", camera_id=grant.camera_id, session_id=row.id)
        )
        return row.id


async def end_session(
    platform: AppContext, session_id: uuid.UUID, reason: str, *, bytes_in: int | None = None
) -> bool:
    """Close the session; False when it was closed already (or never existed), which changes nothing."""
    async with platform.database.transaction() as session:
        row = await repository.get_session(session, session_id)
        if row is None or row.ended_at is not None:
            return False
        row.ended_at = utcnow()
        row.end_reason = reason[:32]
        if bytes_in is not None:
            row.bytes_in = bytes_in
        await session.flush()
        duration = (row.ended_at - row.started_at).total_seconds()
        await emit(
            session,
            STREAM_ENDED.name,
            StreamEnded(
                camera_id=row.camera_id,
                session_id=row.id,
                engine=row.engine,
                source=row.source,
                duration_s=max(duration, 0.0),
                reason=row.end_reason,
            ),
        )
        camera = await repository.get_camera(session, row.camera_id)
        _notify_live(
            session,
            camera,
            CameraLive(
                type="camera.offline", camera_id=row.camera_id, session_id=row.id, reason=row.end_reason
            ),
        )
        return True
