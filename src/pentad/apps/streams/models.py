"""The streams app's tables (docs/plans/streams.md §3): cameras and their stream keys, live sessions,
recordings with their segments, and MP4 exports. The recording and export tables are created now so later
sessions only add columns; this session's code writes cameras, keys and sessions.

Ownership: the account that created a camera (`owner_id`) holds its `owner` role; others hold roles on it
through core grants (resource type `streams.camera`). A camera's RTSP URL, credentials included, is
encrypted at rest (`rtsp_url_enc`, bound to the row); a stream key is stored only as the SHA-256 of its
secret.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, false
from sqlalchemy.orm import Mapped, mapped_column

from pentad.core.db.base import Base, EncryptedText, IdMixin, TimestampMixin, utcnow

VISIBILITIES = ("public", "unlisted", "private")
SOURCES = ("rtmp", "rtsp", "whip")
PROFILES = ("passthrough", "ladder")
RECORDING_MODES = ("off", "continuous", "on_demand")
RTSP_TRANSPORTS = ("tcp", "udp")
EXPORT_STATUSES = ("queued", "running", "done", "failed", "expired")


class StreamsCamera(IdMixin, TimestampMixin, Base):
    """A camera or encoder: who owns it, who may watch it, where its media comes from, how it is kept."""

    __tablename__ = "streams_cameras"
    __table_args__ = (Index("ix_streams_cameras_visibility_deleted_at", "visibility", "deleted_at"),)

    owner_id: Mapped[uuid.UUID] = mapped_column(index=True)
    name: Mapped[str] = mapped_column(String(200))
    visibility: Mapped[str] = mapped_column(String(16), default="private")
    source: Mapped[str] = mapped_column(String(16), default="rtmp")
    profile: Mapped[str] = mapped_column(String(16), default="passthrough")
    ladder: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    """The camera's own rungs ([[height, kbit/s], …]); None: the LADDER setting."""
    recording_mode: Mapped[str] = mapped_column(String(16), default="off")
    retention_days: Mapped[int | None] = mapped_column(Integer, default=None)
    retention_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    stored_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    """Running total of the recorded segments' sizes (size retention without SUM over every segment)."""
    thumbnail_interval: Mapped[int | None] = mapped_column(Integer, default=None)
    rtsp_url_enc: Mapped[str | None] = mapped_column(EncryptedText, default=None)
    rtsp_transport: Mapped[str] = mapped_column(String(8), default="tcp")
    rtsp_private_allowed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """The RTSP URL was saved by a streams admin while RTSP__ALLOW_PRIVATE allowed private addresses: the
    puller may connect to one (checked again when it connects, streams_0002)."""
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)


class StreamsKey(IdMixin, TimestampMixin, Base):
    """A stream key (`psk_…`) a publisher presents: only the SHA-256 of it is kept, and its last 4 chars."""

    __tablename__ = "streams_keys"
    __table_args__ = (Index("ix_streams_keys_camera_id_revoked_at", "camera_id", "revoked_at"),)

    camera_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("streams_cameras.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100), default="")
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(8))
    created_by: Mapped[uuid.UUID | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)


class StreamsSession(IdMixin, Base):
    """One live stream of a camera, from its first accepted publish to its end."""

    __tablename__ = "streams_sessions"
    __table_args__ = (
        Index("ix_streams_sessions_camera_id_started_at", "camera_id", "started_at"),
        Index("ix_streams_sessions_ended_at", "ended_at"),
    )

    camera_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("streams_cameras.id", ondelete="CASCADE"))
    key_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    engine: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16), default="rtmp")
    node: Mapped[str] = mapped_column(String(200), default="")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    end_reason: Mapped[str | None] = mapped_column(String(32), default=None)
    video: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    audio: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    bytes_in: Mapped[int] = mapped_column(BigInteger, default=0)
    peak_viewers: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class StreamsRecording(IdMixin, Base):
    """A stretch of recording of a camera (continuous, or started and stopped on demand)."""

    __tablename__ = "streams_recordings"
    __table_args__ = (Index("ix_streams_recordings_camera_id_started_at", "camera_id", "started_at"),)

    camera_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("streams_cameras.id", ondelete="CASCADE"))
    session_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    mode: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    started_by: Mapped[uuid.UUID | None] = mapped_column(default=None)
    stop_reason: Mapped[str | None] = mapped_column(String(32), default=None)


class StreamsSegment(Base):
    """One recorded segment in core storage; `start_us` (µs since the epoch) orders them exactly."""

    __tablename__ = "streams_segments"
    __table_args__ = (
        Index("ix_streams_segments_camera_id_start_us", "camera_id", "start_us"),
        Index("ix_streams_segments_camera_id_id", "camera_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    camera_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("streams_cameras.id", ondelete="CASCADE"))
    recording_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("streams_recordings.id", ondelete="CASCADE"))
    start_at: Mapped[datetime]
    start_us: Mapped[int] = mapped_column(BigInteger)
    duration_ms: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    storage_key: Mapped[str] = mapped_column(String(500))
    preview_key: Mapped[str | None] = mapped_column(String(500), default=None)


class StreamsExport(IdMixin, TimestampMixin, Base):
    """An MP4 export of a recorded range, made by a job."""

    __tablename__ = "streams_exports"
    __table_args__ = (
        Index("ix_streams_exports_camera_id_created_at", "camera_id", "created_at"),
        Index("ix_streams_exports_status_expires_at", "status", "expires_at"),
    )

    camera_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("streams_cameras.id", ondelete="CASCADE"))
    range_start_us: Mapped[int] = mapped_column(BigInteger)
    range_end_us: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    job_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    storage_key: Mapped[str | None] = mapped_column(String(500), default=None)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    requested_by: Mapped[uuid.UUID | None] = mapped_column(default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
