"""What the streams API answers (pydantic models of its JSON) and the live events of its hub topics.

The models accept fields they do not know (a newer server may add some), so an older SDK keeps working.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

Visibility = Literal["public", "unlisted", "private"]
Source = Literal["rtmp", "rtsp", "whip"]
Profile = Literal["passthrough", "ladder"]
RecordingMode = Literal["off", "continuous", "on_demand"]
RtspTransport = Literal["tcp", "udp"]
CameraRole = Literal["viewer", "operator", "owner"]
ExportStatus = Literal["queued", "running", "done", "failed", "expired"]


class Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Camera(Model):
    id: uuid.UUID
    owner_id: uuid.UUID
    name: str
    visibility: Visibility
    source: Source
    profile: Profile
    recording_mode: RecordingMode
    retention_days: int | None
    retention_bytes: int | None
    thumbnail_interval: int | None
    rtsp_url: str | None
    """The RTSP URL with its password masked (`****`); managers only."""
    rtsp_transport: RtspTransport
    live: bool
    role: CameraRole | None
    """Your role on the camera (admins: owner); None for a public camera you hold no role on."""
    can_operate: bool
    can_manage: bool
    created_at: datetime
    updated_at: datetime


class DirectoryEntry(Model):
    """A public camera as the grid lists it."""

    id: uuid.UUID
    name: str
    live: bool


class StreamKey(Model):
    id: uuid.UUID
    camera_id: uuid.UUID
    name: str
    hint: str
    """The key's last 4 characters, to tell keys apart."""
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class StreamKeyCreated(StreamKey):
    key: str
    """The stream key (`psk_…`), given this once: the server keeps only its hash."""
    rtmp_url: str
    """Where to publish: the server URL; the key is the stream name."""

    @property
    def publish_url(self) -> str:
        """The full RTMP URL an encoder publishes to (it holds the secret key: do not log it)."""
        return f"{self.rtmp_url.rstrip('/')}/{self.key}"

    def __repr__(self) -> str:
        return f"StreamKeyCreated(id={self.id!s}, camera_id={self.camera_id!s}, hint={self.hint!r}, key=***)"

    __str__ = __repr__


class Grant(Model):
    user_id: uuid.UUID
    role: CameraRole


class PlaybackUrls(Model):
    hls: str
    """The live playlist, the token in its query."""
    whep: str
    """The WHEP endpoint (send the token as a bearer token)."""


class PlaybackToken(Model):
    token: str
    """`psp_…`: opens this camera's media and live events only, until it expires."""
    expires_at: datetime
    urls: PlaybackUrls


class Recording(Model):
    id: uuid.UUID
    camera_id: uuid.UUID
    session_id: uuid.UUID | None
    mode: Literal["continuous", "on_demand"]
    started_at: datetime
    ended_at: datetime | None
    """None while it records."""
    stop_reason: str | None


class TimelineSpan(Model):
    """A stretch of time with recorded media and no gap longer than a second."""

    start: datetime
    end: datetime
    segments: int
    bytes: int


class Timeline(Model):
    camera_id: uuid.UUID
    start: datetime
    end: datetime
    recordings: list[Recording]
    spans: list[TimelineSpan]
    stored_bytes: int


class Segment(Model):
    id: int
    recording_id: uuid.UUID
    start: datetime
    duration_ms: int
    size_bytes: int


class Export(Model):
    id: uuid.UUID
    camera_id: uuid.UUID
    start: datetime
    end: datetime
    status: ExportStatus
    job_id: uuid.UUID | None
    size_bytes: int | None
    created_at: datetime
    expires_at: datetime | None
    download_url: str | None

    @property
    def finished(self) -> bool:
        """Done, failed or expired: it will not change any more (but for expiring)."""
        return self.status in ("done", "failed", "expired")


# ------------------------------------------------------------------ live events (the hub's topics)


class CameraLiveEvent(Model):
    """A camera went live or offline (its topic; the directory's for a public camera)."""

    type: Literal["camera.online", "camera.offline"]
    camera_id: uuid.UUID
    session_id: uuid.UUID
    reason: str | None = None


class CameraChangedEvent(Model):
    type: Literal["camera.updated", "camera.deleted"]
    camera_id: uuid.UUID
    name: str
    visibility: str


class KeyEvent(Model):
    """A stream key was made or revoked (never the key itself); on the managers' own topics."""

    type: Literal["key.created", "key.revoked"]
    camera_id: uuid.UUID
    key_id: uuid.UUID
    hint: str


class GrantEvent(Model):
    type: Literal["grant.added", "grant.removed"]
    camera_id: uuid.UUID
    role: str | None


class RecordingEvent(Model):
    type: Literal["recording.started", "recording.stopped"]
    camera_id: uuid.UUID
    recording_id: uuid.UUID
    mode: str
    reason: str | None = None


class ExportProgressEvent(Model):
    """An MP4 export queued, under way (`progress` from 0 to 1), done or failed."""

    type: Literal["export.progress"]
    camera_id: uuid.UUID
    export_id: uuid.UUID
    status: str
    progress: float
    size_bytes: int | None = None
    error: str | None = None


class UnknownEvent(Model):
    """An event this version of the SDK does not know (a newer server): its type and raw data."""

    type: str
    data: dict[str, Any]


KnownEvent = Annotated[
    CameraLiveEvent | CameraChangedEvent | KeyEvent | GrantEvent | RecordingEvent | ExportProgressEvent,
    Field(discriminator="type"),
]
StreamsEvent = (
    CameraLiveEvent
    | CameraChangedEvent
    | KeyEvent
    | GrantEvent
    | RecordingEvent
    | ExportProgressEvent
    | UnknownEvent
)
_known: TypeAdapter[KnownEvent] = TypeAdapter(KnownEvent)
KNOWN_TYPES = frozenset(
    {
        "camera.online",
        "camera.offline",
        "camera.updated",
        "camera.deleted",
        "key.created",
        "key.revoked",
        "grant.added",
        "grant.removed",
        "recording.started",
        "recording.stopped",
        "export.progress",
    }
)


def parse_event(data: dict[str, Any]) -> StreamsEvent:
    """The typed event of a hub frame's `data`; UnknownEvent for a type this SDK does not know.

    Raises ValueError for a known type whose fields do not fit (a broken frame)."""
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ValueError("an event without a type")
    if kind not in KNOWN_TYPES:
        return UnknownEvent(type=kind, data=data)
    try:
        return _known.validate_python(data)
    except ValidationError as exc:
        raise ValueError(str(exc)) from None
