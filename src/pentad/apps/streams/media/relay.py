"""In-process fan-out of one publisher's frames to its consumers (the HLS packager now; the recorder,
WebRTC viewers, images) and its health meter (media/health.py), whatever engine brought them in.

The relay keeps what a consumer joining mid-stream needs to start cleanly: the codec configuration frames
(metadata, the AVC sequence header, the AAC config) and the frames since the last video keyframe (the GOP).
A subscription starts with those, then gets every new frame. A consumer that falls MAX_QUEUE frames behind
is ended (its owner may subscribe again, from the next GOP) rather than letting memory grow."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

from pentad.apps.streams.media.frames import AUDIO, DATA, VIDEO, MediaFrame
from pentad.apps.streams.media.health import FrameMeter
from pentad.apps.streams.media.rtmp import amf0

MAX_QUEUE = 1024
MAX_GOP_FRAMES = 2048
_END = None


class Subscription:
    """One consumer's frames, in order. Iterate it; the iteration ends when the stream ends, when the
    consumer is too slow (`lagged` True) or after `close()`."""

    def __init__(self, relay: StreamRelay, *, from_keyframe: bool) -> None:
        self.relay = relay
        self.lagged = False
        self._queue: asyncio.Queue[MediaFrame | None] = asyncio.Queue(MAX_QUEUE + 16)
        self._waiting_keyframe = from_keyframe
        self._closed = False

    def offer(self, frame: MediaFrame) -> None:
        if self._closed:
            return
        if self._waiting_keyframe and not frame.config:
            if not (frame.kind == VIDEO and frame.keyframe):
                return
            self._waiting_keyframe = False
        if self._queue.qsize() >= MAX_QUEUE:
            self.lagged = True
            self.relay.meter.consumer_drops += 1
            self._finish()
            self.relay._subscribers.discard(self)
            return
        self._queue.put_nowait(frame)

    def _finish(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(_END)

    def close(self) -> None:
        self._finish()
        self.relay._subscribers.discard(self)

    def __aiter__(self) -> AsyncIterator[MediaFrame]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[MediaFrame]:
        try:
            while (frame := await self._queue.get()) is not None:
                yield frame
        finally:
            self.close()


class StreamRelay:
    """The live frames of one camera's stream."""

    def __init__(self, camera_id: uuid.UUID) -> None:
        self.camera_id = camera_id
        self.metadata: dict[str, Any] = {}
        self.frames_in = 0
        self.bytes_in = 0
        self.keyframes = 0
        self.closed = False
        self._config: dict[int, MediaFrame] = {}
        self._gop: list[MediaFrame] = []
        self._subscribers: set[Subscription] = set()
        self.first_keyframe = asyncio.Event()
        self.described = asyncio.Event()
        """Set once what the stream carries is known (has_audio, has_video): its metadata or its first
        keyframe came, or it ended."""
        self.meter = FrameMeter()
        """Bitrate, frame rate, keyframe interval and drops of what passes (media/health.py)."""

    @property
    def has_audio(self) -> bool:
        return "audiocodecid" in self.metadata or AUDIO in self._config or not self.metadata

    @property
    def has_video(self) -> bool:
        return "videocodecid" in self.metadata or VIDEO in self._config or not self.metadata

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def push(self, frame: MediaFrame) -> None:
        """A frame from the publisher, to every consumer."""
        if self.closed:
            return
        self.frames_in += 1
        self.bytes_in += len(frame.payload)
        self.meter.observe(frame)
        if frame.config:
            self._config[frame.kind] = frame
            if frame.kind == DATA:
                self.metadata = _metadata(frame.payload)
                self.described.set()
        elif frame.kind == VIDEO and frame.keyframe:
            self._gop = [frame]
            self.keyframes += 1
            self.first_keyframe.set()
            self.described.set()
        elif self._gop:
            if len(self._gop) >= MAX_GOP_FRAMES:
                self._gop = []
            else:
                self._gop.append(frame)
        for subscription in list(self._subscribers):
            subscription.offer(frame)

    def subscribe(self, *, from_keyframe: bool = True) -> Subscription:
        """A consumer's frames: configuration, the current GOP, then live. With `from_keyframe` (the
        default, for consumers that cut segments), media starts at a video keyframe of a stream with video."""
        subscription = Subscription(self, from_keyframe=from_keyframe and self.has_video)
        for kind in (DATA, VIDEO, AUDIO):
            if kind in self._config:
                subscription.offer(self._config[kind])
        for frame in self._gop:
            subscription.offer(frame)
        if self.closed:
            subscription._finish()
        else:
            self._subscribers.add(subscription)
        return subscription

    def close(self) -> None:
        """The publisher is gone: every subscription ends after the frames it holds."""
        self.closed = True
        self.described.set()
        for subscription in list(self._subscribers):
            subscription._finish()
        self._subscribers.clear()


def _metadata(payload: bytes) -> dict[str, Any]:
    """onMetaData's properties from a data frame (`onMetaData`, {...}); empty when it is something else."""
    try:
        values = amf0.decode_all(payload)
    except amf0.Amf0Error:
        return {}
    for value in values:
        if isinstance(value, dict):
            return dict(value)
    return {}
