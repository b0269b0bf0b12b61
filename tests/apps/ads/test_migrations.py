"""ads_0001 to ads_0003 create the ads tables and take them away again, one revision at a time, on every
engine."""

from __future__ import annotations

import asyncio

from alembic import command
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from pentad.apps.ads.spec import APP
from pentad.core.config import DatabaseSettings
from pentad.core.db.engine import create_engine
from pentad.core.db.migrate import alembic_config, upgrade_async

BASE = {"ads_advertisers", "ads_sites", "ads_zones", "ads_campaigns", "ads_creatives", "ads_placements"}
DELIVERY = {"ads_impressions", "ads_clicks", "ads_stats_hourly"}
MONEY = {"ads_conversions", "ads_zone_traffic", "ads_traffic_profiles"}
TABLES = BASE | DELIVERY | MONEY


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    return {name for name in names if name.startswith("ads_")}


async def _columns(engine: AsyncEngine, table: str) -> set[str]:
    async with engine.connect() as connection:
        found = await connection.run_sync(lambda sync: inspect(sync).get_columns(table))
    return {column["name"] for column in found}


async def test_ads_migrations_upgrade_and_downgrade(scratch_url: str) -> None:
    engine = create_engine(DatabaseSettings(url=scratch_url))
    try:
        await upgrade_async(scratch_url, [APP])
        assert await _tables(engine) == TABLES

        await asyncio.to_thread(command.downgrade, alembic_config(scratch_url, [APP]), "ads_0002")
        assert await _tables(engine) == BASE | DELIVERY
        assert "conversions" not in await _columns(engine, "ads_stats_hourly")
        assert "exhausted_at" not in await _columns(engine, "ads_campaigns")

        await asyncio.to_thread(command.downgrade, alembic_config(scratch_url, [APP]), "ads_0001")
        assert await _tables(engine) == BASE

        await asyncio.to_thread(command.downgrade, alembic_config(scratch_url, [APP]), "ads@base")
        assert await _tables(engine) == set()

        await upgrade_async(scratch_url, [APP])
        assert await _tables(engine) == TABLES
    finally:
        await engine.dispose()
