"""aiortc tracks fed from a StreamRelay.

Video: the relay's H.264 (FLV/AVCC) becomes Annex-B access units in `av.Packet`s (parameter sets put
before each keyframe); aiortc's sender, given a packet instead of a frame, only packetizes it (RTP FU-A /
STAP-A): the stream is forwarded as the publisher encoded it, never decoded. Audio: WebRTC has no AAC,
so one OpusFeed per stream decodes the AAC once (PyAV), encodes Opus (libopus, 20 ms packets) and
shares the packets with every viewer of that stream."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
from collections.abc import Callable
from typing import Any, Protocol, TypeAlias

import av
import structlog
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from pentad.apps.streams.media.frames import AUDIO, CODEC_AVC, SOUND_AAC, VIDEO, MediaFrame
from pentad.apps.streams.media.relay import StreamRelay, Subscription
from pentad.apps.streams.media.webrtc.h264 import (
    AVC_NALU,
    AvcConfig,
    H264Error,
    avcc_to_annexb,
    composition_offset,
    parse_avc_config,
)

Packet: TypeAlias = "av.Packet[Any]"

logger = structlog.get_logger("pentad.streams.webrtc")

VIDEO_CLOCK = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK)
OPUS_RATE = 48_000
OPUS_FRAME = 960
OPUS_TIME_BASE = fractions.Fraction(1, OPUS_RATE)
VIEWER_AUDIO_QUEUE = 50
"""Opus packets (1 s) kept for a viewer that reads slowly; older ones are dropped."""


class _Clock:
    """RTMP's 32-bit millisecond timestamps as a growing count from the first one."""

    def __init__(self) -> None:
        self._last: int | None = None
        self._total = 0

    def __call__(self, timestamp: int) -> int:
        if self._last is not None:
            delta = (timestamp - self._last) & 0xFFFFFFFF
            if delta >= 0x80000000:
                delta -= 0x100000000
            self._total += delta
        self._last = timestamp
        return self._total


class RelayVideoTrack(MediaStreamTrack):
    """The relay's H.264, forwarded: each `recv()` is one access unit as an `av.Packet` (90 kHz pts)."""

    kind = "video"

    def __init__(self, subscription: Subscription, on_end: Callable[[], None] | None = None) -> None:
        super().__init__()
        self._subscription = subscription
        self._frames = aiter(subscription)
        self._config: AvcConfig | None = None
        self._clock = _Clock()
        self._on_end = on_end
        self.packets = 0

    async def recv(self) -> Packet:
        while True:
            try:
                frame = await anext(self._frames)
            except StopAsyncIteration:  # the stream ended (or this viewer lagged too far behind)
                self.stop()
                if self._on_end is not None:
                    self._on_end()
                raise MediaStreamError from None
            packet = self._packet(frame)
            if packet is not None:
                self.packets += 1
                return packet

    def _packet(self, frame: MediaFrame) -> Packet | None:
        payload = frame.payload
        if frame.kind != VIDEO or len(payload) < 5 or frame.video_codec != CODEC_AVC:
            return None
        try:
            if frame.config:
                self._config = parse_avc_config(payload[5:])
                return None
            if self._config is None or payload[1] != AVC_NALU:
                return None
            data = avcc_to_annexb(payload[5:], self._config.length_size)
        except H264Error:
            return None
        if frame.keyframe:
            data = self._config.annexb + data
        presentation = max(0, self._clock(frame.timestamp) + composition_offset(payload))
        packet = av.Packet(data)
        packet.pts = presentation * VIDEO_CLOCK // 1000
        packet.time_base = VIDEO_TIME_BASE
        return packet

    def stop(self) -> None:
        if self.readyState != "ended":
            self._subscription.close()
            super().stop()


class OpusFeed:
    """One stream's AAC as Opus, encoded once for all its WebRTC viewers. Runs while anyone listens."""

    def __init__(self, relay: StreamRelay, *, bitrate: int) -> None:
        self.relay = relay
        self.bitrate = bitrate
        self._listeners: set[asyncio.Queue[Packet | None]] = set()
        self._task: asyncio.Task[None] | None = None
        self.packets = 0

    def listen(self) -> asyncio.Queue[Packet | None]:
        queue: asyncio.Queue[Packet | None] = asyncio.Queue(VIEWER_AUDIO_QUEUE + 1)
        self._listeners.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"opus-{self.relay.camera_id}")
        return queue

    def leave(self, queue: asyncio.Queue[Packet | None]) -> None:
        self._listeners.discard(queue)
        if not self._listeners and self._task is not None:
            self._task.cancel()
            self._task = None

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._end_all()

    def _end_all(self) -> None:
        for queue in list(self._listeners):
            _offer(queue, None)

    async def _run(self) -> None:
        subscription = self.relay.subscribe(from_keyframe=False)
        transcoder: _AacToOpus | None = None
        try:
            async for frame in subscription:
                payload = frame.payload
                if frame.kind != AUDIO or len(payload) < 2 or frame.audio_codec != SOUND_AAC:
                    continue
                if frame.config:
                    transcoder = _AacToOpus(payload[2:], self.bitrate)
                    continue
                if transcoder is None:
                    continue
                for packet in transcoder.feed(payload[2:]):
                    self.packets += 1
                    for queue in list(self._listeners):
                        _offer(queue, packet)
        except Exception as exc:  # a codec that PyAV refuses: viewers keep the video
            logger.warning("webrtc_audio_failed", camera_id=str(self.relay.camera_id), error=str(exc))
        finally:
            subscription.close()
            if self._task is asyncio.current_task():
                self._task = None
                self._end_all()


def _offer(queue: asyncio.Queue[Packet | None], item: Packet | None) -> None:
    while queue.full():
        queue.get_nowait()
    queue.put_nowait(item)


class _AacToOpus:
    """AAC access units (with their AudioSpecificConfig) in, 20 ms Opus packets out."""

    def __init__(self, specific_config: bytes, bitrate: int) -> None:
        self.decoder = av.CodecContext.create("aac", "r")
        self.decoder.extradata = specific_config
        self.resampler = av.AudioResampler(
            format="s16", layout="stereo", rate=OPUS_RATE, frame_size=OPUS_FRAME
        )
        encoder = av.CodecContext.create("libopus", "w")
        encoder.sample_rate = OPUS_RATE
        encoder.layout = "stereo"
        encoder.format = "s16"
        encoder.bit_rate = bitrate
        encoder.options = {"application": "lowdelay", "frame_duration": "20"}
        encoder.open()
        self.encoder = encoder
        self.samples = 0

    def feed(self, access_unit: bytes) -> list[Packet]:
        out = _reencoded(self, access_unit)
        for packet in out:
            packet.time_base = OPUS_TIME_BASE
        return out


class _Transcoding(Protocol):
    decoder: Any
    resampler: Any
    encoder: Any
    samples: int


def _reencoded(codec: _Transcoding, data: bytes) -> list[Packet]:
    """`data` decoded, resampled into the encoder's frame size and encoded again, the samples counted on the
    48 kHz clock; nothing for a packet the decoder refuses."""
    out: list[Packet] = []
    try:
        decoded = codec.decoder.decode(av.Packet(data))
    except av.FFmpegError:
        return out
    for frame in decoded:
        for chunk in codec.resampler.resample(frame):
            chunk.pts = codec.samples
            chunk.time_base = OPUS_TIME_BASE
            codec.samples += chunk.samples
            out.extend(codec.encoder.encode(chunk))
    return out


AAC_FRAME = 1024
FLV_AAC = 0xAF
"""The first byte of an FLV AAC audio body: AAC, 44 kHz, 16 bits, stereo (FLV's fixed flags for AAC)."""


class OpusToAac:
    """A WHIP publisher's Opus packets (48 kHz RTP clock) in, FLV AAC audio bodies out (HLS, recordings
    and the RTMP-shaped relay carry AAC: Debian's FFmpeg 5.1 reads no Opus in FLV). `config` is the
    AudioSpecificConfig body to send before the first frame."""

    def __init__(self, bitrate: int) -> None:
        self.decoder = av.CodecContext.create("opus", "r")
        self.decoder.sample_rate = OPUS_RATE
        self.decoder.layout = "stereo"
        self.resampler = av.AudioResampler(
            format="fltp", layout="stereo", rate=OPUS_RATE, frame_size=AAC_FRAME
        )
        encoder = av.CodecContext.create("aac", "w")
        encoder.sample_rate = OPUS_RATE
        encoder.layout = "stereo"
        encoder.format = "fltp"
        encoder.bit_rate = bitrate
        encoder.time_base = OPUS_TIME_BASE
        encoder.open()
        self.encoder = encoder
        self.config = bytes([FLV_AAC, 0]) + bytes(encoder.extradata or b"")
        self.start: int | None = None
        self.samples = 0

    def feed(self, packet: bytes, timestamp: int) -> list[tuple[int, bytes]]:
        """(milliseconds, FLV AAC body) for each AAC frame that this Opus packet completes; the clock
        starts at the first packet's RTP timestamp (48 kHz)."""
        if self.start is None:
            self.start = timestamp
        out: list[tuple[int, bytes]] = []
        for encoded in _reencoded(self, packet):
            position = self.start + max(0, encoded.pts or 0)
            out.append((position * 1000 // OPUS_RATE, bytes([FLV_AAC, 1]) + bytes(encoded)))
        return out


class OpusTrack(MediaStreamTrack):
    """One viewer's Opus packets from the stream's OpusFeed."""

    kind = "audio"

    def __init__(self, feed: OpusFeed) -> None:
        super().__init__()
        self._feed = feed
        self._queue = feed.listen()

    async def recv(self) -> Packet:
        packet = await self._queue.get()
        if packet is None:
            self.stop()
            raise MediaStreamError
        return packet

    def stop(self) -> None:
        if self.readyState != "ended":
            self._feed.leave(self._queue)
            super().stop()
