"""Time-partitioned tables (core/db/partitions.py) on every engine: the migration op makes the table and
its periods ahead, rows go to their period (and never fail for a period not made yet), reads span a
boundary, only expired periods are dropped, and everything is idempotent across restarts."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from pentad.core.apps import AppSpec
from pentad.core.config import DatabaseSettings
from pentad.core.context import AppContext
from pentad.core.db import partitions
from pentad.core.db.base import UTCDateTime
from pentad.core.db.engine import Database, create_engine
from pentad.core.db.partitions import PartitionedTable
from pentad.core.platform import Platform
from tests.conftest import make_settings

NOON = datetime(2026, 3, 1, 12, 20, tzinfo=UTC)


# ------------------------------------------------------------------------------------ periods and specs


def _readings(name: str, metadata: sa.MetaData | None = None) -> sa.Table:
    return sa.Table(
        name,
        metadata or sa.MetaData(),
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("captured_at", UTCDateTime(), nullable=False),
        sa.Column("value", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("captured_at", "id", name=f"pk_{name}"),
        sa.Index(f"ix_{name}_value", "value"),
    )


def _daily(name: str) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("captured_at", sa.Date, nullable=False),
        sa.PrimaryKeyConstraint("captured_at", "id", name=f"pk_{name}"),
    )


def test_periods_are_utc_hours_days_and_months_named_by_their_start() -> None:
    moment = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert partitions.periods("hour", moment, moment + timedelta(seconds=2)) == [
        datetime(2026, 12, 31, 23, tzinfo=UTC),
        datetime(2027, 1, 1, 0, tzinfo=UTC),
    ]
    assert partitions.next_period("month", datetime(2026, 12, 1, tzinfo=UTC)) == datetime(
        2027, 1, 1, tzinfo=UTC
    )
    assert partitions.period_start("day", moment) == datetime(2026, 12, 31, tzinfo=UTC)
    spec = PartitionedTable(_readings("readings"), "captured_at", "day")
    assert spec.child_name(datetime(2026, 3, 9, tzinfo=UTC)) == "readings_p20260309"
    assert partitions.child_parent("readings_p20260309") == "readings"
    assert partitions.child_parent("readings_pdefault") == "readings"
    assert partitions.child_parent("readings_p2026") is None
    ms = sa.Table("events", sa.MetaData(), sa.Column("ts", sa.BigInteger))
    spec_ms = PartitionedTable(ms, "ts", "month", epoch="ms")
    assert spec_ms.bound(datetime(2026, 3, 1, tzinfo=UTC)) == 1772323200000
    assert spec_ms.moment(1772323200000) == datetime(2026, 3, 1, tzinfo=UTC)


def test_a_spec_refuses_what_cannot_be_partitioned() -> None:
    table = sa.Table("odd", sa.MetaData(), sa.Column("ts", sa.BigInteger), sa.Column("name", sa.String(10)))
    with pytest.raises(ValueError, match="epoch"):
        PartitionedTable(table, "ts", "day")
    with pytest.raises(ValueError, match="datetime or a date"):
        PartitionedTable(table, "name", "day")
    with pytest.raises(ValueError, match="no column"):
        PartitionedTable(table, "missing", "day", epoch="ms")
    with pytest.raises(ValueError, match="period"):
        PartitionedTable(table, "ts", "week", epoch="ms")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="date column cannot be partitioned by hour"):
        PartitionedTable(_daily("days"), "captured_at", "hour")
    with pytest.raises(ValueError, match="unknown engine"):
        PartitionedTable(table, "ts", "day", epoch="ms", engines=("oracle",))  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ databases


@pytest.fixture(scope="module")
async def scratch_engine(scratch_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(DatabaseSettings(url=scratch_url))  # type: ignore[call-arg]
    yield engine
    await engine.dispose()


Make = Callable[..., Any]


@pytest.fixture
async def make_table(scratch_engine: AsyncEngine) -> AsyncIterator[Make]:
    """Creates a partitioned table through the migration op (as an app's migration does); drops it after."""
    made: list[PartitionedTable] = []

    async def make(
        now: datetime = NOON, shape: Callable[[str], sa.Table] | None = None, **options: Any
    ) -> PartitionedTable:
        table = (shape or _readings)(f"readings_{uuid.uuid4().hex[:6]}")
        spec = PartitionedTable(table, "captured_at", **{"period": "hour", **options})

        def create(connection: sa.Connection) -> None:
            with Operations.context(MigrationContext.configure(connection)):
                partitions.create_partitioned_table(spec, now=now)

        async with scratch_engine.begin() as connection:
            await connection.run_sync(create)
        made.append(spec)
        return spec

    yield make

    def drop(connection: sa.Connection, spec: PartitionedTable) -> None:
        with Operations.context(MigrationContext.configure(connection)):
            partitions.drop_partitioned_table(spec)

    for spec in made:
        async with scratch_engine.begin() as connection:
            await connection.run_sync(drop, spec)


def _sessions(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def _names(engine: AsyncEngine, spec: PartitionedTable) -> list[str]:
    async with _sessions(engine).begin() as session:
        return [part.name for part in await partitions.list_partitions(session, spec)]


async def _read(engine: AsyncEngine, spec: PartitionedTable, start: datetime, end: datetime) -> list[int]:
    """Ids of the rows in [start, end), read as an app does: one query over `tables_for`."""
    async with _sessions(engine).begin() as session:
        tables = await partitions.tables_for(session, spec, start, end)
        if not tables:
            return []
        parts = [
            sa.select(table.c.id).where(table.c.captured_at >= start, table.c.captured_at < end)
            for table in tables
        ]
        query = parts[0] if len(parts) == 1 else sa.union_all(*parts)
        return sorted((await session.execute(query)).scalars())


async def _in_period(engine: AsyncEngine, spec: PartitionedTable, start: datetime) -> list[int]:
    """Ids stored in the partition of the period starting at `start`, read from that partition alone."""
    async with engine.connect() as connection:
        kind = partitions.engine_name(connection.dialect.name)
        suffix = start.strftime({"hour": "%Y%m%d%H", "day": "%Y%m%d", "month": "%Y%m"}[spec.period])
        if kind == "mariadb":
            query = f"SELECT id FROM {spec.name} PARTITION (p{suffix})"  # noqa: S608 (the test's names)
        else:
            query = f"SELECT id FROM {spec.name}_p{suffix}"  # noqa: S608 (the test's names)
        return sorted((await connection.exec_driver_sql(query)).scalars())


def _row(id_: int, moment: datetime) -> dict[str, Any]:
    return {"id": id_, "captured_at": moment, "value": id_ * 10}


HOUR = timedelta(hours=1)
T12 = datetime(2026, 3, 1, 12, tzinfo=UTC)


async def test_the_migration_op_makes_the_current_period_and_those_ahead(
    scratch_engine: AsyncEngine, make_table: Make
) -> None:
    spec = await make_table(ahead=2)
    assert await _names(scratch_engine, spec) == [
        spec.child_name(T12),
        spec.child_name(T12 + HOUR),
        spec.child_name(T12 + 2 * HOUR),
    ]
    engine = partitions.engine_name(scratch_engine.dialect.name)
    async with scratch_engine.connect() as connection:
        tables = set(await connection.run_sync(lambda sync: sa.inspect(sync).get_table_names()))
    expected = {spec.name} | (
        {f"{spec.name}_p2026030112", f"{spec.name}_p2026030113", f"{spec.name}_p2026030114"}
        if engine == "sqlite"
        else {f"{spec.name}_pdefault", *(spec.child_name(T12 + n * HOUR) for n in range(3))}
        if engine == "postgresql"
        else set()
    )
    assert {name for name in tables if name.startswith(spec.name)} == expected


async def test_rows_go_to_their_period_and_reads_span_the_boundary(
    scratch_engine: AsyncEngine, make_table: Make
) -> None:
    spec = await make_table(ahead=1)
    later = T12 + 5 * HOUR  # no partition yet: the insert must still succeed
    rows = [
        _row(1, T12 + timedelta(minutes=59, seconds=59)),
        _row(2, T12 + HOUR),
        _row(3, T12 + HOUR + timedelta(minutes=30)),
        _row(4, later),
    ]
    async with _sessions(scratch_engine).begin() as session:
        assert await partitions.insert_rows(session, spec, rows) == 4
    assert await _in_period(scratch_engine, spec, T12) == [1]
    assert await _in_period(scratch_engine, spec, T12 + HOUR) == [2, 3]
    assert await _read(scratch_engine, spec, T12 + timedelta(minutes=30), T12 + 2 * HOUR) == [1, 2, 3]
    assert await _read(scratch_engine, spec, T12, later + HOUR) == [1, 2, 3, 4]
    assert await _read(scratch_engine, spec, T12 - 3 * HOUR, T12) == []

    # The cron reaches that period: the row that came early now lives in its own partition, still read.
    async with _sessions(scratch_engine).begin() as session:
        await partitions.ensure(session, spec, T12, later)
    assert await _in_period(scratch_engine, spec, later) == [4]
    assert await _read(scratch_engine, spec, later, later + HOUR) == [4]
    async with _sessions(scratch_engine).begin() as session:
        target = partitions.insert_target(spec, scratch_engine.dialect.name, later)
    assert target.name == (spec.child_name(later) if scratch_engine.dialect.name == "sqlite" else spec.name)


async def test_only_expired_periods_are_dropped(scratch_engine: AsyncEngine, make_table: Make) -> None:
    spec = await make_table(now=T12 - 2 * HOUR, ahead=3)
    rows = [_row(n, T12 - 2 * HOUR + n * HOUR + timedelta(minutes=10)) for n in range(4)]
    # Older than any partition made: PostgreSQL's default, MariaDB's oldest partition, its own SQLite table.
    rows.append(_row(9, T12 - 6 * HOUR))
    async with _sessions(scratch_engine).begin() as session:
        await partitions.insert_rows(session, spec, rows)
    cutoff = T12 + timedelta(minutes=30)  # 10:00 and 11:00 have ended; 12:00 has not
    async with _sessions(scratch_engine).begin() as session:
        dropped = await partitions.drop_expired(session, spec, cutoff)
    assert set(dropped.partitions) >= {spec.child_name(T12 - 2 * HOUR), spec.child_name(T12 - HOUR)}
    assert dropped.default_rows == (1 if scratch_engine.dialect.name == "postgresql" else 0)
    assert await _names(scratch_engine, spec) == [spec.child_name(T12), spec.child_name(T12 + HOUR)]
    assert await _read(scratch_engine, spec, T12 - 9 * HOUR, T12 + 5 * HOUR) == [2, 3]
    async with _sessions(scratch_engine).begin() as session:
        assert await partitions.drop_expired(session, spec, cutoff) == partitions.Dropped()


async def test_ensure_and_maintenance_are_idempotent_across_restarts(
    scratch_engine: AsyncEngine, make_table: Make, scratch_url: str
) -> None:
    spec = await make_table(ahead=2, retention=lambda _platform: timedelta(hours=2))
    platform = cast(AppContext, _Host(Database(scratch_engine, _sessions(scratch_engine), owns_engine=False)))
    first = await partitions.maintain(platform, [spec], T12)
    assert first == {spec.name: {"made": [], "dropped": []}}
    # Three hours later: one period more ahead, and 12:00 ended two hours ago at 14:00 < 15:00.
    later = await partitions.maintain(platform, [spec], T12 + 3 * HOUR)
    assert later[spec.name]["made"] == [spec.child_name(T12 + n * HOUR) for n in (3, 4, 5)]
    assert later[spec.name]["dropped"] == [spec.child_name(T12)]
    # A restarted process (nothing remembered) finds the work done.
    partitions._CHILD_TABLES.clear()
    restarted = await partitions.maintain(platform, [spec], T12 + 3 * HOUR)
    assert restarted == {spec.name: {"made": [], "dropped": []}}
    assert await _names(scratch_engine, spec) == [spec.child_name(T12 + n * HOUR) for n in range(1, 6)]


async def test_a_table_partitioned_on_other_engines_only_is_a_plain_table(
    scratch_engine: AsyncEngine, make_table: Make
) -> None:
    engine = partitions.engine_name(scratch_engine.dialect.name)
    others = tuple(name for name in partitions.ALL_ENGINES if name != engine)
    spec = await make_table(engines=others)
    assert await _names(scratch_engine, spec) == []
    async with _sessions(scratch_engine).begin() as session:
        await partitions.insert_rows(session, spec, [_row(1, T12), _row(2, T12 + 30 * HOUR)])
        assert await partitions.ensure(session, spec, T12, T12 + 9 * HOUR) == []
        assert await partitions.drop_expired(session, spec, T12 + 99 * HOUR) == partitions.Dropped()
        assert await partitions.tables_for(session, spec, T12, T12 + HOUR) == [spec.table]
    assert await _read(scratch_engine, spec, T12, T12 + 31 * HOUR) == [1, 2]


async def test_a_date_column_is_partitioned_by_month(scratch_engine: AsyncEngine, make_table: Make) -> None:
    spec = await make_table(shape=_daily, period="month", ahead=1, now=datetime(2026, 1, 20, tzinfo=UTC))
    days = [date(2026, 1, 31), date(2026, 2, 1), date(2026, 3, 2)]
    async with _sessions(scratch_engine).begin() as session:
        await partitions.insert_rows(
            session, spec, [{"id": n, "captured_at": day} for n, day in enumerate(days)]
        )
    assert await _in_period(scratch_engine, spec, datetime(2026, 1, 1, tzinfo=UTC)) == [0]
    assert await _in_period(scratch_engine, spec, datetime(2026, 2, 1, tzinfo=UTC)) == [1]
    async with _sessions(scratch_engine).begin() as session:
        tables = await partitions.tables_for(
            session, spec, datetime(2026, 1, 15, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)
        )
        union = sa.union_all(*(sa.select(table.c.captured_at) for table in tables))
        assert sorted((await session.execute(union)).scalars()) == days


class _Host:
    """The part of the platform `maintain` uses."""

    def __init__(self, database: Database) -> None:
        self.database = database


# ------------------------------------------------------------------------------------------- the platform


@pytest.mark.one_engine
def test_the_platform_schedules_upkeep_only_for_apps_with_partitioned_tables(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(tmp_path, database_url)
    spec = PartitionedTable(_readings("readings"), "captured_at", "day")
    with_tables = Platform.build(
        settings, [AppSpec(name="meters", title="Meters", partitioned_tables=[spec])]
    )
    (entry,) = [entry for entry in with_tables.jobs.registry.cron if entry.job == partitions.MAINTAIN_JOB]
    assert entry.next_tick(datetime(2026, 3, 1, 12, 1, tzinfo=UTC)) == datetime(
        2026, 3, 1, 12, 10, tzinfo=UTC
    )
    assert with_tables.jobs.registry.get(partitions.MAINTAIN_JOB) is not None
    without = Platform.build(settings, [AppSpec(name="plain", title="Plain")])
    assert without.jobs.registry.get(partitions.MAINTAIN_JOB) is None
    assert all(entry.job != partitions.MAINTAIN_JOB for entry in without.jobs.registry.cron)
