"""streams_0001 goes up and down cleanly on every engine: its tables appear, take rows, and are gone after
the downgrade (the core's stay)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from alembic import command
from sqlalchemy import insert, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from pentad.apps.streams.models import StreamsCamera, StreamsRecording, StreamsSegment
from pentad.apps.streams.spec import APP
from pentad.core.config import DatabaseSettings
from pentad.core.db.engine import create_engine
from pentad.core.db.migrate import alembic_config, upgrade_async

TABLES = {
    "streams_cameras",
    "streams_keys",
    "streams_sessions",
    "streams_recordings",
    "streams_segments",
    "streams_exports",
}
CAMERA = uuid.UUID("0b0e4c3a-6a3f-4d59-9c39-3a8c4e2f7a11")
RECORDING = uuid.UUID("5d7f2c1e-0a9b-4c8d-8e7f-6a5b4c3d2e1f")


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))


async def test_streams_0001_up_and_down(scratch_url: str) -> None:
    await upgrade_async(scratch_url, [APP])
    engine = create_engine(DatabaseSettings(url=scratch_url))
    try:
        tables = await _tables(engine)
        assert tables >= TABLES
        assert "users" in tables
        async with engine.begin() as connection:
            now = datetime(2026, 12, 5, tzinfo=UTC)
            await connection.execute(
                insert(StreamsCamera.__table__).values(
                    id=CAMERA, owner_id=CAMERA, name="cam", visibility="public", source="rtmp",
                    profile="passthrough", recording_mode="off", stored_bytes=0, rtsp_transport="tcp",
                    created_at=now, updated_at=now,
                )
            )  # fmt: skip
            await connection.execute(
                insert(StreamsRecording.__table__).values(
                    id=RECORDING, camera_id=CAMERA, mode="continuous", started_at=now
                )
            )
            await connection.execute(
                insert(StreamsSegment.__table__).values(
                    camera_id=CAMERA, recording_id=RECORDING, start_at=now, start_us=1_764_892_800_000_000,
                    duration_ms=10_000, size_bytes=1_250_000, storage_key="streams/rec/a.ts",
                )
            )  # fmt: skip

        await asyncio.to_thread(command.downgrade, alembic_config(scratch_url, [APP]), "streams@base")
        after = await _tables(engine)
        assert not TABLES & after
        assert "users" in after

        await upgrade_async(scratch_url, [APP])
        assert await _tables(engine) >= TABLES
    finally:
        await engine.dispose()


async def _camera_columns(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        columns = await connection.run_sync(lambda sync: inspect(sync).get_columns("streams_cameras"))
    return {column["name"] for column in columns}


async def test_streams_0002_adds_the_private_approval_defaulting_to_false(scratch_url: str) -> None:
    await upgrade_async(scratch_url, [APP])
    engine = create_engine(DatabaseSettings(url=scratch_url))
    try:
        assert "rtsp_private_allowed" in await _camera_columns(engine)
        async with engine.begin() as connection:
            now = datetime(2026, 12, 5, tzinfo=UTC)
            await connection.execute(
                text(
                    "INSERT INTO streams_cameras (id, owner_id, name, visibility, source, profile,"
                    " recording_mode, stored_bytes, rtsp_transport, created_at, updated_at) VALUES"
                    " (:id, :id, 'cam', 'public', 'rtsp', 'passthrough', 'off', 0, 'tcp', :now, :now)"
                ),
                {"id": CAMERA.hex if scratch_url.startswith("sqlite") else str(CAMERA), "now": now},
            )
            approved = (
                await connection.execute(text("SELECT rtsp_private_allowed FROM streams_cameras"))
            ).all()
        assert [bool(row[0]) for row in approved] == [False]  # rows of before the column are not approved

        await asyncio.to_thread(command.downgrade, alembic_config(scratch_url, [APP]), "streams_0001")
        assert "rtsp_private_allowed" not in await _camera_columns(engine)
        await upgrade_async(scratch_url, [APP])
        assert "rtsp_private_allowed" in await _camera_columns(engine)
    finally:
        await engine.dispose()
