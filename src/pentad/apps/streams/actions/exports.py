"""MP4 exports of a recorded range: asked for through the API (operators), made by the core job
`streams.export_range` (queue `media`), followed on the camera's topic (`export.progress`), downloaded
once done, deleted after EXPORT__TTL seconds by the retention job.

The job remuxes, never re-encodes: ffmpeg's concat demuxer reads the recorded MPEG-TS segments that
overlap the range and copies H.264 and AAC into an MP4 (`-c copy -movflags +faststart`). Segments start on
keyframes, so the export starts at the segment holding the asked start (up to one segment earlier) and
ends with the segment holding the asked end. Progress comes from ffmpeg's `-progress` output (out_time
over the range's recorded duration). The file is written under a temporary name and renamed, so a retried
job starts again cleanly and a download never sees half a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog

from pentad.apps.streams import repository
from pentad.apps.streams.actions.context import StreamsContext
from pentad.apps.streams.actions.recording import check_range, from_us
from pentad.apps.streams.events import ExportProgress, camera_topic
from pentad.apps.streams.exceptions import ExportNotFound, ExportNotReady, RangeEmpty
from pentad.apps.streams.media.packager import media_root
from pentad.apps.streams.media.recorder import exports_dir, microseconds, stored_path
from pentad.apps.streams.models import StreamsExport
from pentad.apps.streams.permissions import CAMERA_OPERATE, CAMERA_RESOURCE
from pentad.apps.streams.schemas import ExportCreate, ExportRead
from pentad.apps.streams.settings import StreamsSettings
from pentad.core import audit
from pentad.core.context import AppContext, JobContext
from pentad.core.db.base import utcnow
from pentad.core.jobs.queue import enqueue
from pentad.core.realtime.publish import publish
from pentad.core.services import child_environment, dies_with_this_process

EXPORT_JOB = "streams.export_range"
EXPORT_SEGMENTS_MAX = 100_000
PROGRESS_EVERY = 1.0
"""Seconds between two `export.progress` events of one export."""

logger = structlog.get_logger("pentad.streams.exports")


def download_url(export_id: uuid.UUID) -> str:
    return f"/api/streams/exports/{export_id}/file"


def export_read(row: StreamsExport) -> ExportRead:
    status = row.status if row.status in ("queued", "running", "done", "failed", "expired") else "failed"
    return ExportRead(
        id=row.id,
        camera_id=row.camera_id,
        start=from_us(row.range_start_us),
        end=from_us(row.range_end_us),
        status=status,
        job_id=row.job_id,
        size_bytes=row.size_bytes,
        created_at=row.created_at,
        expires_at=row.expires_at,
        download_url=download_url(row.id) if row.status == "done" else None,
    )


async def do_create_export(streams: StreamsContext, camera_id: uuid.UUID, data: ExportCreate) -> ExportRead:
    """Queue the export of a range (operators). RangeInvalid (400) for an empty, reversed or too long
    range; RangeEmpty (404) when nothing was recorded in it."""
    camera = (await streams.access(camera_id, CAMERA_OPERATE)).camera
    start, end = check_range(data.start, data.end, timedelta(seconds=streams.settings.export.max_seconds))
    start_us, end_us = microseconds(start), microseconds(end)
    if not await repository.segments_between(streams.session, camera.id, start_us, end_us, 1):
        raise RangeEmpty()
    row = StreamsExport(
        camera_id=camera.id, range_start_us=start_us, range_end_us=end_us, status="queued",
        requested_by=streams.user_id,
    )  # fmt: skip
    streams.session.add(row)
    await streams.session.flush()
    row.job_id = await enqueue(streams.session, EXPORT_JOB, {"export_id": str(row.id)})
    await streams.session.flush()
    audit.record(
        streams.session, streams.audit_actor, "streams.export.create",
        resource_type=CAMERA_RESOURCE, resource_id=camera.id, export_id=str(row.id),
    )  # fmt: skip
    publish(
        streams.session,
        camera_topic(camera.id),
        ExportProgress(camera_id=camera.id, export_id=row.id, status="queued", progress=0.0),
    )
    return export_read(row)


async def _export_row(streams: StreamsContext, export_id: uuid.UUID) -> StreamsExport:
    """The export, if the caller may operate its camera (others: ExportNotFound, 404)."""
    row = await repository.get_export(streams.session, export_id)
    if row is None:
        raise ExportNotFound()
    try:
        await streams.access(row.camera_id, CAMERA_OPERATE)
    except Exception:
        raise ExportNotFound() from None
    return row


async def get_export(streams: StreamsContext, export_id: uuid.UUID) -> ExportRead:
    return export_read(await _export_row(streams, export_id))


async def list_exports(streams: StreamsContext, camera_id: uuid.UUID) -> list[ExportRead]:
    camera = (await streams.access(camera_id, CAMERA_OPERATE)).camera
    return [export_read(row) for row in await repository.list_exports(streams.session, camera.id)]


async def export_file(streams: StreamsContext, export_id: uuid.UUID) -> tuple[Path, str]:
    """The finished MP4 of an export and a file name to download it as; ExportNotReady (409) before."""
    row = await _export_row(streams, export_id)
    if row.status != "done" or not row.storage_key:
        raise ExportNotReady(row.status)
    path = stored_path(media_root(streams.settings, streams.platform.data_dir), row.storage_key)
    if path is None or not path.is_file():
        raise ExportNotReady("expired")
    name = f"camera-{row.camera_id}-{from_us(row.range_start_us):%Y%m%dT%H%M%SZ}.mp4"
    return path, name


# ------------------------------------------------------------------ the job


def export_argv(ffmpeg: str, listing: Path, target: Path) -> list[str]:
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-nostats", "-progress", "pipe:1",
        "-f", "concat", "-safe", "0", "-i", str(listing),
        "-map", "0:v?", "-map", "0:a?", "-c", "copy", "-movflags", "+faststart",
        "-f", "mp4", "-y", str(target),
    ]  # fmt: skip


def _concat_listing(paths: Sequence[Path]) -> str:
    lines = ["ffconcat version 1.0"]
    for path in paths:
        quoted = str(path).replace("'", "'\\''")
        lines.append(f"file '{quoted}'")
    return "\n".join(lines) + "\n"


async def _progress(
    platform: AppContext, row_id: uuid.UUID, camera_id: uuid.UUID, status: str, fraction: float, **extra: Any
) -> None:
    async with platform.database.transaction() as session:
        row = await repository.get_export(session, row_id)
        if row is not None and status != "progress":
            row.status = status
            for name, value in extra.items():
                if name in ("size_bytes", "storage_key", "expires_at"):
                    setattr(row, name, value)
        publish(
            session,
            camera_topic(camera_id),
            ExportProgress(
                camera_id=camera_id,
                export_id=row_id,
                status="running" if status == "progress" else status,
                progress=round(min(max(fraction, 0.0), 1.0), 4),
                size_bytes=extra.get("size_bytes"),
                error=extra.get("error"),
            ),
        )


async def _run_ffmpeg(argv: list[str], total_us: int, report: Any) -> tuple[int, str]:
    """Run the remux; calls `report(fraction)` at most every PROGRESS_EVERY seconds; (exit code, stderr)."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_environment(),
        start_new_session=True,
        preexec_fn=dies_with_this_process(),
    )
    assert process.stdout is not None
    assert process.stderr is not None
    errors = asyncio.ensure_future(process.stderr.read())
    last = 0.0
    try:
        async for raw in process.stdout:
            key, _, value = raw.decode(errors="replace").strip().partition("=")
            if key == "out_time_us" and value.lstrip("-").isdigit() and total_us > 0:
                now = time.monotonic()
                if now - last >= PROGRESS_EVERY:
                    last = now
                    await report(int(value) / total_us)
        code = await process.wait()
    except BaseException:  # cancelled (job timeout, shutdown): never leave ffmpeg behind
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        errors.cancel()
        raise
    return code, (await errors).decode(errors="replace")[-2000:]


async def export_range(context: JobContext, payload: dict[str, Any]) -> None:
    """Job `streams.export_range`: remux the export's range into an MP4 under <MEDIA_DIR>/exports."""
    platform = context.platform
    settings = platform.app_settings(StreamsSettings)
    root = media_root(settings, platform.data_dir)
    export_id = uuid.UUID(str(payload["export_id"]))
    async with platform.database.transaction() as session:
        row = await repository.get_export(session, export_id)
        if row is None or row.status in ("done", "expired"):
            return
        camera_id, start_us, end_us = row.camera_id, row.range_start_us, row.range_end_us
        segments = await repository.segments_between(
            session, camera_id, start_us, end_us, EXPORT_SEGMENTS_MAX
        )
        row.status = "running"
    log = logger.bind(export_id=str(export_id), camera_id=str(camera_id))
    paths = [p for s in segments if (p := stored_path(root, s.storage_key)) is not None and p.is_file()]
    if not paths:
        log.warning("export_failed", reason="range_empty")
        await _progress(platform, export_id, camera_id, "failed", 0.0, error="range_empty")
        return
    await _progress(platform, export_id, camera_id, "running", 0.0)
    folder = exports_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    listing = folder / f"{export_id}.ffconcat"
    partial = folder / f"{export_id}.part.mp4"
    target = folder / f"{export_id}.mp4"
    listing.write_text(_concat_listing(paths))
    total_us = sum(s.duration_ms for s in segments) * 1000

    async def report(fraction: float) -> None:
        await context.progress(min(fraction, 1.0))
        await _progress(platform, export_id, camera_id, "progress", fraction)

    try:
        code, errors = await _run_ffmpeg(export_argv(settings.ffmpeg, listing, partial), total_us, report)
    except OSError as exc:
        code, errors = -1, str(exc)
    except BaseException:  # timed out or shut down: the last attempt must not leave it `running`
        partial.unlink(missing_ok=True)
        if context.attempt >= context.max_attempts:
            with contextlib.suppress(Exception):
                await asyncio.shield(
                    _progress(platform, export_id, camera_id, "failed", 0.0, error="interrupted")
                )
        raise
    finally:
        listing.unlink(missing_ok=True)
    if code != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        log.error("export_ffmpeg_failed", returncode=code, stderr=errors)
        if context.attempt < context.max_attempts:
            raise RuntimeError(f"ffmpeg exited with {code}")
        await _progress(platform, export_id, camera_id, "failed", 0.0, error="ffmpeg_failed")
        return
    os.replace(partial, target)
    size = target.stat().st_size
    expires = utcnow() + timedelta(seconds=settings.export.ttl)
    await _progress(
        platform, export_id, camera_id, "done", 1.0,
        size_bytes=size, storage_key=f"exports/{export_id}.mp4", expires_at=expires,
    )  # fmt: skip
    log.info("export_done", size_bytes=size, segments=len(paths), first=str(from_us(start_us)))
