"""Recording end to end on the built-in engine: a real `pentad serve` (SQLite) and a real ffmpeg publisher
(lavfi test picture + tone) to a camera in continuous mode. The recording keeps every segment although the
live playlist keeps only six, ends with the stream, plays back by time range through the VOD playlist
(ffprobe over HTTP), and exports to an MP4 through `pentad streams export` (the job run by the server's
worker; ffprobe: H.264 + AAC, the range's duration)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.apps.streams.media_node import OWNER, MediaNode, node_env, publishing, require_ffmpeg
from tests.apps.streams.support import probe, probe_streams, starts_on_keyframe
from tests.factories import free_port

pytestmark = pytest.mark.slow

PUBLISH_SECONDS = 10


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaNode]:
    require_ffmpeg()
    root = tmp_path_factory.mktemp("recording-node")
    media = MediaNode(node_env(root), root / "serve.log", free_port())
    media.prepare()
    with media.serving() as server:
        media.pid = server.pid
        yield media


def _timeline(node: MediaNode, camera: uuid.UUID) -> tuple[list[list[str]], list[list[str]]]:
    """(recording lines, span lines) of `pentad streams recordings list`, split on tabs."""
    lines = [line.split("\t") for line in node.cli("streams", "recordings", "list", str(camera)).splitlines()]
    return [line for line in lines if line[0] == "recording"], [line for line in lines if line[0] == "span"]


def _live_segments(node: MediaNode, camera: uuid.UUID) -> int:
    try:
        text = node.playlist(camera).read_text()
    except FileNotFoundError:
        return 0
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def test_a_continuous_camera_is_recorded_played_back_by_range_and_exported(
    node: MediaNode, tmp_path: Path
) -> None:
    made = node.cli(
        "streams", "cameras", "create", "Recorded", "--owner", OWNER, "--visibility", "public",
        "--recording-mode", "continuous",
    )  # fmt: skip
    camera = uuid.UUID(made.split("(")[1].split(")")[0])
    _, key = node.new_key(camera)
    with publishing(node.rtmp_url(key), tmp_path / "publisher.log", seconds=PUBLISH_SECONDS):
        node.wait(lambda: _live_segments(node, camera) >= 1, "the stream is live")
        node.wait(lambda: _timeline(node, camera)[0], "a recording started with the stream")
        (recording,) = _timeline(node, camera)[0]
        assert recording[2] == "continuous"
        assert recording[4] == "recording"
        node.wait(lambda: all(r[4] != "recording" for r in _timeline(node, camera)[0]), "the stream ended",
                  timeout=PUBLISH_SECONDS + 20)  # fmt: skip
    (recording,) = _timeline(node, camera)[0]
    assert recording[5] == "stream_ended"
    node.wait(lambda: _timeline(node, camera)[1], "recorded spans")
    spans = _timeline(node, camera)[1]
    segments = sum(int(span[3]) for span in spans)
    assert segments >= 8  # more than the live playlist ever held (six): trimmed segments were kept
    assert _live_segments(node, camera) <= 6
    start, end = datetime.fromisoformat(spans[0][1]), datetime.fromisoformat(spans[-1][2])
    assert 7.0 < (end - start).total_seconds() < PUBLISH_SECONDS + 3
    assert not node.log_events("recording_segment_missed")

    # Playback by range over HTTP: the VOD playlist of the whole recording plays in ffprobe.
    def url(begin: datetime, finish: datetime) -> str:
        stamp = "%Y-%m-%dT%H:%M:%S.%fZ"
        return (
            f"{node.base_url}/streams/recordings/{camera}/vod.m3u8"
            f"?start={begin.strftime(stamp)}&end={finish.strftime(stamp)}"
        )

    whole = url(start, end)
    streams = probe_streams(whole)
    assert (streams["video"]["codec_name"], streams["audio"]["codec_name"]) == ("h264", "aac")
    assert (streams["video"]["width"], streams["video"]["height"]) == (640, 360)
    played = float(probe(whole, "-show_entries", "format=duration")["format"]["duration"])
    assert abs(played - (end - start).total_seconds()) < 1.5
    middle = start + timedelta(seconds=3)
    text = subprocess.run(["curl", "-sf", url(middle, middle + timedelta(seconds=2))], capture_output=True,
                          text=True, check=True, timeout=30).stdout  # fmt: skip
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in text
    first = next(line for line in text.splitlines() if line and not line.startswith("#"))
    assert starts_on_keyframe(f"{node.base_url}/streams/recordings/{camera}/{first}")

    # MP4 export of 3 seconds by remux, as a job of the server's worker, through the CLI.
    stamp = "%Y-%m-%dT%H:%M:%S.%fZ"
    exported = node.cli(
        "streams", "export", str(camera), "--start", middle.strftime(stamp),
        "--end", (middle + timedelta(seconds=3)).strftime(stamp), "--timeout", "60",
    )  # fmt: skip
    path = Path(exported.split("file: ")[1].strip())
    assert path.is_file()
    assert path.suffix == ".mp4"
    streams = probe_streams(str(path))
    assert (streams["video"]["codec_name"], streams["audio"]["codec_name"]) == ("h264", "aac")
    duration = float(probe(str(path), "-show_entries", "format=duration")["format"]["duration"])
    assert (
        2.5 < duration < 5.2
    )  # whole 1-s segments from the one holding the start to the one holding the end
    assert node.log_events("export_done")
