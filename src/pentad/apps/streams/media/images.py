"""Still images of a live camera: the latest snapshot (a JPEG), which is also the grid's thumbnail.

A snapshot is the first frame of the newest complete HLS segment the packager listed: segments start on a
keyframe, so ffmpeg decodes exactly one frame and needs nothing before it. The playlist only names
segments that are whole (the packager writes to a temporary name and renames), so ffmpeg never reads half
a file. A ladder's master playlist is followed to its highest-bandwidth rendition.

Cost: a grid of viewers asking for the same camera costs one ffmpeg run per camera per SNAPSHOT_MAX_AGE:

- the JPEG is kept on disk, `<MEDIA_DIR>/snapshots/<camera id>.jpg` (written to a temporary name and
  renamed), and reused while it is younger than SNAPSHOT_MAX_AGE and newer than the live session's start
  (a camera that streams again never shows a picture of its previous stream); the file is shared by the
  workers of one node;
- single flight: concurrent requests for one camera in a process wait for the same ffmpeg run;
- a failed run is remembered for SNAPSHOT_MAX_AGE as well, so a broken stream does not start ffmpeg
  for every viewer either.

ffmpeg runs with a timeout (SNAPSHOT_TIMEOUT), in its own process group, killed with Pentad (PDEATHSIG)
and killed (the whole group) when the time is up; its stderr goes to the log (never the stream key: the
paths hold only the camera's public id). A failure is `SnapshotFailed` (503, Retry-After), never a crash.

Thumbnails every THUMBNAIL_INTERVAL seconds are this same snapshot, refreshed on demand: the grid asks
for it every THUMBNAIL_INTERVAL seconds per visible camera (docs/streams.md says why no background job).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import structlog

from pentad.core.errors import AppError
from pentad.core.services import child_environment, dies_with_this_process

SNAPSHOT_FOLDER: Final = "snapshots"
SNAPSHOT_TIMEOUT: Final = 10.0
"""Longest an ffmpeg snapshot run may take, seconds (one frame of one segment takes a few ms)."""
MAX_JPEG_BYTES: Final = 16 << 20
MAX_PLAYLIST_BYTES: Final = 1 << 20
JPEG_MAGIC: Final = b"\xff\xd8\xff"
RETRY_AFTER: Final = "1"
PLAYLIST_NAME: Final = "index.m3u8"
SEGMENT_URI: Final = re.compile(r"(?:([A-Za-z0-9_-]{1,64})/)?([A-Za-z0-9_-]{1,128}\.(?:ts|m4s|mp4))")
VARIANT_URI: Final = re.compile(r"([A-Za-z0-9_-]{1,64})/index\.m3u8")
BANDWIDTH: Final = re.compile(r"(?:^|[:,])BANDWIDTH=(\d+)")

logger = structlog.get_logger("pentad.streams.images")


class SnapshotFailed(AppError):
    """No snapshot could be made now (no segment yet, ffmpeg failed or took too long): try again soon."""

    status, code = 503, "snapshot_failed"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message, code=code or self.code, headers={"Retry-After": RETRY_AFTER})


def snapshot_path(root: Path, camera_id: uuid.UUID) -> Path:
    """Where a camera's latest snapshot is kept: `<MEDIA_DIR>/snapshots/<camera id>.jpg`."""
    return root / SNAPSHOT_FOLDER / f"{camera_id}.jpg"


# ------------------------------------------------------------------ which segment


def _read_text(path: Path) -> str | None:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_PLAYLIST_BYTES + 1)
    except OSError:
        return None
    if len(data) > MAX_PLAYLIST_BYTES:
        return None
    return data.decode("utf-8", errors="replace")


def _best_variant(master: str) -> str | None:
    """The highest-bandwidth variant a master playlist names (its folder), if it names any."""
    best: tuple[int, str] | None = None
    bandwidth: int | None = None
    for raw in master.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-STREAM-INF:"):
            found = BANDWIDTH.search(line[len("#EXT-X-STREAM-INF:") :])
            bandwidth = int(found.group(1)) if found else 0
        elif line and not line.startswith("#") and bandwidth is not None:
            match = VARIANT_URI.fullmatch(line.split("?", 1)[0])
            if match is not None and (best is None or bandwidth > best[0]):
                best = (bandwidth, match.group(1))
            bandwidth = None
    return best[1] if best else None


def _inside(root: Path, relative: str) -> Path | None:
    try:
        base = root.resolve(strict=True)
        path = (root / relative).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    return path if path.is_relative_to(base) and path.is_file() else None


def newest_segment(hls: Path) -> Path | None:
    """The newest complete segment the camera's live playlist lists (following a master playlist to its
    best rendition), confined to the camera's folder; None when there is none yet."""
    text = _read_text(hls / PLAYLIST_NAME)
    if text is None:
        return None
    folder = ""
    if "#EXT-X-STREAM-INF" in text:
        variant = _best_variant(text)
        if variant is None:
            return None
        text = _read_text(hls / variant / PLAYLIST_NAME)
        if text is None:
            return None
        folder = f"{variant}/"
    uris = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    for uri in reversed(uris):
        if SEGMENT_URI.fullmatch(uri.split("?", 1)[0]) is not None:
            return _inside(hls, folder + uri.split("?", 1)[0])
    return None


# ------------------------------------------------------------------ ffmpeg


def snapshot_argv(ffmpeg: str, segment: Path) -> list[str]:
    """ffmpeg decoding the first video frame of `segment` (a keyframe) into one JPEG on stdout."""
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
        "-i", str(segment), "-map", "0:v:0", "-frames:v", "1", "-an", "-sn", "-dn",
        "-c:v", "mjpeg", "-q:v", "3", "-f", "image2pipe", "pipe:1",
    ]  # fmt: skip


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def run_ffmpeg(argv: list[str], time_limit: float) -> bytes:
    """The JPEG ffmpeg writes to stdout; SnapshotFailed when it cannot start, fails, writes no JPEG or
    runs longer than `time_limit` seconds (then its process group is killed and reaped)."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=child_environment(),
            start_new_session=True,
            preexec_fn=dies_with_this_process(),
        )
    except OSError as exc:
        logger.error("snapshot_ffmpeg_unavailable", binary=argv[0], error=str(exc))
        raise SnapshotFailed("ffmpeg could not be started for the snapshot.") from exc
    try:
        async with asyncio.timeout(time_limit):
            out, err = await process.communicate()
    except TimeoutError:
        _kill_group(process.pid)
        await process.wait()
        logger.warning("snapshot_ffmpeg_timeout", time_limit=time_limit)
        raise SnapshotFailed(
            "Taking the snapshot took too long; try again.", code="snapshot_timeout"
        ) from None
    except BaseException:  # cancelled: never leave the child behind
        _kill_group(process.pid)
        await process.wait()
        raise
    if process.returncode != 0 or not out.startswith(JPEG_MAGIC) or len(out) > MAX_JPEG_BYTES:
        logger.warning(
            "snapshot_ffmpeg_failed",
            returncode=process.returncode,
            stderr=err.decode(errors="replace")[-1000:],
            jpeg_bytes=len(out),
        )
        raise SnapshotFailed("The snapshot could not be taken from the live stream; try again.")
    return out


# ------------------------------------------------------------------ the cache


@dataclass(frozen=True)
class SnapshotRequest:
    camera_id: uuid.UUID
    hls: Path
    """The camera's live HLS folder."""
    target: Path
    """Where its snapshot is kept (snapshot_path)."""
    since: float
    """Start of the live session (epoch seconds): a file older than this is of an earlier stream."""
    ffmpeg: str
    max_age: float
    time_limit: float = SNAPSHOT_TIMEOUT


_inflight: dict[Path, asyncio.Future[bytes]] = {}
"""Single flight: the ffmpeg run under way for a snapshot file, shared by every request that wants it."""
_failures: dict[Path, tuple[float, SnapshotFailed]] = {}
"""The last failure per snapshot file (monotonic time), repeated to requests within its max age."""


def _cached(request: SnapshotRequest) -> bytes | None:
    try:
        with request.target.open("rb") as file:
            modified = os.fstat(file.fileno()).st_mtime
            if modified < request.since or time.time() - modified >= request.max_age:
                return None
            data = file.read(MAX_JPEG_BYTES + 1)
    except OSError:
        return None
    return data if data.startswith(JPEG_MAGIC) and len(data) <= MAX_JPEG_BYTES else None


def _store(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


async def _take(request: SnapshotRequest) -> bytes:
    cached = await asyncio.to_thread(_cached, request)  # another worker may have just made it
    if cached is not None:
        return cached
    segment = await asyncio.to_thread(newest_segment, request.hls)
    if segment is None:
        raise SnapshotFailed(
            "The stream has no complete segment yet; try again in a moment.", code="snapshot_not_ready"
        )
    data = await run_ffmpeg(snapshot_argv(request.ffmpeg, segment), request.time_limit)
    try:
        await asyncio.to_thread(_store, request.target, data)
    except OSError as exc:  # a full disk: the picture is good, it is just not kept for the next viewer
        logger.warning("snapshot_not_kept", camera_id=str(request.camera_id), error=str(exc))
    return data


async def latest_snapshot(request: SnapshotRequest) -> bytes:
    """The camera's latest snapshot (JPEG bytes): the kept one while fresh, else one ffmpeg run shared by
    every concurrent request; SnapshotFailed (503) when none can be made."""
    failed = _failures.get(request.target)
    if failed is not None:
        if time.monotonic() - failed[0] < request.max_age:
            raise failed[1]
        _failures.pop(request.target, None)
    cached = await asyncio.to_thread(_cached, request)
    if cached is not None:
        return cached
    flight = _inflight.get(request.target)
    if flight is None:
        flight = asyncio.ensure_future(_take(request))
        _inflight[request.target] = flight

        def landed(done: asyncio.Future[bytes], target: Path = request.target) -> None:
            if _inflight.get(target) is done:
                del _inflight[target]
            if not done.cancelled() and isinstance(done.exception(), SnapshotFailed):
                error = done.exception()
                assert isinstance(error, SnapshotFailed)
                _failures[target] = (time.monotonic(), error)

        flight.add_done_callback(landed)
    # Shielded: a viewer who goes away does not cancel the run the others wait for.
    return await asyncio.shield(flight)
