"""What flows from an ingest engine through the relay to its consumers: one FLV-shaped media frame.

RTMP audio, video and data messages and FLV tags carry the same bodies, so a frame is the message body with
its type, timestamp and the two facts consumers need without parsing: keyframe, and codec configuration
(the AVC sequence header with SPS/PPS, the AAC AudioSpecificConfig, the stream's metadata)."""

from __future__ import annotations

from dataclasses import dataclass

AUDIO = 8
VIDEO = 9
DATA = 18
KINDS = (AUDIO, VIDEO, DATA)

VIDEO_KEYFRAME = 1
CODEC_AVC = 7
SOUND_AAC = 10


@dataclass(frozen=True, slots=True)
class MediaFrame:
    """kind: AUDIO, VIDEO or DATA (the FLV tag type); timestamp: milliseconds (32 bits, wrapping);
    payload: the tag body as RTMP carries it."""

    kind: int
    timestamp: int
    payload: bytes
    keyframe: bool = False
    config: bool = False

    @classmethod
    def parse(cls, kind: int, timestamp: int, payload: bytes) -> MediaFrame:
        """A frame from an RTMP message or FLV tag body (ValueError for an unknown kind)."""
        if kind not in KINDS:
            raise ValueError(f"not a media message type: {kind}")
        keyframe = config = False
        if kind == VIDEO and payload:
            keyframe = payload[0] >> 4 == VIDEO_KEYFRAME
            config = payload[0] & 0x0F == CODEC_AVC and len(payload) > 1 and payload[1] == 0
        elif kind == AUDIO and payload:
            config = payload[0] >> 4 == SOUND_AAC and len(payload) > 1 and payload[1] == 0
        elif kind == DATA:
            config = True
        return cls(kind, timestamp & 0xFFFFFFFF, payload, keyframe and not config, config)

    @property
    def video_codec(self) -> int | None:
        return self.payload[0] & 0x0F if self.kind == VIDEO and self.payload else None

    @property
    def audio_codec(self) -> int | None:
        return self.payload[0] >> 4 if self.kind == AUDIO and self.payload else None
