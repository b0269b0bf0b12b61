"""All SQL of the streams app."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.streams.models import StreamsCamera, StreamsKey, StreamsSession


async def get_camera(session: AsyncSession, camera_id: uuid.UUID) -> StreamsCamera | None:
    """The camera, unless it is deleted."""
    camera = await session.get(StreamsCamera, camera_id)
    return camera if camera is not None and camera.deleted_at is None else None


async def list_cameras(
    session: AsyncSession,
    *,
    ids: Collection[uuid.UUID] | None = None,
    visibility: str | None = None,
    owner_id: uuid.UUID | None = None,
    limit: int = 500,
) -> list[StreamsCamera]:
    """Cameras not deleted, by name, narrowed to `ids` (an empty collection: none), a visibility and an
    owner when given. `ids` with `owner_id` or `visibility` is their union with those ids, not a filter."""
    query = select(StreamsCamera).where(StreamsCamera.deleted_at.is_(None))
    if ids is not None:
        if not ids and owner_id is None and visibility is None:
            return []
        either: list[ColumnElement[bool]] = [StreamsCamera.id.in_(list(ids))] if ids else []
        if owner_id is not None:
            either.append(StreamsCamera.owner_id == owner_id)
        if visibility is not None:
            either.append(StreamsCamera.visibility == visibility)
        query = query.where(or_(*either))
    else:
        if owner_id is not None:
            query = query.where(StreamsCamera.owner_id == owner_id)
        if visibility is not None:
            query = query.where(StreamsCamera.visibility == visibility)
    query = query.order_by(StreamsCamera.name, StreamsCamera.id).limit(limit)
    return list((await session.scalars(query)).all())


async def live_camera_ids(session: AsyncSession, camera_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these cameras have a session that has not ended."""
    if not camera_ids:
        return set()
    query = select(StreamsSession.camera_id).where(
        StreamsSession.ended_at.is_(None), StreamsSession.camera_id.in_(list(camera_ids))
    )
    return set((await session.scalars(query)).all())


# ------------------------------------------------------------------ keys


async def get_key(session: AsyncSession, key_id: uuid.UUID) -> StreamsKey | None:
    return await session.get(StreamsKey, key_id)


async def get_key_by_hash(session: AsyncSession, secret_hash: str) -> StreamsKey | None:
    found: StreamsKey | None = await session.scalar(
        select(StreamsKey).where(StreamsKey.secret_hash == secret_hash)
    )
    return found


async def list_keys(session: AsyncSession, camera_id: uuid.UUID) -> list[StreamsKey]:
    query = (
        select(StreamsKey)
        .where(StreamsKey.camera_id == camera_id)
        .order_by(StreamsKey.created_at, StreamsKey.id)
    )
    return list((await session.scalars(query)).all())


async def revoke_camera_keys(session: AsyncSession, camera_id: uuid.UUID, when: datetime) -> int:
    """Revoke every live key of the camera; how many were."""
    result = await session.execute(
        update(StreamsKey)
        .where(StreamsKey.camera_id == camera_id, StreamsKey.revoked_at.is_(None))
        .values(revoked_at=when)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def touch_key(session: AsyncSession, key_id: uuid.UUID, when: datetime) -> None:
    await session.execute(update(StreamsKey).where(StreamsKey.id == key_id).values(last_used_at=when))


# ------------------------------------------------------------------ sessions


async def get_session(session: AsyncSession, session_id: uuid.UUID) -> StreamsSession | None:
    return await session.get(StreamsSession, session_id)


async def open_sessions(session: AsyncSession, camera_id: uuid.UUID) -> list[StreamsSession]:
    query = select(StreamsSession).where(
        StreamsSession.camera_id == camera_id, StreamsSession.ended_at.is_(None)
    )
    return list((await session.scalars(query)).all())


async def open_session_ids_on_node(session: AsyncSession, node: str) -> list[uuid.UUID]:
    """Sessions a node has not ended (at its media plane's start: left open by a crash)."""
    query = select(StreamsSession.id).where(StreamsSession.node == node, StreamsSession.ended_at.is_(None))
    return list((await session.scalars(query)).all())


async def rtsp_cameras(session: AsyncSession) -> list[StreamsCamera]:
    """Cameras pulled over RTSP (not deleted, with a URL), oldest first."""
    query = (
        select(StreamsCamera)
        .where(
            StreamsCamera.deleted_at.is_(None),
            StreamsCamera.source == "rtsp",
            StreamsCamera.rtsp_url_enc.is_not(None),
        )
        .order_by(StreamsCamera.id)
    )
    return list((await session.execute(query)).scalars())
