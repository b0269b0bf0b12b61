"""FLV tags as the packager writes them for ffmpeg, and media frames parsed from RTMP bodies."""

from __future__ import annotations

import subprocess

import pytest

from pentad.apps.streams.media import flv
from pentad.apps.streams.media.frames import AUDIO, DATA, VIDEO, MediaFrame
from pentad.apps.streams.media.rtmp import amf0

AVC_CONFIG = MediaFrame.parse(VIDEO, 0, b"\x17\x00\x00\x00\x00" + b"\x01\x64\x00\x1e")
AVC_KEY = MediaFrame.parse(VIDEO, 0, b"\x17\x01\x00\x00\x00" + b"\x00\x00\x00\x02\x65\x88")
AVC_INTER = MediaFrame.parse(VIDEO, 33, b"\x27\x01\x00\x00\x00" + b"\x00\x00\x00\x02\x41\x9a")
AAC_CONFIG = MediaFrame.parse(AUDIO, 0, b"\xaf\x00\x11\x90")
AAC_RAW = MediaFrame.parse(AUDIO, 21, b"\xaf\x01" + b"\x21" * 10)


def test_frame_flags() -> None:
    assert AVC_CONFIG.config
    assert not AVC_CONFIG.keyframe
    assert AVC_KEY.keyframe
    assert not AVC_KEY.config
    assert not AVC_INTER.keyframe
    assert not AVC_INTER.config
    assert AAC_CONFIG.config
    assert not AAC_RAW.config
    assert AVC_KEY.video_codec == 7
    assert AAC_RAW.audio_codec == 10
    assert MediaFrame.parse(DATA, 0, amf0.encode_all("onMetaData", {})).config
    assert MediaFrame.parse(VIDEO, 0x1_0000_0005, b"\x27").timestamp == 5
    with pytest.raises(ValueError, match="not a media"):
        MediaFrame.parse(20, 0, b"")


def test_tags_read_back() -> None:
    frames = [
        AVC_CONFIG,
        AAC_CONFIG,
        AVC_KEY,
        AAC_RAW,
        AVC_INTER,
        MediaFrame.parse(VIDEO, 0x01000020, b"\x27"),
    ]
    data = flv.file_header() + b"".join(flv.tag(frame) for frame in frames)
    assert flv.read_header(data) == (True, True)
    assert list(flv.read_tags(data)) == frames


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"NOT", "no FLV header"),
        (flv.file_header() + flv.tag(AVC_KEY)[:-6], "truncated tag body"),
        (flv.file_header() + b"\x09\x00", "truncated tag header"),
        (flv.file_header() + b"\x07" + flv.tag(AVC_KEY)[1:], "unknown tag type"),
    ],
)
def test_bad_flv_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(flv.FlvError, match=message):
        list(flv.read_tags(data))


def test_ffmpeg_reads_what_we_write(tmp_path: pytest.TempPathFactory) -> None:
    """A real clip re-written tag by tag through our writer is one ffmpeg accepts as the same streams."""
    clip = tmp_path / "clip.flv"  # type: ignore[operator]
    source = [
        "ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=10", "-f", "lavfi",
        "-i", "sine=sample_rate=48000", "-t", "1", "-c:v", "libx264", "-g", "10", "-c:a", "aac", str(clip),
    ]  # fmt: skip
    subprocess.run(source, check=True, capture_output=True, timeout=60)
    frames = list(flv.read_tags(clip.read_bytes()))
    video = [frame for frame in frames if frame.kind == VIDEO and not frame.config]
    assert video[0].keyframe
    assert any(frame.config and frame.kind == VIDEO for frame in frames)
    copy = tmp_path / "copy.flv"  # type: ignore[operator]
    copy.write_bytes(flv.file_header() + b"".join(flv.tag(frame) for frame in frames))
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", str(copy)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sorted(probe.stdout.split()) == ["aac", "h264"]
