"""market_0001 goes up and down cleanly on every engine: its tables appear (the three time-partitioned ones
as the engine partitions them: native partitions on PostgreSQL and MariaDB, per-period tables on SQLite),
take rows, and are gone after the downgrade (the core's stay)."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from decimal import Decimal

from alembic import command
from sqlalchemy import inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from pentad.apps.market.models import BOOK_STATS, HISTORY, ORDERS, PARTITIONED
from pentad.apps.market.spec import APP
from pentad.core.config import DatabaseSettings
from pentad.core.db import partitions
from pentad.core.db.base import Base
from pentad.core.db.engine import create_engine
from pentad.core.db.migrate import alembic_config, upgrade_async

TABLES = {table.name for table in Base.metadata.sorted_tables if table.name.startswith("market_")}


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))


def _order(captured_at: datetime, order_id: int) -> dict[str, object]:
    return {
        "captured_at": captured_at, "snapshot_id": 1, "order_id": order_id, "page": 1, "type_id": 34,
        "location_id": 60003760, "system_id": 30000142, "is_buy": False, "price": Decimal("5.01"),
        "volume_remain": 1000, "volume_total": 1000, "min_volume": 1, "range": "region",
        "issued": captured_at, "duration": 90,
    }  # fmt: skip


async def test_market_0001_up_and_down(scratch_url: str) -> None:
    before = datetime.now(UTC)
    await upgrade_async(scratch_url, [APP])
    engine = create_engine(DatabaseSettings(url=scratch_url))
    try:
        tables = await _tables(engine)
        assert tables >= TABLES
        assert "users" in tables
        dialect = engine.dialect.name
        async with AsyncSession(engine) as session, session.begin():
            # The current period and the ones ahead exist on every engine right after the migration.
            for spec in PARTITIONED:
                made = await partitions.list_partitions(session, spec)
                names = [part.name for part in made]
                first = partitions.period_start(spec.period, before)
                assert spec.child_name(first) in names, (spec.name, names)
                assert len(made) >= spec.ahead + 1
            if dialect == "sqlite":
                assert {
                    spec.child_name(partitions.period_start(spec.period, before)) for spec in PARTITIONED
                } <= (set(await session.run_sync(lambda sync: inspect(sync.connection()).get_table_names())))
            elif dialect == "postgresql":
                kind = await session.scalar(
                    text("SELECT relkind::text FROM pg_class WHERE relname = 'market_orders'")
                )
                assert kind == "p"  # a partitioned table
            else:
                count = await session.scalar(
                    text(
                        "SELECT COUNT(*) FROM information_schema.partitions WHERE table_schema = DATABASE()"
                        " AND table_name = 'market_orders' AND partition_name IS NOT NULL"
                    )
                )
                assert count is not None
                assert count >= ORDERS.ahead + 2  # the periods and the catch-all

            # Rows land in their period and read back through the API's tables.
            now = datetime.now(UTC).replace(microsecond=0)
            await partitions.insert_rows(session, ORDERS, [_order(now, 1), _order(now, 2)])
            await partitions.insert_rows(
                session,
                HISTORY,
                [{"region_id": 10000002, "type_id": 34, "date": date.today(), "average": Decimal("5.00"),
                  "highest": Decimal("5.10"), "lowest": Decimal("4.90"), "volume": 10, "order_count": 2}],
            )  # fmt: skip
            read = await partitions.tables_for(session, ORDERS, now, now.replace(year=now.year + 1))
            ids = [row for table in read for row in (await session.scalars(select(table.c.order_id))).all()]
            assert sorted(ids) == [1, 2]
            assert BOOK_STATS.period == "day"

        await asyncio.to_thread(command.downgrade, alembic_config(scratch_url, [APP]), "market@base")
        after = await _tables(engine)
        assert not {name for name in after if name.startswith("market_")}
        assert "users" in after

        await upgrade_async(scratch_url, [APP])
        assert await _tables(engine) >= TABLES
    finally:
        await engine.dispose()
