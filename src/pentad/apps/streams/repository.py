"""All SQL of the streams app."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import ColumnElement, Row, case, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.streams.models import (
    StreamsCamera,
    StreamsExport,
    StreamsKey,
    StreamsRecording,
    StreamsSegment,
    StreamsSession,
)


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


# ------------------------------------------------------------------ recordings, segments, exports


async def open_recordings(session: AsyncSession, camera_ids: Collection[uuid.UUID]) -> list[StreamsRecording]:
    """The recordings of these cameras that have not ended."""
    if not camera_ids:
        return []
    query = select(StreamsRecording).where(
        StreamsRecording.camera_id.in_(list(camera_ids)), StreamsRecording.ended_at.is_(None)
    )
    return list((await session.scalars(query)).all())


async def recording_modes(session: AsyncSession, camera_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The recording mode of each of these cameras (deleted ones: `off`)."""
    if not camera_ids:
        return {}
    query = select(StreamsCamera.id, StreamsCamera.recording_mode, StreamsCamera.deleted_at).where(
        StreamsCamera.id.in_(list(camera_ids))
    )
    return {row.id: ("off" if row.deleted_at else row.recording_mode) for row in await session.execute(query)}


async def add_stored_bytes(session: AsyncSession, camera_id: uuid.UUID, change: int) -> None:
    """The camera's running total of recorded bytes moved by `change` (its updated_at left as it is)."""
    await session.execute(
        update(StreamsCamera)
        .where(StreamsCamera.id == camera_id)
        .values(stored_bytes=StreamsCamera.stored_bytes + change, updated_at=StreamsCamera.updated_at)
        .execution_options(synchronize_session=False)
    )


async def recordings_between(
    session: AsyncSession, camera_id: uuid.UUID, start: datetime, end: datetime, limit: int
) -> list[StreamsRecording]:
    """Recordings of the camera that overlap [start, end), oldest first."""
    query = (
        select(StreamsRecording)
        .where(
            StreamsRecording.camera_id == camera_id,
            StreamsRecording.started_at < end,
            or_(StreamsRecording.ended_at.is_(None), StreamsRecording.ended_at >= start),
        )
        .order_by(StreamsRecording.started_at, StreamsRecording.id)
        .limit(limit)
    )
    return list((await session.scalars(query)).all())


SEGMENT_SPAN_US = 60 * 1_000_000
"""No segment is longer than this (recorded segments are HLS segments: a GOP or so, HLS_SEGMENT_SECONDS at
most 10): a range query looks this far before its start for a segment that began earlier and reaches into
it."""


async def segments_between(
    session: AsyncSession, camera_id: uuid.UUID, start_us: int, end_us: int, limit: int
) -> list[StreamsSegment]:
    """Segments of the camera that overlap [start_us, end_us), in time order."""
    query = (
        select(StreamsSegment)
        .where(
            StreamsSegment.camera_id == camera_id,
            StreamsSegment.start_us < end_us,
            StreamsSegment.start_us > start_us - SEGMENT_SPAN_US,
        )
        .order_by(StreamsSegment.start_us, StreamsSegment.id)
    )
    found = [
        row
        for row in (await session.scalars(query)).all()
        if row.start_us + row.duration_ms * 1000 > start_us
    ]
    return found[:limit]


async def segment_spans_between(
    session: AsyncSession, camera_id: uuid.UUID, start_us: int, end_us: int, limit: int
) -> list[Row[int, uuid.UUID, int, int]]:
    """(id, recording_id, start_us, duration_ms) of the segments overlapping [start_us, end_us), in time
    order: what a playlist needs, without loading whole rows."""
    query = (
        select(
            StreamsSegment.id,
            StreamsSegment.recording_id,
            StreamsSegment.start_us,
            StreamsSegment.duration_ms,
        )
        .where(
            StreamsSegment.camera_id == camera_id,
            StreamsSegment.start_us < end_us,
            StreamsSegment.start_us > start_us - SEGMENT_SPAN_US,
        )
        .order_by(StreamsSegment.start_us, StreamsSegment.id)
    )
    found = [
        row
        for row in (await session.execute(query)).all()
        if row.start_us + row.duration_ms * 1000 > start_us
    ]
    return found[:limit]


async def timeline_spans(
    session: AsyncSession, camera_id: uuid.UUID, start_us: int, end_us: int, tolerance_us: int
) -> list[tuple[int, int, int, int]]:
    """(start µs, end µs, segments, bytes) of each stretch of the camera's segments overlapping
    [start_us, end_us) with no gap longer than `tolerance_us`, in time order. Computed by the database
    (gaps and islands with window functions: SQLite 3.25+, PostgreSQL, MariaDB 10.2+), so a day of
    one-second segments is a few rows, not 86,400."""
    ends = StreamsSegment.start_us + StreamsSegment.duration_ms * 1000
    order = (StreamsSegment.start_us, StreamsSegment.id)
    previous_end = func.lag(ends).over(order_by=order)
    marked = (
        select(
            StreamsSegment.start_us.label("s"),
            ends.label("e"),
            StreamsSegment.size_bytes.label("b"),
            StreamsSegment.id.label("i"),
            case(
                (or_(previous_end.is_(None), StreamsSegment.start_us > previous_end + tolerance_us), 1),
                else_=0,
            ).label("new"),
        )
        .where(
            StreamsSegment.camera_id == camera_id,
            StreamsSegment.start_us < end_us,
            StreamsSegment.start_us > start_us - SEGMENT_SPAN_US,
            ends > start_us,
        )
        .subquery("marked")
    )
    islands = select(
        marked.c.s,
        marked.c.e,
        marked.c.b,
        func.sum(marked.c.new).over(order_by=(marked.c.s, marked.c.i), rows=(None, 0)).label("island"),
    ).subquery("islands")
    query = (
        select(func.min(islands.c.s), func.max(islands.c.e), func.count(), func.sum(islands.c.b))
        .group_by(islands.c.island)
        .order_by(func.min(islands.c.s))
    )
    return [(int(a), int(b), int(c), int(d)) for a, b, c, d in (await session.execute(query)).all()]


async def get_segment(session: AsyncSession, segment_id: int) -> StreamsSegment | None:
    return await session.get(StreamsSegment, segment_id)


async def cameras_with_segments(session: AsyncSession) -> list[StreamsCamera]:
    """Every camera (deleted ones too) that has recorded segments."""
    query = select(StreamsCamera).where(StreamsCamera.id.in_(select(StreamsSegment.camera_id).distinct()))
    return list((await session.scalars(query)).all())


async def oldest_segments(
    session: AsyncSession, camera_id: uuid.UUID, limit: int, *, before_us: int | None = None
) -> list[StreamsSegment]:
    query = select(StreamsSegment).where(StreamsSegment.camera_id == camera_id)
    if before_us is not None:
        query = query.where(StreamsSegment.start_us < before_us)
    query = query.order_by(StreamsSegment.start_us, StreamsSegment.id).limit(limit)
    return list((await session.scalars(query)).all())


async def delete_segments(session: AsyncSession, segment_ids: Collection[int]) -> None:
    await session.execute(
        delete(StreamsSegment)
        .where(StreamsSegment.id.in_(list(segment_ids)))
        .execution_options(synchronize_session=False)
    )


async def delete_empty_recordings(session: AsyncSession, camera_id: uuid.UUID) -> int:
    """Delete the camera's ended recordings that have no segment left; how many."""
    result = await session.execute(
        delete(StreamsRecording)
        .where(
            StreamsRecording.camera_id == camera_id,
            StreamsRecording.ended_at.is_not(None),
            ~StreamsRecording.id.in_(select(StreamsSegment.recording_id).distinct()),
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def get_export(session: AsyncSession, export_id: uuid.UUID) -> StreamsExport | None:
    return await session.get(StreamsExport, export_id)


async def list_exports(session: AsyncSession, camera_id: uuid.UUID, limit: int = 100) -> list[StreamsExport]:
    query = (
        select(StreamsExport)
        .where(StreamsExport.camera_id == camera_id)
        .order_by(StreamsExport.created_at.desc(), StreamsExport.id)
        .limit(limit)
    )
    return list((await session.scalars(query)).all())


async def expired_exports(session: AsyncSession, now: datetime, limit: int) -> list[StreamsExport]:
    query = (
        select(StreamsExport)
        .where(StreamsExport.status == "done", StreamsExport.expires_at < now)
        .order_by(StreamsExport.expires_at)
        .limit(limit)
    )
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
