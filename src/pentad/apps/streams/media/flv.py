"""FLV (Adobe Flash Video File Format 10.1, annex E): the file header and tags, written for the packager's
ffmpeg and read back by tests and tools. A tag body is a MediaFrame's payload."""

from __future__ import annotations

import struct
from collections.abc import Iterator

from pentad.apps.streams.media.frames import KINDS, MediaFrame

HEADER_SIZE = 9
TAG_HEADER_SIZE = 11
MAX_TAG_BODY = (1 << 24) - 1


class FlvError(ValueError):
    """Bytes that are not FLV."""


def file_header(*, audio: bool = True, video: bool = True) -> bytes:
    """The 9-byte header plus the first PreviousTagSize (0)."""
    flags = (0x04 if audio else 0) | (0x01 if video else 0)
    return b"FLV\x01" + bytes([flags]) + struct.pack(">I", HEADER_SIZE) + b"\x00\x00\x00\x00"


def tag(frame: MediaFrame) -> bytes:
    """One tag and its PreviousTagSize."""
    size = len(frame.payload)
    if size > MAX_TAG_BODY:
        raise FlvError(f"tag body of {size} bytes does not fit FLV")
    timestamp = frame.timestamp & 0xFFFFFFFF
    header = (
        bytes([frame.kind])
        + size.to_bytes(3, "big")
        + (timestamp & 0xFFFFFF).to_bytes(3, "big")
        + bytes([timestamp >> 24])
        + b"\x00\x00\x00"
    )
    return header + frame.payload + struct.pack(">I", TAG_HEADER_SIZE + size)


def read_header(data: bytes) -> tuple[bool, bool]:
    """(has audio, has video) from a file's first 13 bytes."""
    if len(data) < HEADER_SIZE + 4 or data[:3] != b"FLV":
        raise FlvError("no FLV header")
    offset = struct.unpack(">I", data[5:9])[0]
    if offset < HEADER_SIZE:
        raise FlvError("FLV header offset too small")
    return bool(data[4] & 0x04), bool(data[4] & 0x01)


def read_tags(data: bytes) -> Iterator[MediaFrame]:
    """The frames of a whole FLV file (header included); FlvError on a truncated or foreign tag."""
    read_header(data)
    position = struct.unpack(">I", data[5:9])[0] + 4
    while position < len(data):
        if position + TAG_HEADER_SIZE > len(data):
            raise FlvError("truncated tag header")
        kind = data[position] & 0x1F
        size = int.from_bytes(data[position + 1 : position + 4], "big")
        timestamp = int.from_bytes(data[position + 4 : position + 7], "big") | data[position + 7] << 24
        start = position + TAG_HEADER_SIZE
        end = start + size
        if end + 4 > len(data):
            raise FlvError("truncated tag body")
        if kind not in KINDS:
            raise FlvError(f"unknown tag type {kind}")
        yield MediaFrame.parse(kind, timestamp, data[start:end])
        position = end + 4
