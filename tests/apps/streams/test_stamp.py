"""The frame counter stamp (media/stamp.py): every number reads back, a damaged stamp is refused, and it
survives a real H.264 encode and decode (ffmpeg's libx264 as a camera would use it, PyAV's decoder)."""

from __future__ import annotations

import subprocess

import av
import pytest

from pentad.apps.streams.media.stamp import BLOCK, MAX_NUMBER, StampWriter, bits_of, number_of, read_luma
from tests.apps.streams.support import needs_ffmpeg


@pytest.mark.parametrize("number", [0, 1, 2, 255, 256, 65_535, 1_234_567, MAX_NUMBER])
def test_every_number_reads_back_and_a_flipped_block_is_refused(number: int) -> None:
    bits = bits_of(number)
    assert number_of(bits) == number
    for flipped in range(len(bits)):
        damaged = list(bits)
        damaged[flipped] ^= 1
        assert number_of(damaged) is None


def test_out_of_range_numbers_and_pictures_too_small_are_refused() -> None:
    with pytest.raises(ValueError, match="out of range"):
        bits_of(MAX_NUMBER + 1)
    with pytest.raises(ValueError, match="at least"):
        StampWriter(320, 180)


def test_a_raw_frame_reads_back() -> None:
    writer = StampWriter(640, 360)
    frame = writer.frame(4242)
    assert len(frame) == writer.frame_size
    assert read_luma(frame, 640) == 4242
    assert read_luma(bytes(640 * BLOCK), 640) is None  # black
    assert read_luma(bytes([255]) * (640 * BLOCK), 640) is None  # white


@needs_ffmpeg
def test_the_stamp_survives_h264(tmp_path: object) -> None:
    writer = StampWriter(640, 360)
    raw = b"".join(writer.frame(n) for n in range(1000, 1060))
    encoded = subprocess.run(
        [
            "ffmpeg", "-v", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", "640x360", "-r", "30",
            "-i", "-", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30",
            "-b:v", "800k", "-f", "h264", "-",
        ],
        input=raw, capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    codec = av.CodecContext.create("h264", "r")
    numbers = []
    for packet in codec.parse(encoded) + codec.parse(b""):
        for frame in codec.decode(packet):
            plane = frame.planes[0]
            numbers.append(read_luma(memoryview(plane), plane.line_size))
    for frame in codec.decode(None):
        plane = frame.planes[0]
        numbers.append(read_luma(memoryview(plane), plane.line_size))
    assert numbers == list(range(1000, 1060))
