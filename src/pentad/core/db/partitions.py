"""Time-partitioned tables: one table per hour, day or month of a time column, made ahead and dropped
whole when expired (`AppSpec.partitioned_tables`).

An app declares `PartitionedTable(table, column, period, ahead, retention, engines)`; `engines` names the
databases on which the table is partitioned (elsewhere it is a plain table and the app prunes its rows):

- PostgreSQL: the table is `PARTITION BY RANGE (column)`; each period is a child table
  `<table>_pYYYYMM[DD[HH]]`, and a DEFAULT partition `<table>_pdefault` takes rows of periods that have no
  child (an insert never fails). `ensure` moves such rows out of the default into the child it creates;
  `drop_expired` drops whole children and deletes the default's rows of expired periods.
- MariaDB/MySQL: native `PARTITION BY RANGE COLUMNS (column)`, partitions `pYYYYMM[DD[HH]]` and a
  catch-all `pmax VALUES LESS THAN (MAXVALUE)` (an insert never fails); `ensure` splits `pmax` with
  REORGANIZE PARTITION, `drop_expired` uses DROP PARTITION. MariaDB wants the column in every unique key
  (the primary key too) and no foreign keys on the table. Its ALTERs commit implicitly: run them in a
  transaction of their own (the cron job does). Each range partition holds everything below its bound, so
  the oldest also holds rows older than its period, and goes when its period expires.
- SQLite: per-period tables `<table>_pYYYYMM[DD[HH]]` of the table's shape; the table itself stays an
  empty template. `insert_rows` creates the period's table before inserting into it, `tables_for` lists
  the tables a time range needs (read them with UNION ALL).

The core cron job `core.partitions_maintain` (every 10 minutes) makes the current period and `ahead` more
for every enabled app's tables, and drops those older than `retention` (when the spec has one). A
migration creates such a table with `create_partitioned_table(spec)`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, Protocol

import structlog
from sqlalchemy import (
    Connection,
    Date,
    DateTime,
    Integer,
    MetaData,
    Table,
    TableClause,
    column,
    delete,
    insert,
    literal,
    select,
    table,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import quoted_name

from pentad.core.context import AppContext, JobContext
from pentad.core.jobs.registry import CronSpec, JobSpec

logger = structlog.get_logger(__name__)

Period = Literal["hour", "day", "month"]
Engine = Literal["postgresql", "mariadb", "sqlite"]
ALL_ENGINES: tuple[Engine, ...] = ("postgresql", "mariadb", "sqlite")
MAINTAIN_JOB = "core.partitions_maintain"
MAINTAIN_CRON = CronSpec(MAINTAIN_JOB, "*/10 * * * *")
DEFAULT_SUFFIX = "default"
MARIADB_CATCH_ALL = "pmax"
_SUFFIX_FORMAT = {"month": "%Y%m", "day": "%Y%m%d", "hour": "%Y%m%d%H"}
_SUFFIX_DIGITS = {"month": 6, "day": 8, "hour": 10}

Retention = Callable[[AppContext], timedelta | None]
"""How long a table keeps its periods, read from the running platform (e.g. the app's settings); None:
forever."""


@dataclass(frozen=True)
class PartitionedTable:
    """A table partitioned by time.

    table: the SQLAlchemy table (the model's `__table__`). column: its time column, a datetime, a date or
    an integer of unix time (`epoch="ms"` or `"s"`). period: one partition per hour, day or month (UTC).
    ahead: periods made after the current one. retention: drop periods that ended this long ago (None:
    the app drops them itself with `drop_expired`). engines: the databases it is partitioned on.
    """

    table: Table
    column: str
    period: Period
    ahead: int = 2
    retention: Retention | None = None
    engines: Sequence[Engine] = ALL_ENGINES
    epoch: Literal["ms", "s"] | None = None
    _kind: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.period not in _SUFFIX_FORMAT:
            raise ValueError(f"period must be hour, day or month, not {self.period!r}")
        if self.ahead < 0:
            raise ValueError("ahead must be 0 or more")
        unknown = set(self.engines) - set(ALL_ENGINES)
        if unknown:
            raise ValueError(f"unknown engine(s) {sorted(unknown)}; engines are {', '.join(ALL_ENGINES)}")
        column = self.table.c.get(self.column)
        if column is None:
            raise ValueError(f"{self.table.name} has no column {self.column!r}")
        if self.epoch is not None:
            if not isinstance(column.type, Integer):
                raise ValueError(f"epoch={self.epoch!r} needs an integer column, {self.column} is not")
            kind = f"epoch_{self.epoch}"
        elif isinstance(column.type, DateTime) or isinstance(
            getattr(column.type, "impl_instance", None), DateTime
        ):
            kind = "datetime"
        elif isinstance(column.type, Date):
            kind = "date"
        else:
            raise ValueError(
                f"{self.table.name}.{self.column} must be a datetime or a date, or an integer with epoch="
            )
        if self.period == "hour" and kind == "date":
            raise ValueError("a date column cannot be partitioned by hour")
        object.__setattr__(self, "_kind", kind)

    @property
    def name(self) -> str:
        return self.table.name

    def partitioned_on(self, engine: str) -> bool:
        return engine_name(engine) in self.engines

    def child_name(self, start: datetime) -> str:
        """The per-period table (PostgreSQL, SQLite) of the period starting at `start`."""
        return f"{self.name}_p{start.strftime(_SUFFIX_FORMAT[self.period])}"

    def bound(self, moment: datetime) -> Any:
        """The column's value at `moment` (a UTC datetime)."""
        if self._kind == "epoch_ms":
            return int(moment.timestamp() * 1000)
        if self._kind == "epoch_s":
            return int(moment.timestamp())
        if self._kind == "date":
            return moment.date()
        return moment

    def moment(self, value: Any) -> datetime:
        """The UTC instant of a column value."""
        if self._kind == "epoch_ms":
            return datetime.fromtimestamp(int(value) / 1000, UTC)
        if self._kind == "epoch_s":
            return datetime.fromtimestamp(int(value), UTC)
        if isinstance(value, datetime):
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if isinstance(value, date):
            return datetime(value.year, value.month, value.day, tzinfo=UTC)
        raise TypeError(f"{self.name}.{self.column} got {value!r}")

    def literal(self, moment: datetime, engine: str) -> str:
        """The bound at `moment` as SQL text, for DDL (which takes no parameters)."""
        value = self.bound(moment)
        if isinstance(value, int):
            return str(value)
        if isinstance(value, datetime):
            zone = "+00" if engine_name(engine) == "postgresql" else ""
            return f"'{value.strftime('%Y-%m-%d %H:%M:%S')}{zone}'"
        return f"'{value.isoformat()}'"


@dataclass(frozen=True)
class Partition:
    """One period's partition: `name` is `<table>_p<period>`, the child table on PostgreSQL and SQLite (on
    MariaDB the partition is `p<period>` of the table itself)."""

    name: str
    start: datetime
    end: datetime


def engine_name(dialect: str) -> Engine:
    if dialect in ("mysql", "mariadb"):
        return "mariadb"
    if dialect in ("postgresql", "sqlite"):
        return dialect  # type: ignore[return-value]
    raise ValueError(f"partitioned tables do not support {dialect}")


def period_start(period: Period, moment: datetime) -> datetime:
    """The first instant of the period `moment` is in (UTC)."""
    moment = moment.astimezone(UTC)
    if period == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    if period == "day":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_period(period: Period, start: datetime) -> datetime:
    if period == "hour":
        return start + timedelta(hours=1)
    if period == "day":
        return start + timedelta(days=1)
    year, month = divmod(start.year * 12 + start.month, 12)
    return start.replace(year=year, month=month + 1)


def periods(period: Period, first: datetime, last: datetime) -> list[datetime]:
    """Starts of the periods from the one holding `first` to the one holding `last`, both included."""
    start, end = period_start(period, first), period_start(period, last)
    starts: list[datetime] = []
    while start <= end:
        starts.append(start)
        start = next_period(period, start)
    return starts


def _parse_suffix(spec: PartitionedTable, suffix: str) -> datetime | None:
    if len(suffix) != _SUFFIX_DIGITS[spec.period] or not suffix.isdigit():
        return None
    try:
        return datetime.strptime(suffix, _SUFFIX_FORMAT[spec.period]).replace(tzinfo=UTC)
    except ValueError:
        return None


def _partition(spec: PartitionedTable, name: str, suffix: str) -> Partition | None:
    start = _parse_suffix(spec, suffix)
    return None if start is None else Partition(name, start, next_period(spec.period, start))


def child_parent(name: str) -> str | None:
    """The partitioned table a per-period table (or PostgreSQL's default partition) belongs to, by its
    name; None for any other table. For tools that compare the schema with the models."""
    match = re.fullmatch(rf"(.+)_p(\d{{6}}|\d{{8}}|\d{{10}}|{DEFAULT_SUFFIX})", name)
    return match.group(1) if match else None


# --- listing -------------------------------------------------------------------------------------------


def list_partitions_sync(connection: Connection, spec: PartitionedTable) -> list[Partition]:
    """The table's period partitions, oldest first (PostgreSQL's default and MariaDB's catch-all are not
    periods and are not listed). Empty where the table is not partitioned."""
    engine = engine_name(connection.dialect.name)
    if not spec.partitioned_on(engine):
        return []
    found: list[Partition] = []
    if engine == "postgresql":
        rows = connection.execute(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = to_regclass(:parent)"
            ),
            {"parent": spec.name},
        ).scalars()
        prefix = f"{spec.name}_p"
        for name in rows:
            if name.startswith(prefix) and (part := _partition(spec, name, name[len(prefix) :])):
                found.append(part)
    elif engine == "mariadb":
        rows = connection.execute(
            text(
                "SELECT partition_name FROM information_schema.partitions WHERE table_schema = DATABASE()"
                " AND table_name = :table AND partition_name IS NOT NULL"
            ),
            {"table": spec.name},
        ).scalars()
        for name in rows:
            if name.startswith("p") and (part := _partition(spec, name, name[1:])):
                found.append(Partition(spec.child_name(part.start), part.start, part.end))
    else:
        prefix = f"{spec.name}_p"
        rows = connection.execute(
            text("SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, :n) = :prefix"),
            {"n": len(prefix), "prefix": prefix},
        ).scalars()
        for name in rows:
            if part := _partition(spec, name, name[len(prefix) :]):
                found.append(part)
    return sorted(found, key=lambda part: part.start)


async def list_partitions(session: AsyncSession, spec: PartitionedTable) -> list[Partition]:
    connection = await session.connection()
    return await connection.run_sync(lambda sync: list_partitions_sync(sync, spec))


# --- making and dropping periods -------------------------------------------------------------------------


def _quote(connection: Connection, name: str) -> str:
    return connection.dialect.identifier_preparer.quote(name)


def _lock(connection: Connection, spec: PartitionedTable) -> None:
    """Serialise maintainers of one table (two workers' cron runs): PostgreSQL's transaction-scoped
    advisory lock; MariaDB's DDL takes its own metadata lock and REORGANIZE of a missing partition fails
    cleanly; SQLite has one writer."""
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"partitions:{spec.name}"}
        )


def _child_table(spec: PartitionedTable, name: str) -> Table:
    """The SQLite per-period table: the template's columns, keys and indexes under the period's name
    (index names are per database there, so they take the period's name too)."""
    table = spec.table.to_metadata(MetaData(), name=name)
    for index in table.indexes:
        original = str(index.name)
        renamed = original.replace(spec.name, name, 1) if spec.name in original else f"{name}_{original}"
        index.name = quoted_name(renamed, None)
    return table


_CHILD_TABLES: dict[str, Table] = {}


def child_table(spec: PartitionedTable, name: str) -> Table:
    table = _CHILD_TABLES.get(name)
    if table is None or table.columns.keys() != spec.table.columns.keys():
        table = _CHILD_TABLES[name] = _child_table(spec, name)
    return table


def _exists(connection: Connection, name: str) -> bool:
    """Whether a PostgreSQL table exists (checked before DDL, which would lock its parent even to skip)."""
    return connection.execute(text("SELECT to_regclass(:name)"), {"name": name}).scalar() is not None


def _plain(spec: PartitionedTable, name: str) -> TableClause:
    """A lightweight table of `spec`'s columns under another name (a child, the default partition)."""
    return table(name, *(column(key) for key in spec.table.columns.keys()))  # noqa: SIM118


def _ensure_postgresql(
    connection: Connection, spec: PartitionedTable, starts: Iterable[datetime]
) -> list[str]:
    parent = _quote(connection, spec.name)
    default = _quote(connection, f"{spec.name}_p{DEFAULT_SUFFIX}")
    if not _exists(connection, f"{spec.name}_p{DEFAULT_SUFFIX}"):
        connection.execute(text(f"CREATE TABLE {default} PARTITION OF {parent} DEFAULT"))
    have = {part.start for part in list_partitions_sync(connection, spec)}
    made: list[str] = []
    for start in starts:
        if start in have:
            continue
        end = next_period(spec.period, start)
        child = _quote(connection, spec.child_name(start))
        low, high = spec.literal(start, "postgresql"), spec.literal(end, "postgresql")
        create = text(f"CREATE TABLE {child} PARTITION OF {parent} FOR VALUES FROM ({low}) TO ({high})")
        source = _plain(spec, f"{spec.name}_p{DEFAULT_SUFFIX}")
        within = (source.c[spec.column] >= spec.bound(start), source.c[spec.column] < spec.bound(end))
        if connection.execute(select(literal(1)).select_from(source).where(*within).limit(1)).first() is None:
            connection.execute(create)
        else:
            # Rows of this period arrived before its child existed: move them out of the default, which
            # PostgreSQL checks against the new child's range.
            connection.execute(text(f"ALTER TABLE {parent} DETACH PARTITION {default}"))
            connection.execute(create)
            target = _plain(spec, spec.child_name(start))
            connection.execute(
                insert(target).from_select(list(source.c.keys()), select(*source.c).where(*within))
            )
            connection.execute(delete(source).where(*within))
            connection.execute(text(f"ALTER TABLE {parent} ATTACH PARTITION {default} DEFAULT"))
        made.append(spec.child_name(start))
    return made


def _mariadb_partitioning(connection: Connection, spec: PartitionedTable) -> bool:
    row = connection.execute(
        text(
            "SELECT COUNT(*) FROM information_schema.partitions WHERE table_schema = DATABASE()"
            " AND table_name = :table AND partition_name IS NOT NULL"
        ),
        {"table": spec.name},
    ).scalar_one()
    return bool(row)


def _mariadb_name(spec: PartitionedTable, start: datetime) -> str:
    return f"p{start.strftime(_SUFFIX_FORMAT[spec.period])}"


def _mariadb_definitions(spec: PartitionedTable, starts: Iterable[datetime]) -> list[str]:
    return [
        f"PARTITION {_mariadb_name(spec, start)} VALUES LESS THAN "
        f"({spec.literal(next_period(spec.period, start), 'mariadb')})"
        for start in starts
    ]


def _ensure_mariadb(connection: Connection, spec: PartitionedTable, starts: Sequence[datetime]) -> list[str]:
    quoted = _quote(connection, spec.name)
    existing = list_partitions_sync(connection, spec)
    # Range partitions only grow at the top: periods below the oldest one already live in it.
    last_end = existing[-1].end if existing else None
    new = [start for start in starts if last_end is None or start >= last_end]
    if not new:
        return []
    definitions = ", ".join(
        [*_mariadb_definitions(spec, new), f"PARTITION {MARIADB_CATCH_ALL} VALUES LESS THAN (MAXVALUE)"]
    )
    if _mariadb_partitioning(connection, spec):
        change = f"REORGANIZE PARTITION {MARIADB_CATCH_ALL} INTO ({definitions})"
    else:
        change = f"PARTITION BY RANGE COLUMNS ({_quote(connection, spec.column)}) ({definitions})"
    connection.execute(text(f"ALTER TABLE {quoted} {change}"))
    return [spec.child_name(start) for start in new]


def _ensure_sqlite(connection: Connection, spec: PartitionedTable, starts: Iterable[datetime]) -> list[str]:
    have = {part.start for part in list_partitions_sync(connection, spec)}
    made: list[str] = []
    for start in starts:
        if start in have:
            continue
        child_table(spec, spec.child_name(start)).create(connection, checkfirst=True)
        made.append(spec.child_name(start))
    return made


def ensure_sync(connection: Connection, spec: PartitionedTable, first: datetime, last: datetime) -> list[str]:
    """Make the partitions of every period from the one holding `first` to the one holding `last`;
    returns the names made (none when they all exist, or the table is not partitioned here)."""
    engine = engine_name(connection.dialect.name)
    if not spec.partitioned_on(engine):
        return []
    _lock(connection, spec)
    starts = periods(spec.period, first, last)
    if engine == "postgresql":
        return _ensure_postgresql(connection, spec, starts)
    if engine == "mariadb":
        return _ensure_mariadb(connection, spec, starts)
    return _ensure_sqlite(connection, spec, starts)


async def ensure(session: AsyncSession, spec: PartitionedTable, first: datetime, last: datetime) -> list[str]:
    """`ensure_sync` in the session's transaction (on MariaDB the ALTER commits it)."""
    connection = await session.connection()
    return await connection.run_sync(lambda sync: ensure_sync(sync, spec, first, last))


@dataclass(frozen=True)
class Dropped:
    """What `drop_expired` removed: whole periods, and (PostgreSQL) rows of expired periods that had
    been stored in the default partition."""

    partitions: list[str] = field(default_factory=list)
    default_rows: int = 0


def drop_expired_sync(connection: Connection, spec: PartitionedTable, cutoff: datetime) -> Dropped:
    """Drop every period that ended at or before `cutoff`, whole. On PostgreSQL the default partition's
    rows of those periods go too. Where the table is not partitioned: nothing."""
    engine = engine_name(connection.dialect.name)
    if not spec.partitioned_on(engine):
        return Dropped()
    _lock(connection, spec)
    expired = [part for part in list_partitions_sync(connection, spec) if part.end <= cutoff]
    names = [part.name for part in expired]
    if engine == "mariadb":
        # MariaDB refuses to drop a table's last partition; pmax is always there.
        if expired:
            listed = ", ".join(_mariadb_name(spec, part.start) for part in expired)
            connection.execute(text(f"ALTER TABLE {_quote(connection, spec.name)} DROP PARTITION {listed}"))
        return Dropped(names)
    for part in expired:
        connection.execute(text(f"DROP TABLE {_quote(connection, part.name)}"))
    if engine == "sqlite":
        return Dropped(names)
    default = f"{spec.name}_p{DEFAULT_SUFFIX}"
    if not _exists(connection, default):
        return Dropped(names)
    source = _plain(spec, default)
    floor = spec.bound(period_start(spec.period, cutoff))
    deleted = connection.execute(delete(source).where(source.c[spec.column] < floor))
    return Dropped(names, int(deleted.rowcount or 0))


async def drop_expired(session: AsyncSession, spec: PartitionedTable, cutoff: datetime) -> Dropped:
    """`drop_expired_sync` in the session's transaction (on MariaDB the ALTER commits it)."""
    connection = await session.connection()
    return await connection.run_sync(lambda sync: drop_expired_sync(sync, spec, cutoff))


# --- reading and writing ---------------------------------------------------------------------------------


async def tables_for(
    session: AsyncSession, spec: PartitionedTable, start: datetime, end: datetime
) -> list[Table]:
    """The tables holding rows of [start, end): the table itself where the database partitions it (or does
    not partition it at all); on SQLite the per-period tables that exist for that range, oldest first, to
    read with UNION ALL (none: nothing was stored then)."""
    connection = await session.connection()
    engine = engine_name(connection.dialect.name)
    if engine != "sqlite" or not spec.partitioned_on(engine):
        return [spec.table]
    parts = await list_partitions(session, spec)
    return [child_table(spec, part.name) for part in parts if part.start < end and part.end > start]


def insert_target(spec: PartitionedTable, engine: str, value: Any) -> Table:
    """The table a row whose time column holds `value` goes into: the table itself, or on SQLite the
    period's own table (which `ensure` or `insert_rows` makes)."""
    if engine_name(engine) != "sqlite" or not spec.partitioned_on(engine):
        return spec.table
    start = period_start(spec.period, spec.moment(value))
    return child_table(spec, spec.child_name(start))


def _create_if_missing(connection: Connection, target: Table) -> None:
    target.create(connection, checkfirst=True)


async def insert_rows(
    session: AsyncSession, spec: PartitionedTable, rows: Sequence[Mapping[str, Any]]
) -> int:
    """Insert rows (column name → value) into their periods' tables, making missing SQLite period tables
    first; returns the number of rows."""
    if not rows:
        return 0
    connection = await session.connection()
    engine = connection.dialect.name
    groups: dict[str, tuple[Table, list[Mapping[str, Any]]]] = {}
    for row in rows:
        target = insert_target(spec, engine, row[spec.column])
        groups.setdefault(target.name, (target, []))[1].append(row)
    for target, group in groups.values():
        if target is not spec.table:
            await connection.run_sync(_create_if_missing, target)
        await session.execute(insert(target), list(group))
    return len(rows)


# --- migrations ------------------------------------------------------------------------------------------


def create_partitioned_table(spec: PartitionedTable, *, now: datetime | None = None) -> None:
    """Alembic op: create the table of `spec` partitioned on this database (plain where `spec.engines`
    leaves it out), with the current period and `spec.ahead` more. Build `spec.table` in the migration
    (`sa.Table(name, sa.MetaData(), *columns)`), not from the models, so the migration stays as written.
    On PostgreSQL the primary key and unique keys must include the time column (MariaDB: too)."""
    from alembic import op

    connection = op.get_bind()
    engine = engine_name(connection.dialect.name)
    if engine == "postgresql" and spec.partitioned_on(engine):
        spec.table.dialect_options["postgresql"]["partition_by"] = f"RANGE ({spec.column})"
    spec.table.create(connection)
    if spec.partitioned_on(engine):
        moment = now or datetime.now(UTC)
        last = moment
        for _ in range(spec.ahead):
            last = next_period(spec.period, period_start(spec.period, last))
        ensure_sync(connection, spec, moment, last)


def drop_partitioned_table(spec: PartitionedTable) -> None:
    """Alembic op: drop the table of `spec` with all its partitions (SQLite: its per-period tables too)."""
    from alembic import op

    connection = op.get_bind()
    if engine_name(connection.dialect.name) == "sqlite" and spec.partitioned_on("sqlite"):
        for part in list_partitions_sync(connection, spec):
            connection.execute(text(f"DROP TABLE {_quote(connection, part.name)}"))
    spec.table.drop(connection)


# --- the core cron job ----------------------------------------------------------------------------------


def horizon(spec: PartitionedTable, now: datetime) -> datetime:
    """The start of the last period `ensure` keeps ready: `ahead` periods after the current one."""
    last = period_start(spec.period, now)
    for _ in range(spec.ahead):
        last = next_period(spec.period, last)
    return last


async def maintain(platform: AppContext, specs: Sequence[PartitionedTable], now: datetime) -> dict[str, Any]:
    """Make every table's periods through `ahead` and drop what its retention no longer keeps, one
    transaction per table (a failing table does not stop the others' upkeep; the first error is raised
    after all ran)."""
    report: dict[str, Any] = {}
    failure: BaseException | None = None
    for spec in specs:
        try:
            async with platform.database.transaction() as session:
                made = await ensure(session, spec, now, horizon(spec, now))
            dropped = Dropped()
            keep = spec.retention(platform) if spec.retention is not None else None
            if keep is not None:
                async with platform.database.transaction() as session:
                    dropped = await drop_expired(session, spec, now - keep)
        except Exception as error:
            logger.warning("partitions_maintain_failed", table=spec.name, error=type(error).__name__)
            failure = failure or error
            continue
        if made or dropped.partitions or dropped.default_rows:
            logger.info(
                "partitions_maintained",
                table=spec.name,
                made=made,
                dropped=dropped.partitions,
                default_rows=dropped.default_rows,
            )
        report[spec.name] = {"made": made, "dropped": dropped.partitions}
    if failure is not None:
        raise failure
    return report


class HasPartitionedTables(Protocol):
    @property
    def partitioned_tables(self) -> Sequence[PartitionedTable]: ...


def maintain_jobs(apps: Iterable[HasPartitionedTables]) -> list[JobSpec]:
    """The job `core.partitions_maintain` over the enabled apps' partitioned tables, when they have any
    (Platform.build)."""
    tables = tuple(table for app in apps for table in app.partitioned_tables)
    if not tables:
        return []

    async def run(context: JobContext, _payload: dict[str, Any]) -> None:
        await maintain(context.platform, tables, datetime.now(UTC))

    return [JobSpec(MAINTAIN_JOB, run, concurrency=1, timeout=600)]


def maintain_cron(apps: Iterable[HasPartitionedTables]) -> list[CronSpec]:
    """Its schedule, every 10 minutes (none without partitioned tables)."""
    return [MAINTAIN_CRON] if any(app.partitioned_tables for app in apps) else []


__all__ = [
    "ALL_ENGINES",
    "MAINTAIN_CRON",
    "MAINTAIN_JOB",
    "Dropped",
    "Partition",
    "PartitionedTable",
    "child_parent",
    "create_partitioned_table",
    "drop_expired",
    "drop_partitioned_table",
    "ensure",
    "insert_rows",
    "insert_target",
    "list_partitions",
    "maintain",
    "maintain_cron",
    "maintain_jobs",
    "tables_for",
]
