"""analytics_0002 on every engine: events stored before it get their hours marked dirty (the first rollup
run covers them), the cursor row exists, and the downgrade removes the rollup tables and the sites'
retention column."""

from __future__ import annotations

import asyncio

from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from pentad.apps.analytics.spec import APP
from pentad.core.config import DatabaseSettings
from pentad.core.db.engine import create_engine
from pentad.core.db.migrate import alembic_config, upgrade_async

ROLLUP_TABLES = {
    "analytics_rollup_hourly",
    "analytics_rollup_daily",
    "analytics_rollup_monthly",
    "analytics_sessions",
    "analytics_rollup_cursor",
}


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))


async def _site_columns(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: {column["name"] for column in inspect(sync).get_columns("analytics_sites")}
        )


async def test_analytics_0002_marks_old_events_dirty_and_goes_down(scratch_url: str) -> None:
    config = alembic_config(scratch_url, [APP])
    await upgrade_async(scratch_url, [APP])
    await asyncio.to_thread(command.downgrade, config, "analytics_0001")
    engine = create_engine(DatabaseSettings(url=scratch_url))
    try:
        assert not ROLLUP_TABLES & await _tables(engine)
        assert "retention" not in await _site_columns(engine)
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO analytics_events (site_key, ts, visitor_id, name, hostname, path)"
                    " VALUES (1, :ts, -5, 'pageview', 'a.example', '/')"
                ),
                [{"ts": ts} for ts in (1764806400000, 1764806400000 + 1000, 1764810000000 + 5)],  # two hours
            )
            await connection.exec_driver_sql(
                "INSERT INTO analytics_dirty_buckets (site_key, hour) VALUES (1, 490224)"
            )

        await asyncio.to_thread(command.upgrade, config, "analytics@head")
        assert await _tables(engine) >= ROLLUP_TABLES
        assert "retention" in await _site_columns(engine)
        async with engine.connect() as connection:
            dirty = (
                await connection.exec_driver_sql("SELECT site_key, hour FROM analytics_dirty_buckets")
            ).all()
            cursor = (await connection.exec_driver_sql("SELECT id, epoch FROM analytics_rollup_cursor")).all()
        assert sorted(tuple(map(int, row)) for row in dirty) == [(1, 490224), (1, 490225)]
        assert [tuple(map(int, row)) for row in cursor] == [(1, 0)]
    finally:
        await engine.dispose()
