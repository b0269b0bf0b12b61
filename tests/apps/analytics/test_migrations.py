"""analytics_0001 goes up and down cleanly on every engine: its tables appear, take a row, and are gone
after the downgrade (the core's stay)."""

from __future__ import annotations

import asyncio

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from pentad.apps.analytics.spec import APP
from pentad.core.config import DatabaseSettings
from pentad.core.db.engine import create_engine
from pentad.core.db.migrate import alembic_config, upgrade_async

TABLES = {
    "analytics_sites",
    "analytics_goals",
    "analytics_events",
    "analytics_drops",
    "analytics_dirty_buckets",
}


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))


async def test_analytics_0001_up_and_down(scratch_url: str) -> None:
    await upgrade_async(scratch_url, [APP])
    engine = create_engine(DatabaseSettings(url=scratch_url))
    try:
        tables = await _tables(engine)
        assert tables >= TABLES
        assert "users" in tables
        async with engine.begin() as connection:
            await connection.exec_driver_sql(
                "INSERT INTO analytics_events (site_key, ts, visitor_id, name, hostname, path)"
                " VALUES (1, 1764806400000, -5, 'pageview', 'a.example', '/')"
            )
            await connection.exec_driver_sql(
                "INSERT INTO analytics_dirty_buckets (site_key, hour) VALUES (1, 490224)"
            )

        await asyncio.to_thread(command.downgrade, alembic_config(scratch_url, [APP]), "analytics@base")
        after = await _tables(engine)
        assert not TABLES & after
        assert "users" in after

        await upgrade_async(scratch_url, [APP])
        assert await _tables(engine) >= TABLES
    finally:
        await engine.dispose()


@pytest.mark.parametrize("before", ["analytics_0006", "analytics_0007"])
async def test_new_rollup_rows_mark_the_hours_of_raw_events_dirty(scratch_url: str, before: str) -> None:
    """Every breakdown is rolled up from analytics_0007 on, goals and properties from analytics_0008 on:
    the hours raw events cover are recomputed; a property's rollup value may be longer than 2,000
    characters."""
    config = alembic_config(scratch_url, [APP])
    await upgrade_async(scratch_url, [APP])
    await asyncio.to_thread(command.downgrade, config, f"analytics@{before}")
    engine = create_engine(DatabaseSettings(url=scratch_url))
    try:
        async with engine.begin() as connection:
            for table in ("analytics_events", "analytics_dirty_buckets", "analytics_rollup_daily"):
                await connection.execute(text(f"DELETE FROM {table}"))  # noqa: S608 (the module shares it)
            await connection.execute(
                text(
                    "INSERT INTO analytics_events (site_key, ts, visitor_id, name, hostname, path)"
                    " VALUES (:site_key, :ts, -5, 'pageview', 'a.example', '/')"
                ),
                [
                    {"site_key": site_key, "ts": ts}
                    for site_key, ts in ((1, 1764806400000), (1, 1764806460000), (1, 1764813600123), (2, 5))
                ],
            )
            await connection.exec_driver_sql(
                "INSERT INTO analytics_dirty_buckets (site_key, hour) VALUES (1, 490224)"
            )
        await upgrade_async(scratch_url, [APP])
        async with engine.connect() as connection:
            found = (
                await connection.exec_driver_sql("SELECT site_key, hour FROM analytics_dirty_buckets")
            ).all()
        assert sorted((int(site), int(hour)) for site, hour in found) == [(1, 490224), (1, 490226), (2, 0)]
        long_value = "x" * 12_000
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO analytics_rollup_daily (site_key, dim, bucket, value_hash, value, visitors,"
                    " visits, pageviews, events, bounces, duration_ms, revenue_micros, visitors_sketch,"
                    " imported) VALUES (1, 19, 5, 7, :value, 1, 0, 0, 1, 0, 0, 0, '', false)"
                ),
                {"value": long_value},
            )
        async with engine.connect() as connection:
            stored = await connection.scalar(text("SELECT value FROM analytics_rollup_daily WHERE dim = 19"))
        assert stored == long_value
    finally:
        await engine.dispose()
