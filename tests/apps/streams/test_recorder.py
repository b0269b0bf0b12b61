"""The recorder loop of the media service without a database (its control plane faked): segments listed
since the last look are kept (hard links) only while the camera records, none twice; nothing is kept below
RECORDING__MIN_FREE_BYTES (one warning, then one line when it resumes); a segment gone before it was seen
is logged and skipped; the stream's tail is stored when it closes and its continuous recording ended."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from pentad.apps.streams.media import disk
from pentad.apps.streams.media.engines.base import Publication
from pentad.apps.streams.media.packager import hls_dir
from pentad.apps.streams.media.recorder import CameraRecorder, RecordedSegment
from pentad.apps.streams.media.relay import StreamRelay
from pentad.apps.streams.media.service import MediaService, _Live
from pentad.apps.streams.settings import StreamsSettings

pytestmark = pytest.mark.one_engine


class FakeRecording:
    def __init__(self) -> None:
        self.recording: uuid.UUID | None = None
        self.stored: list[RecordedSegment] = []
        self.ended: list[uuid.UUID] = []

    async def recordings(self, live: Mapping[uuid.UUID, uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
        return dict.fromkeys(live, self.recording) if self.recording else {}

    async def store_segments(self, camera_id: uuid.UUID, segments: Sequence[RecordedSegment]) -> None:
        self.stored.extend(segments)

    async def stream_ended(self, camera_id: uuid.UUID, session_id: uuid.UUID) -> None:
        self.ended.append(session_id)


class NoProcesses:
    async def start(self, key: str, command: Any, *, restart: bool = True) -> Any:
        return None

    async def stop(self, key: str) -> int | None:
        return 0


def _write(hls: Path, first: int, last: int) -> None:
    hls.mkdir(parents=True, exist_ok=True)
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:1", f"#EXT-X-MEDIA-SEQUENCE:{first}"]
    for number in range(first, last + 1):
        name = f"seg_{number:06d}.ts"
        if not (hls / name).exists():
            (hls / name).write_bytes(b"G" * 188 * (number + 1))
        lines += [f"#EXT-X-PROGRAM-DATE-TIME:2026-12-05T08:00:{number:02d}.000+0000", "#EXTINF:1.000,", name]
    (hls / "index.m3u8").write_text("\n".join(lines) + "\n")


async def test_the_recorder_keeps_new_segments_while_recording_and_pauses_on_a_full_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeRecording()
    media = MediaService(
        StreamsSettings(), None, root=tmp_path, socket_dir=tmp_path, processes=NoProcesses(),  # type: ignore[arg-type]
        recording=fake,
    )  # fmt: skip
    camera, session = uuid.uuid4(), uuid.uuid4()
    hls = hls_dir(tmp_path, camera)
    publication = Publication(camera, session, uuid.uuid4(), "builtin", StreamRelay(camera), _drop)
    recorder = CameraRecorder(camera, hls, tmp_path)
    media.streams[camera] = _Live(publication, None, recorder)  # type: ignore[arg-type]

    _write(hls, 0, 2)
    assert await media.record() == 0  # not recording: only noted as seen
    fake.recording = uuid.uuid4()
    _write(hls, 1, 4)
    assert await media.record() == 2  # 3 and 4, not the ones seen before
    assert await media.record() == 0  # none twice
    kept = [tmp_path / s.storage_key for s in fake.stored]
    assert [p.name for p in kept] == [str(s.start_us) + ".ts" for s in fake.stored]
    assert all(p.stat().st_nlink == 2 for p in kept)  # a hard link to the live file, no copy
    assert [s.size_bytes for s in fake.stored] == [188 * 4, 188 * 5]

    monkeypatch.setattr(disk, "has_room", lambda path, needed: False)
    with capture_logs() as logs:
        _write(hls, 3, 5)
        assert await media.record() == 0
        _write(hls, 4, 6)
        assert await media.record() == 0
    assert [e["event"] for e in logs] == ["recording_paused"]
    monkeypatch.setattr(disk, "has_room", lambda path, needed: True)
    with capture_logs() as logs:
        _write(hls, 6, 7)
        (hls / "seg_000007.ts").unlink()  # gone before the recorder saw it
        assert await media.record() == 0
    assert [e["event"] for e in logs] == ["recording_resumed", "recording_segment_missed"]

    _write(hls, 7, 8)
    await media._record_tail(media.streams[camera])
    assert [s.storage_key.endswith(".ts") for s in fake.stored[-1:]] == [True]
    assert len(fake.stored) == 3
    assert fake.ended == [session]


async def _drop(reason: str) -> None:
    return None
