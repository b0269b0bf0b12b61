"""Request and response bodies of the streams API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from pentad.apps.streams.events import CameraHealth

Visibility = Literal["public", "unlisted", "private"]
Source = Literal["rtmp", "rtsp", "whip"]
Profile = Literal["passthrough", "ladder"]
RecordingMode = Literal["off", "continuous", "on_demand"]
RtspTransport = Literal["tcp", "udp"]
CameraRole = Literal["viewer", "operator", "owner"]

RTSP_SCHEMES = ("rtsp", "rtsps")
MAX_RETENTION_BYTES = 2**62
"""A camera's recording budget fits the database's BIGINT with room to add to it (4 EiB)."""


def check_rtsp_url(value: str) -> str:
    """An rtsp:// or rtsps:// URL with a host; credentials in it are allowed (they are encrypted at rest)."""
    text = value.strip()
    if any(ord(char) < 0x21 or ord(char) == 0x7F for char in text):
        raise ValueError("the URL may not contain spaces or control characters")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError("not a valid URL") from None
    if parts.scheme.lower() not in RTSP_SCHEMES:
        raise ValueError("use an rtsp:// or rtsps:// URL")
    if not parts.hostname:
        raise ValueError("the URL names no host")
    if port == 0:
        raise ValueError("port 0 is not a port")
    return text


def _name(value: str) -> str:
    text = value.strip()
    if not text:
        raise ValueError("the name may not be blank")
    return text


class CameraCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    visibility: Visibility = Field(
        "private",
        description="public: listed and playable by anyone; unlisted: playable by anyone with "
        "the id, not listed; private: only with a role on the camera or a playback token.",
    )
    source: Source = Field("rtmp", description="How media arrives: RTMP publish (a key), RTSP pull, WHIP.")
    profile: Profile = "passthrough"
    recording_mode: RecordingMode = "off"
    retention_days: int | None = Field(
        None, ge=1, le=36_500, description="None: the RECORDING__RETENTION_DAYS default."
    )
    retention_bytes: int | None = Field(
        None, ge=1, le=MAX_RETENTION_BYTES, description="None: the RECORDING__RETENTION_BYTES default."
    )
    thumbnail_interval: int | None = Field(None, ge=1, le=3600, description="None: THUMBNAIL_INTERVAL.")
    rtsp_url: str | None = Field(
        None, max_length=2000, description="For source `rtsp`: the camera's URL, user:password included."
    )
    rtsp_transport: RtspTransport = "tcp"

    @field_validator("name")
    @classmethod
    def _named(cls, value: str) -> str:
        return _name(value)

    @field_validator("rtsp_url")
    @classmethod
    def _rtsp(cls, value: str | None) -> str | None:
        return None if value is None else check_rtsp_url(value)


class CameraUpdate(BaseModel):
    """Only the fields sent change; `null` clears the optional ones (back to the defaults)."""

    name: str | None = Field(None, min_length=1, max_length=200)
    visibility: Visibility | None = None
    source: Source | None = None
    profile: Profile | None = None
    recording_mode: RecordingMode | None = None
    retention_days: int | None = Field(None, ge=1, le=36_500)
    retention_bytes: int | None = Field(None, ge=1, le=MAX_RETENTION_BYTES)
    thumbnail_interval: int | None = Field(None, ge=1, le=3600)
    rtsp_url: str | None = Field(None, max_length=2000)
    rtsp_transport: RtspTransport | None = None

    @field_validator("name")
    @classmethod
    def _named(cls, value: str | None) -> str | None:
        return None if value is None else _name(value)

    @field_validator("rtsp_url")
    @classmethod
    def _rtsp(cls, value: str | None) -> str | None:
        return None if value is None else check_rtsp_url(value)


class CameraRead(BaseModel):
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
    rtsp_url: str | None = Field(description="The RTSP URL with its password masked (`****`); managers only.")
    rtsp_transport: RtspTransport
    live: bool = Field(description="A publisher or pull is streaming now.")
    role: CameraRole | None = Field(description="Your role on the camera (admins: owner).")
    can_operate: bool
    can_manage: bool
    created_at: datetime
    updated_at: datetime


class DirectoryEntry(BaseModel):
    """A public camera, as the grid lists it."""

    id: uuid.UUID
    name: str
    live: bool


class KeyCreate(BaseModel):
    name: str = Field("", max_length=100, description="What the key is for (e.g. the encoder's name).")


class KeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    camera_id: uuid.UUID
    name: str
    hint: str = Field(description="The key's last 4 characters, to tell keys apart.")
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class KeyCreated(KeyRead):
    key: str = Field(description="The stream key (`psk_…`), shown this once: only its hash is stored.")
    rtmp_url: str = Field(description="Where to publish: the server URL; the key is the stream name.")


class GrantCreate(BaseModel):
    email: EmailStr = Field(description="The account to give the role to.")
    role: CameraRole


class GrantRead(BaseModel):
    user_id: uuid.UUID
    role: CameraRole


class PlaybackUrls(BaseModel):
    hls: str = Field(description="The live playlist, the token in its query.")
    whep: str = Field(description="The WHEP endpoint (send the token as a bearer token).")


class PlaybackToken(BaseModel):
    token: str = Field(
        description="`psp_…`: opens this camera's media and live events only, until it expires."
    )
    expires_at: datetime
    urls: PlaybackUrls


# ------------------------------------------------------------------ recording, timeline, exports


class RecordingRead(BaseModel):
    id: uuid.UUID
    camera_id: uuid.UUID
    session_id: uuid.UUID | None = Field(description="The live session a continuous recording belongs to.")
    mode: Literal["continuous", "on_demand"]
    started_at: datetime
    ended_at: datetime | None = Field(description="None while it records.")
    stop_reason: str | None


class TimelineSpan(BaseModel):
    """A stretch of time with recorded media and no gap longer than a second."""

    start: datetime
    end: datetime
    segments: int
    bytes: int


class Timeline(BaseModel):
    camera_id: uuid.UUID
    start: datetime
    end: datetime
    recordings: list[RecordingRead]
    spans: list[TimelineSpan]
    stored_bytes: int = Field(description="Bytes the camera's recordings hold now, all time.")


class SegmentRead(BaseModel):
    id: int
    recording_id: uuid.UUID
    start: datetime
    duration_ms: int
    size_bytes: int


class ExportCreate(BaseModel):
    start: datetime = Field(description="Start of the range (the export starts at the segment holding it).")
    end: datetime = Field(description="End of the range (at most EXPORT__MAX_SECONDS after the start).")


class ExportRead(BaseModel):
    id: uuid.UUID
    camera_id: uuid.UUID
    start: datetime
    end: datetime
    status: Literal["queued", "running", "done", "failed", "expired"]
    job_id: uuid.UUID | None
    size_bytes: int | None
    created_at: datetime
    expires_at: datetime | None = Field(description="When a finished export's file is deleted.")
    download_url: str | None = Field(description="The MP4, once done (same credentials as this API).")


class HealthRead(BaseModel):
    """GET /api/streams/cameras/{id}/health."""

    live: bool
    """The camera has a live stream now."""
    health: CameraHealth | None
    """Its latest figures (the `camera.health` event); None while offline and in a stream's first seconds."""
