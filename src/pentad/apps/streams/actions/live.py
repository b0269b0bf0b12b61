"""Live figures of the cameras: what the media plane's health monitor (media/health.py) reports, where it
goes, and the HLS viewers the media routes note.

- `LiveSink` (the monitor's HealthSink, in the `streams.ingest` service): Prometheus series (metrics.py),
  `camera.health` and `camera.viewers` on the camera's topic when they changed, and the latest figures in
  the cache for GET /api/streams/cameras/{id}/health (any worker, any node sharing the cache).
- HLS viewers: HLS is plain HTTP, so a viewer is a player that fetched one of the camera's playlists in
  the last HLS_WINDOW seconds (hls.js reloads a live playlist every segment). Each playlist request notes
  its player (a hash of address and user agent, never kept longer than 3 windows) with two cache counters:
  one per player and window, and, when that one is new, the camera's count for the window. Players behind
  one address with the same browser count once.
- WebRTC viewers: the node's WHEP peers (media/webrtc/hub.py), counted where they are."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Collection, Mapping
from typing import Any

from pentad.apps.streams import metrics
from pentad.apps.streams.events import CameraHealth, CameraViewers, camera_topic
from pentad.apps.streams.media.health import HEALTH_INTERVAL, LiveStream, StreamHealth, Viewers
from pentad.core.context import AppContext
from pentad.core.realtime.publish import publish_now

HLS_WINDOW = 4.0
HEALTH_TTL = 3 * HEALTH_INTERVAL
"""The cached figures outlive one missed look, not a stopped media plane."""


def _health_key(camera_id: uuid.UUID) -> str:
    return f"streams:health:{camera_id}"


def _window(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // HLS_WINDOW)


def player_id(address: str, user_agent: str) -> str:
    return hashlib.sha256(f"{address}\n{user_agent}".encode()).hexdigest()[:24]


async def note_hls_viewer(platform: AppContext, camera_id: uuid.UUID, player: str) -> None:
    """A player fetched a playlist of the camera."""
    window = _window()
    ttl = 3 * HLS_WINDOW
    if await platform.cache.incr(f"streams:hlsp:{camera_id}:{window}:{player}", ttl=ttl) == 1:
        await platform.cache.incr(f"streams:hlsn:{camera_id}:{window}", ttl=ttl)


async def hls_viewers(platform: AppContext, cameras: Collection[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Players of each camera: the more of the last complete window and the current one."""
    window = _window()
    ordered = list(cameras)
    keys = [f"streams:hlsn:{c}:{w}" for c in ordered for w in (window - 1, window)]
    values = await platform.cache.get_many(keys) if keys else []
    return {
        camera: max(int(values[2 * i] or 0), int(values[2 * i + 1] or 0)) for i, camera in enumerate(ordered)
    }


async def current_health(platform: AppContext, camera_id: uuid.UUID) -> CameraHealth | None:
    """The latest figures of a live camera, None when its media plane reported none lately."""
    found: Any = await platform.cache.get(_health_key(camera_id))
    return None if found is None else CameraHealth.model_validate(found)


class LiveSink:
    """media/health.py's HealthSink over the platform (metrics, hub, cache)."""

    def __init__(self, platform: AppContext) -> None:
        self.platform = platform
        self._engines: dict[uuid.UUID, str] = {}
        self._dropped: dict[uuid.UUID, int] = {}
        self._counted: set[str] = set()
        """Engines given a `live` figure (kept at 0 once their last stream ends)."""

    def _count_live(self) -> None:
        gauge = metrics.live(self.platform)
        self._counted.update(self._engines.values())
        for engine in self._counted:
            gauge.labels(engine).set(sum(1 for e in self._engines.values() if e == engine))

    async def report(
        self,
        stream: LiveStream,
        health: StreamHealth,
        viewers: Viewers,
        *,
        changed: bool,
        viewers_changed: bool,
    ) -> None:
        camera_id = stream.camera_id
        label = str(camera_id)
        if self._engines.get(camera_id) != stream.engine:
            self._engines[camera_id] = stream.engine
            self._count_live()
        metrics.bitrate(self.platform).labels(label).set(health.bitrate_kbps * 1000)
        metrics.frame_rate(self.platform).labels(label).set(health.fps)
        if health.keyframe_interval_s is not None:
            metrics.keyframe_interval(self.platform).labels(label).set(health.keyframe_interval_s)
        new_drops = health.dropped_frames - self._dropped.get(camera_id, 0)
        counter = metrics.dropped_frames(self.platform).labels(label)
        if new_drops > 0:
            counter.inc(new_drops)
        self._dropped[camera_id] = health.dropped_frames
        for protocol, number in viewers.items():
            metrics.viewers(self.platform).labels(label, protocol).set(number)
        event = CameraHealth(
            camera_id=camera_id,
            session_id=stream.session_id,
            engine=stream.engine,
            bitrate_kbps=health.bitrate_kbps,
            fps=health.fps,
            keyframe_interval_s=health.keyframe_interval_s,
            dropped_frames=health.dropped_frames,
            consumer_drops=health.consumer_drops,
            warnings=list(health.warnings),
            uptime_s=health.uptime_s,
            viewers=dict(viewers),
        )
        await self.platform.cache.set(_health_key(camera_id), event.model_dump(mode="json"), ttl=HEALTH_TTL)
        topic = camera_topic(camera_id)
        if changed:
            await publish_now(self.platform, topic, event)
        if viewers_changed:
            await publish_now(self.platform, topic, _viewers_event(camera_id, viewers))

    async def gone(self, camera_id: uuid.UUID, engine: str) -> None:
        label = str(camera_id)
        for series in metrics.per_camera(self.platform):
            _forget(series, label)
        for protocol in ("hls", "webrtc"):
            _forget(metrics.viewers(self.platform), label, protocol)
        self._engines.pop(camera_id, None)
        self._dropped.pop(camera_id, None)
        self._count_live()
        await self.platform.cache.delete(_health_key(camera_id))


def _viewers_event(camera_id: uuid.UUID, viewers: Mapping[str, int]) -> CameraViewers:
    hls, webrtc = viewers.get("hls", 0), viewers.get("webrtc", 0)
    return CameraViewers(camera_id=camera_id, hls=hls, webrtc=webrtc, total=hls + webrtc)


def _forget(series: Any, *labels: str) -> None:
    """Drop a stream's series. With PROMETHEUS_MULTIPROC_DIR the value lives on in this process's file
    until it exits, so a gauge is zeroed first."""
    try:
        if hasattr(series, "set"):
            series.labels(*labels).set(0)
        series.remove(*labels)
    except KeyError:
        pass
