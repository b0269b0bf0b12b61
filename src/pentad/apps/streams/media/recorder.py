"""Recording: the finished segments of a camera's live HLS kept beyond the live window.

The packager (packager.py) already cuts the stream into segments on keyframes and writes each one by
rename before listing it in the live playlist, with its wall-clock start (EXT-X-PROGRAM-DATE-TIME). So the
recorder runs no second ffmpeg: about once a second it reads each recorded camera's playlist and, for every
segment listed since its last look, makes a hard link (a copy when the recordings live on another file
system) under

    <MEDIA_DIR>/recordings/<camera id>/<recording id>/<start µs>.ts

and hands the segments (start, duration, size, key) to the control plane, which indexes them in
`streams_segments`. A hard link costs no I/O and keeps the file when the packager deletes it from the live
window. The live playlist keeps HLS_LIST_SIZE segments and deletes them a little after they leave it, so a
look at least every few seconds misses none (the ticks are one second apart).

Which cameras record is the control plane's answer (`recordings`): a camera in `continuous` mode records
while it is live, an `on_demand` recording between its start and stop through the API. This module reads
no database: it is given the answers as callbacks (media/service.py ControlPlane).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog

RECORDINGS_FOLDER = "recordings"
EXPORTS_FOLDER = "exports"
TICK_SECONDS = 1.0
SEGMENT_NAME = re.compile(r"seg_([0-9]{1,10})\.ts")

logger = structlog.get_logger("pentad.streams.recorder")


@dataclass(frozen=True)
class ListedSegment:
    """A segment named by a live playlist."""

    name: str
    sequence: int
    duration: float
    start: datetime | None


@dataclass(frozen=True)
class RecordedSegment:
    """A segment kept for a recording: what `streams_segments` indexes."""

    recording_id: uuid.UUID
    start_us: int
    duration_ms: int
    size_bytes: int
    storage_key: str
    """Relative to MEDIA_DIR (`recordings/<camera>/<recording>/<start µs>.ts`)."""


def recordings_dir(root: Path) -> Path:
    return root / RECORDINGS_FOLDER


def exports_dir(root: Path) -> Path:
    return root / EXPORTS_FOLDER


def segment_key(camera_id: uuid.UUID, recording_id: uuid.UUID, start_us: int) -> str:
    return f"{RECORDINGS_FOLDER}/{camera_id}/{recording_id}/{start_us}.ts"


def stored_path(root: Path, storage_key: str) -> Path | None:
    """The file of a segment or export key, if the key stays inside MEDIA_DIR's recordings or exports."""
    parts = storage_key.split("/")
    if parts[0] not in (RECORDINGS_FOLDER, EXPORTS_FOLDER) or any(p in ("", ".", "..") for p in parts):
        return None
    return root.joinpath(*parts)


def _parse_time(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def parse_playlist(text: str) -> list[ListedSegment]:
    """The segments of a live media playlist with their durations and wall-clock starts (a segment
    without its own EXT-X-PROGRAM-DATE-TIME starts where the previous one ended)."""
    found: list[ListedSegment] = []
    duration: float | None = None
    start: datetime | None = None
    following: datetime | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXTINF:"):
            with contextlib.suppress(ValueError):
                duration = float(line[8:].split(",", 1)[0])
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            start = _parse_time(line[25:])
        elif line.startswith("#EXT-X-DISCONTINUITY"):
            following = None
        elif line and not line.startswith("#"):
            match = SEGMENT_NAME.fullmatch(line)
            if match is not None and duration is not None:
                begins = start or following
                found.append(ListedSegment(line, int(match.group(1)), duration, begins))
                following = begins + timedelta(seconds=duration) if begins is not None else None
            duration = None
            start = None
    return found


def _keep(source: Path, target: Path) -> int:
    """Hard-link (or copy) a finished segment to `target`; its size."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except FileExistsError:
        pass
    except OSError:  # another file system (EXDEV) or no links there: copy
        partial = target.with_suffix(".part")
        shutil.copyfile(source, partial)
        os.replace(partial, target)
    return target.stat().st_size


def microseconds(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class CameraRecorder:
    """What one live stream's recorder remembers: the newest segment it has looked at."""

    def __init__(self, camera_id: uuid.UUID, hls: Path, root: Path) -> None:
        self.camera_id = camera_id
        self.hls = hls
        self.root = root
        self.last_sequence = -1
        self.log = logger.bind(camera_id=str(camera_id))

    def _listed(self) -> list[ListedSegment]:
        try:
            text = (self.hls / "index.m3u8").read_text(errors="replace")
        except OSError:
            return []
        return parse_playlist(text)

    def collect(self, recording_id: uuid.UUID | None) -> list[RecordedSegment]:
        """Segments listed since the last look, kept for `recording_id` (None: the camera does not record
        now; they are only noted as seen). Blocking: run it in a thread."""
        new = [s for s in self._listed() if s.sequence > self.last_sequence]
        if not new:
            return []
        self.last_sequence = max(s.sequence for s in new)
        if recording_id is None:
            return []
        kept: list[RecordedSegment] = []
        # A playlist without wall-clock times: the newest segment ended just now, the others before it.
        cursor = datetime.now(UTC) - timedelta(seconds=sum(s.duration for s in new))
        for listed in new:
            start = listed.start or cursor
            cursor = start + timedelta(seconds=listed.duration)
            start_us = microseconds(start)
            key = segment_key(self.camera_id, recording_id, start_us)
            try:
                size = _keep(self.hls / listed.name, self.root.joinpath(*key.split("/")))
            except FileNotFoundError:
                self.log.warning("recording_segment_missed", segment=listed.name)
                continue
            except OSError as exc:  # a full disk: this segment is lost, the stream goes on
                self.log.error("recording_segment_failed", segment=listed.name, error=str(exc))
                continue
            kept.append(RecordedSegment(recording_id, start_us, round(listed.duration * 1000), size, key))
        return kept


def remove_files(root: Path, keys: Sequence[str]) -> int:
    """Delete stored segment or export files (missing ones are fine); how many were there. Blocking."""
    removed = 0
    for key in keys:
        path = stored_path(root, key)
        if path is None:
            continue
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            continue
        if key.startswith(RECORDINGS_FOLDER + "/"):
            with contextlib.suppress(OSError):
                path.parent.rmdir()  # the recording's folder, once empty
    return removed
