"""streams: cameras, stream keys, live sessions, recordings, segments, exports

Revision ID: streams_0001
Revises:
Create Date: 2026-12-05 00:55:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pentad.core.db.base

revision: str = "streams_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("streams",)
depends_on: str | Sequence[str] | None = "0002_jobs"


def upgrade() -> None:
    op.create_table(
        "streams_cameras",
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("visibility", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("profile", sa.String(length=16), nullable=False),
        sa.Column("ladder", sa.JSON(), nullable=True),
        sa.Column("recording_mode", sa.String(length=16), nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=True),
        sa.Column("retention_bytes", sa.BigInteger(), nullable=True),
        sa.Column("stored_bytes", sa.BigInteger(), nullable=False),
        sa.Column("thumbnail_interval", sa.Integer(), nullable=True),
        sa.Column("rtsp_url_enc", pentad.core.db.base.EncryptedText(length=4096), nullable=True),
        sa.Column("rtsp_transport", sa.String(length=8), nullable=False),
        sa.Column("updated_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.Column("deleted_at", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_streams_cameras")),
    )
    with op.batch_alter_table("streams_cameras", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_streams_cameras_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(
            "ix_streams_cameras_visibility_deleted_at", ["visibility", "deleted_at"], unique=False
        )

    op.create_table(
        "streams_exports",
        sa.Column("camera_id", sa.Uuid(), nullable=False),
        sa.Column("range_start_us", sa.BigInteger(), nullable=False),
        sa.Column("range_end_us", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("storage_key", sa.String(length=500), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("requested_by", sa.Uuid(), nullable=True),
        sa.Column("expires_at", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["camera_id"],
            ["streams_cameras.id"],
            name=op.f("fk_streams_exports_camera_id_streams_cameras"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_streams_exports")),
    )
    with op.batch_alter_table("streams_exports", schema=None) as batch_op:
        batch_op.create_index(
            "ix_streams_exports_camera_id_created_at", ["camera_id", "created_at"], unique=False
        )
        batch_op.create_index("ix_streams_exports_status_expires_at", ["status", "expires_at"], unique=False)

    op.create_table(
        "streams_keys",
        sa.Column("camera_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("hint", sa.String(length=8), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("revoked_at", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("last_used_at", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["camera_id"],
            ["streams_cameras.id"],
            name=op.f("fk_streams_keys_camera_id_streams_cameras"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_streams_keys")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_streams_keys_secret_hash")),
    )
    with op.batch_alter_table("streams_keys", schema=None) as batch_op:
        batch_op.create_index(
            "ix_streams_keys_camera_id_revoked_at", ["camera_id", "revoked_at"], unique=False
        )

    op.create_table(
        "streams_recordings",
        sa.Column("camera_id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("started_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.Column("ended_at", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("started_by", sa.Uuid(), nullable=True),
        sa.Column("stop_reason", sa.String(length=32), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["camera_id"],
            ["streams_cameras.id"],
            name=op.f("fk_streams_recordings_camera_id_streams_cameras"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_streams_recordings")),
    )
    with op.batch_alter_table("streams_recordings", schema=None) as batch_op:
        batch_op.create_index(
            "ix_streams_recordings_camera_id_started_at", ["camera_id", "started_at"], unique=False
        )

    op.create_table(
        "streams_sessions",
        sa.Column("camera_id", sa.Uuid(), nullable=False),
        sa.Column("key_id", sa.Uuid(), nullable=True),
        sa.Column("engine", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("node", sa.String(length=200), nullable=False),
        sa.Column("started_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.Column("ended_at", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("end_reason", sa.String(length=32), nullable=True),
        sa.Column("video", sa.JSON(), nullable=True),
        sa.Column("audio", sa.JSON(), nullable=True),
        sa.Column("bytes_in", sa.BigInteger(), nullable=False),
        sa.Column("peak_viewers", sa.JSON(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["camera_id"],
            ["streams_cameras.id"],
            name=op.f("fk_streams_sessions_camera_id_streams_cameras"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_streams_sessions")),
    )
    with op.batch_alter_table("streams_sessions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_streams_sessions_camera_id_started_at", ["camera_id", "started_at"], unique=False
        )
        batch_op.create_index("ix_streams_sessions_ended_at", ["ended_at"], unique=False)

    op.create_table(
        "streams_segments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("camera_id", sa.Uuid(), nullable=False),
        sa.Column("recording_id", sa.Uuid(), nullable=False),
        sa.Column("start_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("storage_key", sa.String(length=500), nullable=False),
        sa.Column("preview_key", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["camera_id"],
            ["streams_cameras.id"],
            name=op.f("fk_streams_segments_camera_id_streams_cameras"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["streams_recordings.id"],
            name=op.f("fk_streams_segments_recording_id_streams_recordings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_streams_segments")),
    )
    with op.batch_alter_table("streams_segments", schema=None) as batch_op:
        batch_op.create_index("ix_streams_segments_camera_id_id", ["camera_id", "id"], unique=False)
        batch_op.create_index(
            "ix_streams_segments_camera_id_start_us", ["camera_id", "start_us"], unique=False
        )


def downgrade() -> None:
    # Indexes go with their tables (MariaDB refuses to drop one a foreign key still needs).
    for table in (
        "streams_segments",
        "streams_sessions",
        "streams_recordings",
        "streams_keys",
        "streams_exports",
        "streams_cameras",
    ):
        op.drop_table(table)
