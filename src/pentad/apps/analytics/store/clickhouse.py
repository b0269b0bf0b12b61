"""The ClickHouse events store (`PENTAD_ANALYTICS__STORE=clickhouse`): for sites beyond one database.

Raw events go to one MergeTree table, partitioned by month and ordered by (site_key, ts), over the native
protocol (clickhouse-driver; ClickHouse 18.16 and later: the SQL here avoids what newer servers added, and
what they removed). Every dashboard question is answered from the raw events: no rollups, no sessions
table. Visits are rebuilt per query from each visitor's sorted events (arrays: `arrayDifference` for the
gaps, `arrayCumSum` for the visit numbers), with the same rules and windows as rollups.py, so both stores
give the same answers; funnels use `windowFunnel`.

The schema is created and migrated by the store when a process opens it (`pentad_schema` in the database
holds the versions applied; every step is idempotent, so processes starting together do no harm).

A replayed ingest batch (`FlushContext.replay`: adopted from a crashed process, or an earlier attempt
failed, perhaps after ClickHouse took some of it) is stored exactly once: every row carries its batch id
and its index in the batch, and a replay inserts only the indexes the table does not hold yet (an insert
is atomic per partition, not across them, so a batch may be in partly).

Retention: a month whose events every site's raw tier has given up is dropped whole (DROP PARTITION);
otherwise a site's older events are deleted with a mutation (ALTER TABLE … DELETE, applied in the
background by the server).
"""

from __future__ import annotations

import asyncio
import bisect
import time
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import structlog
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.analytics import query, rollups
from pentad.apps.analytics.settings import ClickHouseSettings
from pentad.core.errors import AppError
from pentad.core.ingest import FlushContext

if TYPE_CHECKING:
    from clickhouse_driver import Client

logger = structlog.get_logger("pentad.analytics.clickhouse")

EVENTS_TABLE: Final = "analytics_events"
SCHEMA_TABLE: Final = "pentad_schema"
NULLABLE_TEXT: Final = (
    "referrer_host",
    "referrer_path",
    "source",
    "medium",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_content",
    "utm_term",
    "country",
    "region",
    "city",
    "device",
    "browser",
    "browser_version",
    "os",
    "os_version",
    "currency",
)
INSERT_COLUMNS: Final = (
    "site_key",
    "ts",
    "ts_ms",
    "visitor_id",
    "name",
    "hostname",
    "path",
    *NULLABLE_TEXT,
    "props.key",
    "props.value",
    "revenue_micros",
    "batch_id",
    "batch_row",
)
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        "CREATE TABLE IF NOT EXISTS {db}." + EVENTS_TABLE + " ("
        " site_key UInt32, ts DateTime, ts_ms Int64, visitor_id Int64, name String, hostname String,"
        " path String, "
        + ", ".join(f"{column} Nullable(String)" for column in NULLABLE_TEXT)
        + ", props Nested(key String, value String), revenue_micros Nullable(Int64),"
        " batch_id UUID, batch_row UInt32"
        ") ENGINE = MergeTree() PARTITION BY toYYYYMM(ts) ORDER BY (site_key, ts)",
    ),
)
"""Schema versions 1..n: the statements of each (`{db}` is the database)."""


class ClickHouseUnavailable(AppError):
    """The ClickHouse server did not answer (down, unreachable, or refused the query)."""

    status, code = 503, "events_store_unavailable"


@dataclass(frozen=True)
class FunnelStep:
    """One step of a funnel: a pageview of `value` (a path; `*` matches any characters) or a custom event
    named `value`."""

    kind: str
    value: str


def connection_args(settings: ClickHouseSettings) -> dict[str, Any]:
    """clickhouse-driver `Client` arguments from the settings."""
    parts = urlsplit(settings.url)
    secure = parts.scheme == "clickhouses"
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or (9440 if secure else 9000),
        "user": settings.user,
        "password": settings.password.get_secret_value() if settings.password else "",
        "secure": secure,
        "connect_timeout": settings.timeout,
        "send_receive_timeout": settings.timeout,
        "sync_request_timeout": settings.timeout,
        "settings": {"max_execution_time": int(settings.timeout)},
    }


class ClickHouse:
    """A small pool of native-protocol connections; each query runs in a thread (the driver blocks)."""

    def __init__(self, settings: ClickHouseSettings) -> None:
        self.settings = settings
        self.database = settings.database
        self._args = connection_args(settings)
        self._idle: list[Client] = []
        self._slots = asyncio.Semaphore(settings.pool)

    async def execute(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Rows of a query (`%(name)s` parameters), or the insert of `params` rows."""
        from clickhouse_driver import Client  # imported when a store is in use, not with the app
        from clickhouse_driver.errors import Error as DriverError

        async with self._slots:
            client = self._idle.pop() if self._idle else Client(**self._args)
            try:
                rows: list[tuple[Any, ...]] = await asyncio.to_thread(client.execute, sql, params)
            except (DriverError, OSError, EOFError) as error:
                client.disconnect()
                logger.warning(
                    "analytics_clickhouse_failed",
                    error=type(error).__name__,
                    code=getattr(error, "code", None),
                )
                raise ClickHouseUnavailable(
                    "The analytics events store (ClickHouse) did not answer; try again shortly."
                ) from error
            self._idle.append(client)
            return rows

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for client in idle:
            await asyncio.to_thread(client.disconnect)

    async def migrate(self) -> int:
        """Create the database and bring the schema to the newest version; the version it is at."""
        await self.execute(f"CREATE DATABASE IF NOT EXISTS {self.database}")
        await self.execute(
            f"CREATE TABLE IF NOT EXISTS {self.database}.{SCHEMA_TABLE} (version UInt32, applied_at DateTime)"
            " ENGINE = MergeTree() ORDER BY version"
        )
        rows = await self.execute(f"SELECT max(version) FROM {self.database}.{SCHEMA_TABLE}")
        current = int(rows[0][0] or 0) if rows else 0
        for version, statements in enumerate(MIGRATIONS, start=1):
            if version <= current:
                continue
            for statement in statements:
                await self.execute(statement.format(db=self.database))
            await self.execute(
                f"INSERT INTO {self.database}.{SCHEMA_TABLE} (version, applied_at) VALUES",
                [(version, int(time.time()))],
            )
            current = version
        return current


def _row(row: BaseModel, batch_id: str, index: int) -> tuple[Any, ...]:
    data = row.model_dump()
    props: dict[str, str] = data.get("props") or {}
    ts_ms = int(data["ts"])
    return (
        data["site_key"],
        ts_ms // 1000,
        ts_ms,
        data["visitor_id"],
        data["name"],
        data["hostname"],
        data["path"],
        *(data.get(column) for column in NULLABLE_TEXT),
        list(props),
        list(props.values()),
        data.get("revenue_micros"),
        batch_id,
        index,
    )


def _day_floor(ms: int) -> int:
    return ms // rollups.DAY_MS * rollups.DAY_MS


def _daily(span: query.Range) -> bool:
    """Whether the range is whole UTC hours (the planner reads rollups), not e.g. Asia/Kolkata days."""
    return not (span.start_ms % rollups.HOUR_MS or span.end_ms % rollups.HOUR_MS)


def _window(span: query.Range, session_timeout: int) -> tuple[int, int]:
    """The events visits are rebuilt from: the UTC days of the range widened by the session timeout, or
    the range alone (see `_visits`)."""
    if not _daily(span):
        return span.start_ms, span.end_ms
    timeout_ms = session_timeout * 1000
    return _day_floor(span.start_ms) - timeout_ms, _day_floor(span.end_ms - 1) + rollups.DAY_MS + timeout_ms


class ClickHouseEventStore:
    """Raw events in ClickHouse, every question answered from them."""

    name: Final = "clickhouse"

    def __init__(self, client: ClickHouse) -> None:
        self.client = client
        self.table = f"{client.database}.{EVENTS_TABLE}"

    # -------------------------------------------------------------- writing

    async def insert(self, context: FlushContext, rows: Sequence[BaseModel]) -> None:
        if not rows:
            return
        batch = str(context.batch_id)
        wanted = list(range(len(rows)))
        if context.replay:
            stamps = [int(row.model_dump()["ts"]) // 1000 for row in rows]
            held = await self.client.execute(
                f"SELECT batch_row FROM {self.table} WHERE batch_id = toUUID(%(batch)s)"
                " AND ts >= %(first)s AND ts <= %(last)s",
                {"batch": batch, "first": min(stamps), "last": max(stamps)},
            )
            stored = {int(found[0]) for found in held}
            wanted = [index for index in wanted if index not in stored]
        if wanted:
            await self.client.execute(
                f"INSERT INTO {self.table} ({', '.join(INSERT_COLUMNS)}) VALUES",
                [_row(rows[index], batch, index) for index in wanted],
            )

    async def prune(self, floors: Mapping[int, int]) -> int:
        """Drop the months no site keeps, delete older events of the others; the rows removed. Sites not
        in `floors` are left alone."""
        if not any(floors.values()):
            return 0
        found = await self.client.execute(
            f"SELECT toYYYYMM(ts) AS part_month, site_key, max(ts_ms), countIf(ts_ms < transform(site_key,"
            f" %(keys)s, %(floors)s, toUInt64(0))) FROM {self.table} GROUP BY part_month, site_key",
            {"keys": list(floors), "floors": [int(floor) for floor in floors.values()]},
        )
        months: dict[int, bool] = {}
        expired: dict[int, int] = {}
        removed = 0
        for month, site_key, newest, older in found:
            floor = floors.get(int(site_key), 0)
            months[int(month)] = months.get(int(month), True) and bool(floor) and int(newest) < floor
            expired[int(site_key)] = expired.get(int(site_key), 0) + int(older)
        for month, gone in sorted(months.items()):
            if gone:
                removed += sum(int(row[3]) for row in found if int(row[0]) == month)
                await self.client.execute(f"ALTER TABLE {self.table} DROP PARTITION {month:d}")
                for row in found:
                    if int(row[0]) == month:
                        expired[int(row[1])] -= int(row[3])
        for site_key, count in sorted(expired.items()):
            if count > 0:
                removed += count
                await self.client.execute(
                    f"ALTER TABLE {self.table} DELETE WHERE site_key = %(site)s AND ts_ms < %(floor)s",
                    {"site": site_key, "floor": floors[site_key]},
                )
        return removed

    async def delete_site(self, site_key: int) -> None:
        await self.client.execute(
            f"ALTER TABLE {self.table} DELETE WHERE site_key = %(site)s", {"site": site_key}
        )

    # -------------------------------------------------------------- visits

    def _visits(
        self, span: query.Range, columns: Mapping[str, str] | None = None, values: Sequence[str] = ()
    ) -> str:
        """One row per visit: visitor_id, first_t, last_t (unix ms), all_views, all_customs (of the whole
        visit), views, customs (its events in the range), started (1 when the visit counts as one of the
        range's), and each of `columns` (alias → aggregate over the visit's events: `t` the time, `pv` 1
        for a pageview, `v` the tuple of `values`, e.g. `argMin(tuple(v.1), t)` for the first one's).

        On whole UTC hours (the rollups' case) visits are rebuilt per UTC day from the day's window,
        widened by the session timeout (an event near midnight is in two windows, counted in its own
        day's), and a visit counts in the day it starts in, as rollups.compute_hours does; otherwise from
        the range's events alone, as query.py's raw functions do."""
        extra = "".join(f", {expression} AS {alias}" for alias, expression in (columns or {}).items())
        if _daily(span):
            days = (
                "arrayFilter(d -> ts_ms >= d * 86400000 - %(gap)s AND ts_ms < (d + 1) * 86400000 + %(gap)s,"
                " [intDiv(ts_ms, 86400000) - 1, intDiv(ts_ms, 86400000), intDiv(ts_ms, 86400000) + 1])"
            )
            own = "intDiv(t, 86400000) = wday"
            started = "intDiv(min(t), 86400000) = wday AND min(t) >= %(start)s AND min(t) < %(end)s"
        else:
            days, own, started = "[toInt64(0)]", "1", "1"
        in_range = f"{own} AND t >= %(start)s AND t < %(end)s"
        return (
            "SELECT visitor_id, min(t) AS first_t, max(t) AS last_t, countIf(pv) AS all_views,"
            f" countIf(NOT pv) AS all_customs, countIf(pv AND {in_range}) AS views,"
            f" countIf(NOT pv AND {in_range}) AS customs, {started} AS started{extra}"
            " FROM (SELECT visitor_id, wday, event.1 AS t, event.2 AS pv, event.3 AS v, visit FROM ("
            "SELECT visitor_id, wday,"
            f" arraySort(x -> x.1, groupArray((ts_ms, name = 'pageview', tuple({', '.join(values) or '0'}))))"
            " AS events,"
            " arrayCumSum(arrayMap((gap, i) -> i = 1 OR gap > %(gap)s,"
            " arrayDifference(arrayMap(x -> x.1, events)), arrayEnumerate(events))) AS visits"
            f" FROM (SELECT {', '.join(('visitor_id', 'ts_ms', 'name', *values))}, arrayJoin({days}) AS wday"
            f" FROM {self.table}"
            " WHERE site_key = %(site)s AND ts >= %(wfirst)s AND ts <= %(wlast)s"
            " AND ts_ms >= %(wstart)s AND ts_ms < %(wend)s)"
            " GROUP BY visitor_id, wday) ARRAY JOIN events AS event, visits AS visit)"
            " GROUP BY visitor_id, wday, visit"
        )

    def _params(self, site_key: int, span: query.Range, session_timeout: int) -> dict[str, Any]:
        wstart, wend = _window(span, session_timeout)
        return {
            "site": site_key,
            "start": span.start_ms,
            "end": span.end_ms,
            "first": span.start_ms // 1000,
            "last": (span.end_ms - 1) // 1000,
            "wstart": wstart,
            "wend": wend,
            "wfirst": wstart // 1000,
            "wlast": (wend - 1) // 1000,
            "gap": session_timeout * 1000,
        }

    def _in_range(self) -> str:
        return (
            "site_key = %(site)s AND ts >= %(first)s AND ts <= %(last)s"
            " AND ts_ms >= %(start)s AND ts_ms < %(end)s"
        )

    # -------------------------------------------------------------- the dashboard

    async def totals(
        self,
        session: AsyncSession | None,
        site_key: int,
        span: query.Range,
        session_timeout: int,
        planning: query.Planning | None = None,
    ) -> query.Totals:
        rows = await self.client.execute(
            "SELECT uniqExactIf(visitor_id, views + customs > 0), countIf(started),"
            " countIf(started AND all_views <= 1 AND all_customs = 0),"
            " sumIf(last_t - first_t, started), sum(views), sum(customs)"
            f" FROM ({self._visits(span)})",
            self._params(site_key, span, session_timeout),
        )
        visitors, visits, bounces, duration, views, customs = rows[0]
        return query.Totals(
            visitors=int(visitors),
            visits=int(visits),
            pageviews=int(views),
            events=int(customs),
            bounces=int(bounces),
            duration_ms=int(duration),
        )

    async def timeseries(
        self,
        session: AsyncSession | None,
        site_key: int,
        span: query.Range,
        session_timeout: int,
        planning: query.Planning | None = None,
    ) -> list[query.Point]:
        """Per interval; an event counts in the interval its UTC hour starts in (as query.py's raw
        statistics; the same as where it is whenever the zone's midnights are on UTC hours, where the
        server names the local hour, day or month itself)."""
        zone = span.start.tzinfo
        assert isinstance(zone, zoneinfo.ZoneInfo)
        starts = span.buckets()
        edges = [int(start.timestamp() * 1000) for start in starts]
        hour = "intDiv(ts_ms, 3600000)"
        if not _daily(span):  # e.g. Asia/Kolkata: the bucket by the edges (each a few, these are rare)
            key = f"greatest(arrayCount(edge -> edge <= {hour} * 3600000, %(edges)s), 1) - 1"
        else:
            key = {
                "hour": hour,
                "day": f"toYYYYMMDD(toDateTime({hour} * 3600), %(zone)s)",
                "month": f"toYYYYMM(toDateTime({hour} * 3600), %(zone)s)",
            }[span.interval]
        rows = await self.client.execute(
            f"SELECT {key} AS bucket, uniqExact(visitor_id), countIf(name = 'pageview')"
            f" FROM {self.table} WHERE {self._in_range()} GROUP BY bucket",
            {**self._params(site_key, span, session_timeout), "zone": zone.key, "edges": edges},
        )
        points = [query.Point(start, 0, 0) for start in starts]
        for bucket, visitors, views in rows:
            if _daily(span):
                index = bisect.bisect_right(edges, _bucket_start(span.interval, int(bucket), zone)) - 1
            else:
                index = int(bucket)
            points[index] = query.Point(starts[index], int(visitors), int(views))
        return points

    async def breakdown(
        self,
        session: AsyncSession | None,
        site_key: int,
        span: query.Range,
        dimension: str,
        *,
        limit: int = 10,
        session_timeout: int,
        planning: query.Planning | None = None,
    ) -> list[query.Row]:
        column = BREAKDOWN_COLUMNS[dimension]
        params = {**self._params(site_key, span, session_timeout), "limit": limit}
        if dimension in VISIT_BREAKDOWNS:
            pick = "argMax" if dimension == "exit_pages" else "argMin"
            found = await self.client.execute(
                "SELECT opening.1 AS value, uniqExactIf(visitor_id, views + customs > 0) AS visitors,"
                " sum(views), sum(customs)"
                f" FROM ({self._visits(span, {'opening': f'{pick}(tuple(v.1), t)'}, (column,))})"
                " GROUP BY value HAVING visitors > 0"
                " ORDER BY visitors DESC, isNull(value), value LIMIT %(limit)s",
                params,
            )
        else:
            condition = {"pages": " AND name = 'pageview'", "events": " AND name != 'pageview'"}.get(
                dimension, ""
            )
            found = await self.client.execute(
                f"SELECT {column} AS value, uniqExact(visitor_id) AS visitors,"
                " countIf(name = 'pageview'), countIf(name != 'pageview')"
                f" FROM {self.table} WHERE {self._in_range()}{condition}"
                " GROUP BY value ORDER BY visitors DESC, isNull(value), value LIMIT %(limit)s",
                params,
            )
        label = query.NONE_LABELS.get(dimension, "(unknown)")
        return [
            query.Row(value if value is not None else label, int(visitors), int(views), int(customs))
            for value, visitors, views, customs in found
        ]

    async def live(self, site_key: int, since_ms: int, top: int) -> tuple[int, int, list[tuple[str, int]]]:
        recent = "site_key = %(site)s AND ts >= %(first)s AND ts_ms >= %(since)s"
        params = {"site": site_key, "first": since_ms // 1000, "since": since_ms, "top": top}
        counts = await self.client.execute(
            f"SELECT uniqExact(visitor_id), countIf(name = 'pageview') FROM {self.table} WHERE {recent}",
            params,
        )
        pages = (
            []
            if top <= 0
            else await self.client.execute(
                f"SELECT path, uniqExact(visitor_id) AS visitors FROM {self.table}"
                f" WHERE {recent} AND name = 'pageview'"
                " GROUP BY path ORDER BY visitors DESC, path LIMIT %(top)s",
                params,
            )
        )
        visitors, views = counts[0] if counts else (0, 0)
        return int(visitors), int(views), [(str(path), int(count)) for path, count in pages]

    async def props(
        self,
        site_key: int,
        span: query.Range,
        key: str | None,
        *,
        event: str | None = None,
        limit: int = 10,
    ) -> list[tuple[str, int, int]]:
        named = " AND name = %(event)s" if event is not None else ""
        if key is None:
            value, carried = "arrayJoin(props.key)", "notEmpty(props.key)"
        else:
            value, carried = "props.value[indexOf(props.key, %(key)s)]", "has(props.key, %(key)s)"
        found = await self.client.execute(
            f"SELECT {value} AS value, uniqExact(visitor_id) AS visitors, count() AS events"
            f" FROM {self.table} WHERE {self._in_range()} AND {carried}{named}"
            " GROUP BY value ORDER BY visitors DESC, events DESC, value LIMIT %(limit)s",
            {**self._params(site_key, span, 0), "key": key, "event": event, "limit": limit},
        )
        return [(str(value), int(visitors), int(count)) for value, visitors, count in found]

    async def funnel(
        self, site_key: int, span: query.Range, steps: Sequence[FunnelStep], *, window: int
    ) -> list[int]:
        """How many visitors reached each step, in order, each within `window` seconds of the first
        (`windowFunnel`)."""
        if not 2 <= len(steps) <= 8:
            raise ValueError("a funnel has 2 to 8 steps")
        params: dict[str, Any] = {**self._params(site_key, span, 0), "window": window}
        conditions = []
        for index, step in enumerate(steps):
            params[f"step{index}"] = _like(step.value) if step.kind == "page" else step.value
            conditions.append(
                f"name = 'pageview' AND path LIKE %(step{index})s"
                if step.kind == "page"
                else f"name = %(step{index})s"
            )
        found = await self.client.execute(
            "SELECT level, count() FROM (SELECT visitor_id,"
            f" windowFunnel(%(window)s)(ts, {', '.join(conditions)}) AS level"
            f" FROM {self.table} WHERE {self._in_range()} GROUP BY visitor_id)"
            " GROUP BY level",
            params,
        )
        reached = [0] * len(steps)
        for level, count in found:
            for index in range(int(level)):
                reached[index] += int(count)
        return reached


BREAKDOWN_COLUMNS: Final = {
    **rollups.COLUMNS,
    "entry_pages": "path",
    "exit_pages": "path",
    "utm_content": "utm_content",
    "utm_term": "utm_term",
    "regions": "region",
    "cities": "city",
}
"""Every breakdown the store answers (filters.BREAKDOWNS: the rollups' and the raw-only ones) → column."""
VISIT_BREAKDOWNS: Final = query.ACQUISITION | {"entry_pages", "exit_pages", "utm_content", "utm_term"}
"""Counted under a visit's first event's value (its last one's for exit pages), as filters.py does."""


def _like(pattern: str) -> str:
    """A path pattern (`*` any characters) as a LIKE pattern."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


def _bucket_start(interval: str, bucket: int, zone: zoneinfo.ZoneInfo) -> int:
    """Unix ms of a timeseries bucket key: a UTC hour number, or a site-local YYYYMMDD or YYYYMM."""
    if interval == "hour":
        return bucket * rollups.HOUR_MS
    if interval == "day":
        day = date(bucket // 10000, bucket // 100 % 100, bucket % 100)
    else:
        day = date(bucket // 100, bucket % 100, 1)
    return int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp() * 1000)
