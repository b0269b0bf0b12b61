"""Retention of recordings, by age and by size per camera, and the expiry of exports: the core cron job
`streams.enforce_retention` (every minute, tasks.py).

For every camera with recorded segments (deleted cameras too: their recordings outlive them until here):

- by age: segments that started more than `retention_days` days ago go (the camera's value, else
  RECORDING__RETENTION_DAYS; 0 keeps them forever);
- by size: while the camera's recordings hold more than `retention_bytes` (the camera's, else
  RECORDING__RETENTION_BYTES; 0: no limit), its oldest segments go;
- ended recordings left without segments go.

Rows go first, in batches of RETENTION_BATCH per transaction, with the camera's running total
(`stored_bytes`); their files are unlinked once that transaction has committed, so a failed commit never
leaves rows whose files are gone (at worst a file outlives its row after a crash). Finished exports past
their `expires_at` are deleted and marked `expired`.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog

from pentad.apps.streams import repository
from pentad.apps.streams.media.packager import media_root
from pentad.apps.streams.media.recorder import microseconds, remove_files
from pentad.apps.streams.models import StreamsCamera, StreamsSegment
from pentad.apps.streams.settings import StreamsSettings
from pentad.core.context import AppContext, JobContext
from pentad.core.db.base import utcnow

RETENTION_JOB = "streams.enforce_retention"
RETENTION_BATCH = 500

logger = structlog.get_logger("pentad.streams.retention")


@dataclass
class Pruned:
    segments: int = 0
    bytes: int = 0
    recordings: int = 0
    exports: int = 0


def _limits(settings: StreamsSettings, days: int | None, size: int | None) -> tuple[int, int]:
    """(age limit in days, size limit in bytes) of a camera; 0: none."""
    return (
        days if days is not None else settings.recording.retention_days,
        size if size is not None else settings.recording.retention_bytes,
    )


def _over_budget(segments: list[StreamsSegment], stored: int, limit: int) -> list[StreamsSegment]:
    """The oldest of `segments` that must go to bring `stored` bytes down to `limit`."""
    chosen: list[StreamsSegment] = []
    for segment in segments:
        if stored <= limit:
            break
        chosen.append(segment)
        stored -= segment.size_bytes
    return chosen


async def _prune_camera(platform: AppContext, root: Path, camera_id: uuid.UUID, pruned: Pruned) -> None:
    settings = platform.app_settings(StreamsSettings)
    while True:
        async with platform.database.transaction() as session:
            camera = await session.get(StreamsCamera, camera_id)
            if camera is None:
                return
            days, size_limit = _limits(settings, camera.retention_days, camera.retention_bytes)
            doomed: list[StreamsSegment] = []
            if days > 0:
                cutoff = microseconds(utcnow() - timedelta(days=days))
                doomed = await repository.oldest_segments(
                    session, camera.id, RETENTION_BATCH, before_us=cutoff
                )
            if not doomed and size_limit > 0 and camera.stored_bytes > size_limit:
                oldest = await repository.oldest_segments(session, camera.id, RETENTION_BATCH)
                doomed = _over_budget(oldest, camera.stored_bytes, size_limit)
            if doomed:
                freed = sum(s.size_bytes for s in doomed)
                await repository.delete_segments(session, [s.id for s in doomed])
                await repository.add_stored_bytes(session, camera.id, -freed)
                pruned.segments += len(doomed)
                pruned.bytes += freed
            else:
                pruned.recordings += await repository.delete_empty_recordings(session, camera.id)
            keys = [s.storage_key for s in doomed]
        if not keys:
            return
        await asyncio.to_thread(remove_files, root, keys)


async def enforce_retention(platform: AppContext) -> Pruned:
    """One pass over every camera with recordings, and the expired exports; what went."""
    settings = platform.app_settings(StreamsSettings)
    root = media_root(settings, platform.data_dir)
    pruned = Pruned()
    async with platform.database.transaction(writes=False) as session:
        camera_ids = [camera.id for camera in await repository.cameras_with_segments(session)]
    for camera_id in camera_ids:
        await _prune_camera(platform, root, camera_id, pruned)
    while True:
        async with platform.database.transaction() as session:
            expired = await repository.expired_exports(session, utcnow(), RETENTION_BATCH)
            keys = [row.storage_key for row in expired if row.storage_key]
            for row in expired:
                row.status, row.storage_key = "expired", None
        if keys:
            await asyncio.to_thread(remove_files, root, keys)
        pruned.exports += len(expired)
        if len(expired) < RETENTION_BATCH:
            break
    if pruned.segments or pruned.exports or pruned.recordings:
        logger.info(
            "retention_enforced", segments=pruned.segments, bytes=pruned.bytes,
            recordings=pruned.recordings, exports=pruned.exports,
        )  # fmt: skip
    return pruned


async def enforce_retention_job(context: JobContext, _payload: dict[str, Any]) -> None:
    """Job `streams.enforce_retention` (cron, every minute)."""
    await enforce_retention(context.platform)
