"""Realtime events of the streams app, and its domain events.

`streams.camera.{camera_id}`: what happens to one camera (online, offline, health, viewers, recordings and
exports as the media plane lands), for whoever may view it: a role on it, anyone for a public or unlisted
camera, or a playback token of it.
`streams.directory`: public cameras going online, offline or away (the grid), for anyone with `streams.watch`.
`streams.user.{user_id}`: one account's own affairs (keys made or revoked, roles given or taken).

Domain events (no subscribers of our own): `streams.stream_started`, `streams.stream_ended`, declared now
with `streams.recording_stored` and `streams.viewer_session_ended`, which the media plane emits later.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel

from pentad.core.events import DomainEvent

DIRECTORY_TOPIC = "streams.directory"


def camera_topic(camera_id: uuid.UUID) -> str:
    return f"streams.camera.{camera_id}"


def user_topic(user_id: uuid.UUID) -> str:
    return f"streams.user.{user_id}"


# ------------------------------------------------------------------ realtime payloads


class CameraLive(BaseModel):
    """On the camera's topic (and the directory's, for a public camera)."""

    type: Literal["camera.online", "camera.offline"]
    camera_id: uuid.UUID
    session_id: uuid.UUID
    reason: str | None = None
    """Why it went offline (`publisher_left`, `key_revoked`, `camera_deleted`, …)."""


class CameraChanged(BaseModel):
    """On the camera's topic; on the directory too when it became, stayed or stopped being public."""

    type: Literal["camera.updated", "camera.deleted"]
    camera_id: uuid.UUID
    name: str
    visibility: str


class KeyChanged(BaseModel):
    """On the topics of the camera's managers: a stream key was made or revoked (never the key itself)."""

    type: Literal["key.created", "key.revoked"]
    camera_id: uuid.UUID
    key_id: uuid.UUID
    hint: str


class GrantChanged(BaseModel):
    """On the topic of the account whose role changed."""

    type: Literal["grant.added", "grant.removed"]
    camera_id: uuid.UUID
    role: str | None


class CameraUnreachable(BaseModel):
    """On the camera's topic: a pulled (RTSP) camera could not be reached or sent no media; the puller
    tries again in `retry_in` seconds (exponential backoff: RTSP__BACKOFF_BASE doubling up to
    RTSP__BACKOFF_MAX). `attempt` counts the failures in a row."""

    type: Literal["camera.unreachable"] = "camera.unreachable"
    camera_id: uuid.UUID
    attempt: int
    retry_in: float


# ------------------------------------------------------------------ domain events


class StreamStarted(BaseModel):
    camera_id: uuid.UUID
    session_id: uuid.UUID
    engine: str
    source: str


class StreamEnded(BaseModel):
    camera_id: uuid.UUID
    session_id: uuid.UUID
    engine: str
    source: str
    duration_s: float
    reason: str


class RecordingStored(BaseModel):
    camera_id: uuid.UUID
    segment_count: int
    bytes: int


class ViewerSessionEnded(BaseModel):
    camera_id: uuid.UUID
    protocol: Literal["hls", "webrtc"]
    seconds: float


STREAM_STARTED = DomainEvent("streams.stream_started", StreamStarted, "A camera started streaming.")
STREAM_ENDED = DomainEvent("streams.stream_ended", StreamEnded, "A camera's live stream ended.")
RECORDING_STORED = DomainEvent(
    "streams.recording_stored", RecordingStored, "Recorded segments stored in the last hour (a roll-up)."
)
VIEWER_SESSION_ENDED = DomainEvent(
    "streams.viewer_session_ended", ViewerSessionEnded, "A viewer stopped watching a camera."
)
DOMAIN_EVENTS = (STREAM_STARTED, STREAM_ENDED, RECORDING_STORED, VIEWER_SESSION_ENDED)


# ------------------------------------------------------------------ recording (realtime, camera topic)


class RecordingChanged(BaseModel):
    """On the camera's topic: a recording started (continuous with a stream, or on demand) or stopped."""

    type: Literal["recording.started", "recording.stopped"]
    camera_id: uuid.UUID
    recording_id: uuid.UUID
    mode: str
    reason: str | None = None
    """Why it stopped: `stopped` (the API), `stream_ended`, `mode_changed`."""


class ExportProgress(BaseModel):
    """On the camera's topic: an MP4 export queued, under way (progress 0-1), done or failed."""

    type: Literal["export.progress"] = "export.progress"
    camera_id: uuid.UUID
    export_id: uuid.UUID
    status: str
    progress: float
    size_bytes: int | None = None
    error: str | None = None


# ------------------------------------------------------------------ health (realtime, camera topic)


class CameraHealth(BaseModel):
    """On the camera's topic, every 2 s while a figure changes (media/health.py says how each is measured).
    Also what GET /api/streams/cameras/{id}/health answers while the camera is live."""

    type: Literal["camera.health"] = "camera.health"
    camera_id: uuid.UUID
    session_id: uuid.UUID
    engine: str
    bitrate_kbps: int
    fps: float
    keyframe_interval_s: float | None
    dropped_frames: int
    consumer_drops: int
    warnings: list[str]
    """`keyframe_interval` (longer than the HLS segment), `no_keyframe`, `stalled`."""
    uptime_s: float
    viewers: dict[str, int]
    """By protocol: `hls`, `webrtc`."""


class LatencyFigures(BaseModel):
    samples: int
    p50_ms: float
    p95_ms: float
    max_ms: float


class CameraLatency(BaseModel):
    """On the probe camera's topic every LATENCY_PROBE__INTERVAL: glass-to-glass latency measured by the
    `streams.latency_probe` service over that interval, per protocol (`webrtc`: decoded frames, `hls`:
    segments newly listed; a protocol with no sample in the interval is left out)."""

    type: Literal["camera.latency"] = "camera.latency"
    camera_id: uuid.UUID
    protocols: dict[str, LatencyFigures]


class CameraViewers(BaseModel):
    """On the camera's topic when its viewer counts change (HLS: distinct players in the last few seconds)."""

    type: Literal["camera.viewers"] = "camera.viewers"
    camera_id: uuid.UUID
    hls: int
    webrtc: int
    total: int
