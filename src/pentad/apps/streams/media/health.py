"""Health of live streams: bitrate, frame rate, keyframe interval, dropped frames, viewers per protocol.

Measured from the frames passing through each stream's relay (media/relay.py), whatever engine brought them
in, with counters only (nothing is decoded): every relay has a `FrameMeter`, and `observe()` costs an append
and a few additions per frame.

- bitrate and frame rate: bytes (audio, video, data) and video frames that arrived in the last
  WINDOW_SECONDS, by the arrival clock;
- keyframe interval: the media time between the last two video keyframes; the warning `keyframe_interval`
  when it is longer than HLS_SEGMENT_SECONDS (segments are cut on keyframes, so they get that long, and the
  HLS latency with them);
- dropped frames: frames missing at the source, estimated from gaps in the video timestamps (a gap of n
  usual frame intervals is n - 1 frames the publisher never sent), counted since the stream began;
  `consumer_drops`: consumers of the relay (packager, WebRTC viewers, …) cut off for falling behind;
- warnings: `keyframe_interval`, `no_keyframe` (none for KEYFRAME_SILENCE seconds), `stalled` (no frame
  for STALL_SECONDS).

`HealthMonitor` looks at every live stream every HEALTH_INTERVAL seconds and hands each one's `StreamHealth`
and viewer counts (HLS, WebRTC) to a `HealthSink` (services.py: Prometheus gauges, the camera's hub topic
when a figure changed, the cache read by GET /api/streams/cameras/{id}/health)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from pentad.apps.streams.media.frames import VIDEO, MediaFrame

WINDOW_SECONDS = 5.0
"""Bitrate and frame rate are averaged over this many seconds."""
HEALTH_INTERVAL = 2.0
"""Seconds between two looks at the live streams."""
STALL_SECONDS = 2.0
KEYFRAME_SILENCE = 5.0
GAP_FACTOR = 1.5
"""A video timestamp gap longer than this many usual frame intervals means frames were dropped."""
PROTOCOLS = ("hls", "webrtc")

_WRAP = 0xFFFFFFFF
_HALF = 0x80000000

logger = structlog.get_logger("pentad.streams.health")


@dataclass(frozen=True, slots=True)
class StreamHealth:
    """One stream's figures at one moment."""

    bitrate_kbps: int
    fps: float
    keyframe_interval_s: float | None
    """Media time between the last two keyframes; None before the second keyframe."""
    dropped_frames: int
    consumer_drops: int
    warnings: tuple[str, ...]
    uptime_s: float

    def differs(self, other: StreamHealth | None) -> bool:
        """Whether this is worth telling subscribers after `other`: a warning, the keyframe interval or the
        dropped frames changed, the frame rate by half a frame or the bitrate by 5 % or more."""
        if other is None:
            return True
        return (
            self.warnings != other.warnings
            or self.keyframe_interval_s != other.keyframe_interval_s
            or self.dropped_frames != other.dropped_frames
            or self.consumer_drops != other.consumer_drops
            or abs(self.fps - other.fps) >= 0.5
            or abs(self.bitrate_kbps - other.bitrate_kbps) > 0.05 * max(other.bitrate_kbps, 1)
        )


class FrameMeter:
    """The counters of one relay's frames (StreamRelay.push calls `observe`)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.started = clock()
        self._window: deque[tuple[float, int, int]] = deque()
        self._bytes = 0
        self._video = 0
        self.last_frame_at: float | None = None
        self.last_keyframe_at: float | None = None
        self._last_video_ts: int | None = None
        self._last_keyframe_ts: int | None = None
        self._frame_ms: float | None = None
        self.keyframe_interval_ms: int | None = None
        self.dropped_frames = 0
        self.consumer_drops = 0

    def observe(self, frame: MediaFrame) -> None:
        now = self._clock()
        self.last_frame_at = now
        video = 1 if frame.kind == VIDEO and not frame.config else 0
        size = len(frame.payload)
        self._window.append((now, size, video))
        self._bytes += size
        self._video += video
        self._trim(now)
        if video:
            self._video_timing(frame.timestamp, now, keyframe=frame.keyframe)

    def _trim(self, now: float) -> None:
        horizon = now - WINDOW_SECONDS
        window = self._window
        while window and window[0][0] <= horizon:
            _, size, video = window.popleft()
            self._bytes -= size
            self._video -= video

    def _video_timing(self, timestamp: int, now: float, *, keyframe: bool) -> None:
        last = self._last_video_ts
        self._last_video_ts = timestamp
        if last is not None:
            delta = (timestamp - last) & _WRAP
            if 0 < delta < _HALF:  # forward (32-bit milliseconds wrap); equal or backwards says nothing
                usual = self._frame_ms
                if usual is not None and delta > GAP_FACTOR * usual:
                    self.dropped_frames += max(round(delta / usual) - 1, 0)
                else:
                    self._frame_ms = delta if usual is None else 0.9 * usual + 0.1 * delta
        if keyframe:
            if self._last_keyframe_ts is not None:
                interval = (timestamp - self._last_keyframe_ts) & _WRAP
                if interval < _HALF:
                    self.keyframe_interval_ms = interval
            self._last_keyframe_ts = timestamp
            self.last_keyframe_at = now

    def health(self, *, segment_seconds: float) -> StreamHealth:
        now = self._clock()
        self._trim(now)
        span = min(WINDOW_SECONDS, now - self.started)
        bitrate = fps = 0.0
        if span > 0:
            bitrate = self._bytes * 8 / span / 1000
            fps = self._video / span
        interval = self.keyframe_interval_ms
        warnings = []
        if interval is not None and interval > segment_seconds * 1000:
            warnings.append("keyframe_interval")
        since_keyframe = now - (self.last_keyframe_at if self.last_keyframe_at is not None else self.started)
        if since_keyframe > max(KEYFRAME_SILENCE, 2 * segment_seconds):
            warnings.append("no_keyframe")
        since_frame = now - (self.last_frame_at if self.last_frame_at is not None else self.started)
        if since_frame > STALL_SECONDS:
            warnings.append("stalled")
        return StreamHealth(
            bitrate_kbps=round(bitrate),
            fps=round(fps, 1),
            keyframe_interval_s=None if interval is None else interval / 1000,
            dropped_frames=self.dropped_frames,
            consumer_drops=self.consumer_drops,
            warnings=tuple(warnings),
            uptime_s=round(now - self.started, 1),
        )


class LiveStream(Protocol):
    """What the monitor needs of a live stream (engines/base.py Publication)."""

    @property
    def camera_id(self) -> uuid.UUID: ...

    @property
    def session_id(self) -> uuid.UUID: ...

    @property
    def engine(self) -> str: ...


Viewers = Mapping[str, int]
"""Viewers of one camera by protocol (`hls`, `webrtc`)."""
ViewerCounter = Callable[[Collection[uuid.UUID]], Awaitable[Mapping[uuid.UUID, int]]]
"""Viewers of one protocol for each of these cameras (missing: none)."""


class HealthSink(Protocol):
    """Where the figures go (services.py: metrics, hub, cache)."""

    async def report(
        self,
        stream: LiveStream,
        health: StreamHealth,
        viewers: Viewers,
        *,
        changed: bool,
        viewers_changed: bool,
    ) -> None: ...

    async def gone(self, camera_id: uuid.UUID, engine: str) -> None:
        """The camera's stream ended: drop its figures."""
        ...


@dataclass
class _Seen:
    engine: str
    session_id: uuid.UUID
    health: StreamHealth | None = None
    viewers: dict[str, int] = field(default_factory=dict)


class HealthMonitor:
    """Every HEALTH_INTERVAL: each live stream's health and viewers, to the sink."""

    def __init__(
        self,
        streams: Callable[[], Mapping[uuid.UUID, tuple[LiveStream, FrameMeter]]],
        sink: HealthSink,
        *,
        segment_seconds: float,
        viewer_counters: Mapping[str, ViewerCounter],
    ) -> None:
        self.streams = streams
        self.sink = sink
        self.segment_seconds = segment_seconds
        self.viewer_counters = viewer_counters
        self._seen: dict[uuid.UUID, _Seen] = {}

    async def _viewers(self, cameras: Collection[uuid.UUID]) -> dict[uuid.UUID, dict[str, int]]:
        counts: dict[uuid.UUID, dict[str, int]] = {camera: dict.fromkeys(PROTOCOLS, 0) for camera in cameras}
        for protocol, counter in self.viewer_counters.items():
            try:
                found = await counter(cameras)
            except Exception as exc:  # the cache may be away for a while: those counts stay 0
                logger.warning("viewer_count_failed", protocol=protocol, error=type(exc).__name__)
                continue
            for camera, number in found.items():
                if camera in counts:
                    counts[camera][protocol] = number
        return counts

    async def tick(self) -> int:
        """One look at every live stream; how many were reported."""
        live = dict(self.streams())
        for camera_id in [c for c, seen in self._seen.items() if c not in live]:
            ended = self._seen.pop(camera_id)
            await self.sink.gone(camera_id, ended.engine)
        viewers = await self._viewers(live.keys())
        for camera_id, (stream, meter) in live.items():
            seen = self._seen.get(camera_id)
            if seen is None or seen.session_id != stream.session_id:
                seen = self._seen[camera_id] = _Seen(stream.engine, stream.session_id)
            health = meter.health(segment_seconds=self.segment_seconds)
            counts = viewers[camera_id]
            changed = health.differs(seen.health)
            viewers_changed = counts != seen.viewers
            await self.sink.report(stream, health, counts, changed=changed, viewers_changed=viewers_changed)
            if changed:
                seen.health = health
            seen.viewers = counts
        return len(live)

    async def run(self) -> None:
        """Until cancelled; the streams still reported are reported gone when it stops."""
        try:
            while True:
                await asyncio.sleep(HEALTH_INTERVAL)
                try:
                    await self.tick()
                except Exception as exc:  # a sink that failed once (the broker away) must not stop it
                    logger.warning("health_check_failed", error=type(exc).__name__)
        finally:
            for camera_id, seen in list(self._seen.items()):
                try:
                    await self.sink.gone(camera_id, seen.engine)
                except Exception as exc:
                    logger.warning("health_cleanup_failed", error=type(exc).__name__)
            self._seen.clear()
