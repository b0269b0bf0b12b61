"""H.264 between its two framings: FLV/RTMP's AVCC (length-prefixed NAL units, parameter sets in an
AVCDecoderConfigurationRecord, the AVC sequence header) and RTP's Annex-B (start codes, parameter sets in
band). Pure byte work: nothing is decoded or re-encoded."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

START_CODE = b"\x00\x00\x00\x01"
NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9
AVC_SEQUENCE_HEADER = 0
AVC_NALU = 1
FLV_AVC_KEYFRAME = 0x17
FLV_AVC_INTER = 0x27


class H264Error(ValueError):
    """Bytes that are not what they claim to be."""


@dataclass(frozen=True, slots=True)
class AvcConfig:
    """An AVCDecoderConfigurationRecord: the NAL length size and the parameter sets."""

    length_size: int
    sps: tuple[bytes, ...]
    pps: tuple[bytes, ...]

    @property
    def annexb(self) -> bytes:
        """The parameter sets as Annex-B, to put before each keyframe."""
        return b"".join(START_CODE + nal for nal in (*self.sps, *self.pps))

    @property
    def profile_level_id(self) -> str:
        """The SDP `profile-level-id` (profile, constraints, level; hex) of the first SPS."""
        return self.sps[0][1:4].hex() if self.sps and len(self.sps[0]) >= 4 else "42e01f"


def parse_avc_config(record: bytes) -> AvcConfig:
    """An AVCDecoderConfigurationRecord (the body of an FLV AVC sequence header after its 5 bytes)."""
    if len(record) < 7 or record[0] != 1:
        raise H264Error("not an AVCDecoderConfigurationRecord")
    length_size = (record[4] & 0x03) + 1
    position = 5
    sets: list[list[bytes]] = [[], []]
    for index in range(2):
        if position >= len(record):
            raise H264Error("truncated AVCDecoderConfigurationRecord")
        count = record[position] & (0x1F if index == 0 else 0xFF)
        position += 1
        for _ in range(count):
            if position + 2 > len(record):
                raise H264Error("truncated parameter set")
            (size,) = struct.unpack_from(">H", record, position)
            position += 2
            if position + size > len(record):
                raise H264Error("truncated parameter set")
            sets[index].append(record[position : position + size])
            position += size
    return AvcConfig(length_size, tuple(sets[0]), tuple(sets[1]))


def build_avc_config(sps: bytes, pps: bytes) -> bytes:
    """An AVCDecoderConfigurationRecord with 4-byte NAL lengths for one SPS and one PPS."""
    if len(sps) < 4:
        raise H264Error("SPS too short")
    return (
        bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE1])
        + struct.pack(">H", len(sps))
        + sps
        + b"\x01"
        + struct.pack(">H", len(pps))
        + pps
    )


def avcc_nals(data: bytes, length_size: int = 4) -> Iterator[bytes]:
    """The NAL units of length-prefixed (AVCC) data."""
    position = 0
    while position < len(data):
        if position + length_size > len(data):
            raise H264Error("truncated NAL length")
        size = int.from_bytes(data[position : position + length_size], "big")
        position += length_size
        if position + size > len(data):
            raise H264Error("truncated NAL unit")
        yield data[position : position + size]
        position += size


def avcc_to_annexb(data: bytes, length_size: int = 4) -> bytes:
    return b"".join(START_CODE + nal for nal in avcc_nals(data, length_size) if nal)


def annexb_nals(data: bytes) -> list[bytes]:
    """The NAL units of Annex-B data (3- or 4-byte start codes)."""
    nals: list[bytes] = []
    start = -1
    position = 0
    while True:
        found = data.find(b"\x00\x00\x01", position)
        if start >= 0:
            nals.append((data[start:found] if found >= 0 else data[start:]).rstrip(b"\x00"))
        if found < 0:
            break
        start = position = found + 3
    return [nal for nal in nals if nal]


def nal_type(nal: bytes) -> int:
    return nal[0] & 0x1F if nal else 0


def to_avcc(nals: Iterable[bytes]) -> bytes:
    return b"".join(struct.pack(">I", len(nal)) + nal for nal in nals)


def flv_video_payload(nals: list[bytes], *, keyframe: bool, cts: int = 0) -> bytes:
    """An FLV/RTMP AVC NALU video body of these NAL units."""
    header = bytes([FLV_AVC_KEYFRAME if keyframe else FLV_AVC_INTER, AVC_NALU])
    return header + (cts & 0xFFFFFF).to_bytes(3, "big") + to_avcc(nals)


def flv_sequence_header(sps: bytes, pps: bytes) -> bytes:
    """An FLV/RTMP AVC sequence header body."""
    return bytes([FLV_AVC_KEYFRAME, AVC_SEQUENCE_HEADER, 0, 0, 0]) + build_avc_config(sps, pps)


def composition_offset(payload: bytes) -> int:
    """The signed 24-bit composition time offset (ms) of an FLV AVC video body."""
    value = int.from_bytes(payload[2:5], "big")
    return value - (1 << 24) if value & 0x800000 else value
