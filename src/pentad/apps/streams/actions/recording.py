"""Recording: starting and stopping it, the timeline of what was recorded, and the calls the media plane's
recorder makes (media/recorder.py keeps the files; this indexes them in `streams_segments`).

A camera in `continuous` mode records whenever it is live: the recorder asks `reconcile_recordings` about
its live cameras once a second, which opens a `continuous` recording for the live session (and ends one
of an earlier session, or of a camera whose mode changed). An `on_demand` recording is started and stopped
through the API (`do_start_recording` / `do_stop_recording`, operators and owners) and records whenever
the camera is live in between. Each start and stop is published on the camera's topic
(`recording.started` / `recording.stopped`) and audited when a person did it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.streams import repository
from pentad.apps.streams.actions.context import StreamsContext
from pentad.apps.streams.events import RecordingChanged, camera_topic
from pentad.apps.streams.exceptions import RangeInvalid
from pentad.apps.streams.media.recorder import RecordedSegment, microseconds
from pentad.apps.streams.models import StreamsRecording, StreamsSegment
from pentad.apps.streams.permissions import CAMERA_OPERATE, CAMERA_RESOURCE, CAMERA_VIEW
from pentad.apps.streams.schemas import RecordingRead, SegmentRead, Timeline, TimelineSpan
from pentad.core import audit
from pentad.core.context import AppContext
from pentad.core.db.base import utcnow
from pentad.core.realtime.publish import publish

TIMELINE_MAX = timedelta(days=1)
"""Longest range one timeline or segment listing covers."""
VOD_MAX = timedelta(hours=4)
"""Longest range one VOD playlist covers (a 1-second segment per line: 14,400 lines)."""
SEGMENT_LIST_MAX = 5000
RECORDINGS_MAX = 1000
SPAN_TOLERANCE_US = 500_000
"""Segments closer than this are one span (timestamps of consecutive segments are not exact)."""


def as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def from_us(value: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value)


def check_range(start: datetime, end: datetime, longest: timedelta) -> tuple[datetime, datetime]:
    """[start, end) in UTC; RangeInvalid (400) when it is empty, reversed or longer than `longest`."""
    start, end = as_utc(start), as_utc(end)
    if end <= start:
        raise RangeInvalid("The range's end must come after its start.")
    if end - start > longest:
        raise RangeInvalid(f"A range may cover at most {int(longest.total_seconds())} seconds.")
    return start, end


def default_range(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """Unset bounds: the last 24 hours up to now (or up to `end`, or from `start`)."""
    if end is None:
        end = utcnow() if start is None else as_utc(start) + TIMELINE_MAX
    if start is None:
        start = as_utc(end) - TIMELINE_MAX
    return start, end


def recording_read(row: StreamsRecording) -> RecordingRead:
    return RecordingRead(
        id=row.id,
        camera_id=row.camera_id,
        session_id=row.session_id,
        mode="continuous" if row.mode == "continuous" else "on_demand",
        started_at=row.started_at,
        ended_at=row.ended_at,
        stop_reason=row.stop_reason,
    )


def segment_read(row: StreamsSegment) -> SegmentRead:
    return SegmentRead(
        id=row.id,
        recording_id=row.recording_id,
        start=from_us(row.start_us),
        duration_ms=row.duration_ms,
        size_bytes=row.size_bytes,
    )


def notify_recording(session: AsyncSession, row: StreamsRecording, reason: str | None = None) -> None:
    kind = "recording.stopped" if row.ended_at is not None else "recording.started"
    publish(
        session,
        camera_topic(row.camera_id),
        RecordingChanged(
            type=kind, camera_id=row.camera_id, recording_id=row.id, mode=row.mode, reason=reason
        ),
    )


# ------------------------------------------------------------------ the API's actions


async def do_start_recording(streams: StreamsContext, camera_id: uuid.UUID) -> tuple[RecordingRead, bool]:
    """Start an on-demand recording (operators): (the recording, whether it is new). When the camera
    already records (on demand, or continuously while live) that recording is returned, nothing changes."""
    camera = (await streams.access(camera_id, CAMERA_OPERATE)).camera
    under_way = await repository.open_recordings(streams.session, [camera.id])
    if under_way:
        return recording_read(min(under_way, key=lambda row: row.started_at)), False
    row = StreamsRecording(
        camera_id=camera.id, mode="on_demand", started_at=utcnow(), started_by=streams.user_id
    )
    streams.session.add(row)
    await streams.session.flush()
    audit.record(
        streams.session, streams.audit_actor, "streams.recording.start",
        resource_type=CAMERA_RESOURCE, resource_id=camera.id, recording_id=str(row.id),
    )  # fmt: skip
    notify_recording(streams.session, row)
    return recording_read(row), True


async def do_stop_recording(streams: StreamsContext, camera_id: uuid.UUID) -> int:
    """Stop every recording of the camera that is under way (operators); how many. Stopping a camera
    that does not record changes nothing. A continuous camera starts again with its next stream."""
    camera = (await streams.access(camera_id, CAMERA_OPERATE)).camera
    stopped = 0
    for row in await repository.open_recordings(streams.session, [camera.id]):
        row.ended_at = utcnow()
        row.stop_reason = "stopped"
        stopped += 1
        notify_recording(streams.session, row, "stopped")
    if stopped:
        await streams.session.flush()
        audit.record(
            streams.session, streams.audit_actor, "streams.recording.stop",
            resource_type=CAMERA_RESOURCE, resource_id=camera.id,
        )  # fmt: skip
    return stopped


async def get_timeline(
    streams: StreamsContext, camera_id: uuid.UUID, start: datetime | None, end: datetime | None
) -> Timeline:
    """The camera's recordings overlapping the range and the spans of recorded media in it (viewers)."""
    camera = (await streams.access(camera_id, CAMERA_VIEW)).camera
    begin, finish = check_range(*default_range(start, end), TIMELINE_MAX)
    recordings = await repository.recordings_between(
        streams.session, camera.id, begin, finish, RECORDINGS_MAX
    )
    spans = await repository.timeline_spans(
        streams.session, camera.id, microseconds(begin), microseconds(finish), SPAN_TOLERANCE_US
    )
    return Timeline(
        camera_id=camera.id,
        start=begin,
        end=finish,
        recordings=[recording_read(row) for row in recordings],
        spans=[
            TimelineSpan(start=from_us(first), end=from_us(last), segments=count, bytes=size)
            for first, last, count, size in spans
        ],
        stored_bytes=camera.stored_bytes,
    )


async def list_segments(
    streams: StreamsContext, camera_id: uuid.UUID, start: datetime | None, end: datetime | None, limit: int
) -> list[SegmentRead]:
    """The recorded segments overlapping the range, in time order, at most `limit` (viewers)."""
    camera = (await streams.access(camera_id, CAMERA_VIEW)).camera
    begin, finish = check_range(*default_range(start, end), TIMELINE_MAX)
    found = await repository.segments_between(
        streams.session, camera.id, microseconds(begin), microseconds(finish), min(limit, SEGMENT_LIST_MAX)
    )
    return [segment_read(row) for row in found]


# ------------------------------------------------------------------ what the media plane calls


@dataclass(frozen=True)
class _Plan:
    close: list[tuple[uuid.UUID, str]]
    """(recording id, reason) to end."""
    open: list[tuple[uuid.UUID, uuid.UUID]]
    """(camera id, session id) to open a continuous recording for."""
    current: dict[uuid.UUID, uuid.UUID]
    """Camera id -> the recording its segments go to (of those that stay open)."""


def _plan(
    live: Mapping[uuid.UUID, uuid.UUID], modes: Mapping[uuid.UUID, str], rows: Sequence[StreamsRecording]
) -> _Plan:
    close: list[tuple[uuid.UUID, str]] = []
    opening: list[tuple[uuid.UUID, uuid.UUID]] = []
    current: dict[uuid.UUID, uuid.UUID] = {}
    for camera_id, session_id in live.items():
        mode = modes.get(camera_id, "off")
        has_continuous = False
        for row in sorted((r for r in rows if r.camera_id == camera_id), key=lambda r: r.started_at):
            if row.mode == "continuous":
                if mode != "continuous":
                    close.append((row.id, "mode_changed"))
                    continue
                if row.session_id != session_id:
                    close.append((row.id, "stream_ended"))
                    continue
                has_continuous = True
            current.setdefault(camera_id, row.id)
        if mode == "continuous" and not has_continuous:
            opening.append((camera_id, session_id))
    return _Plan(close, opening, current)


async def reconcile_recordings(
    platform: AppContext, live: Mapping[uuid.UUID, uuid.UUID]
) -> dict[uuid.UUID, uuid.UUID]:
    """For the live cameras (camera id -> session id): the recording each one's segments go to, for those
    that record now. Opens the continuous recordings their mode asks for and ends those it no longer does
    (a write transaction only then)."""
    async with platform.database.transaction(writes=False) as session:
        plan = _plan(
            live,
            await repository.recording_modes(session, live.keys()),
            await repository.open_recordings(session, live.keys()),
        )
    if not plan.close and not plan.open:
        return plan.current
    async with platform.database.transaction() as session:
        rows = await repository.open_recordings(session, live.keys())
        plan = _plan(live, await repository.recording_modes(session, live.keys()), rows)
        by_id = {row.id: row for row in rows}
        now = utcnow()
        for recording_id, reason in plan.close:
            row = by_id[recording_id]
            row.ended_at, row.stop_reason = now, reason
            notify_recording(session, row, reason)
        current = dict(plan.current)
        for camera_id, session_id in plan.open:
            row = StreamsRecording(
                camera_id=camera_id, session_id=session_id, mode="continuous", started_at=now
            )
            session.add(row)
            await session.flush()
            notify_recording(session, row)
            current.setdefault(camera_id, row.id)
        await session.flush()
        return current


async def store_segments(
    platform: AppContext, camera_id: uuid.UUID, segments: Sequence[RecordedSegment]
) -> None:
    """Index segments the recorder kept, and add their bytes to the camera's running total."""
    if not segments:
        return
    async with platform.database.transaction() as session:
        session.add_all(
            StreamsSegment(
                camera_id=camera_id,
                recording_id=segment.recording_id,
                start_at=from_us(segment.start_us),
                start_us=segment.start_us,
                duration_ms=segment.duration_ms,
                size_bytes=segment.size_bytes,
                storage_key=segment.storage_key,
            )
            for segment in segments
        )
        await repository.add_stored_bytes(session, camera_id, sum(s.size_bytes for s in segments))


async def end_stream_recordings(platform: AppContext, camera_id: uuid.UUID, session_id: uuid.UUID) -> None:
    """The stream ended: its continuous recording ends with it (on-demand ones go on until stopped)."""
    async with platform.database.transaction() as session:
        for row in await repository.open_recordings(session, [camera_id]):
            if row.mode == "continuous" and row.session_id == session_id:
                row.ended_at, row.stop_reason = utcnow(), "stream_ended"
                notify_recording(session, row, "stream_ended")
