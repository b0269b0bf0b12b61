"""The ClickHouse events store (`PENTAD_ANALYTICS__STORE=clickhouse`): for sites beyond one database.

Raw events go to one MergeTree table, partitioned by month and ordered by (site_key, ts), over the native
protocol (clickhouse-driver; ClickHouse 18.16 and later: the SQL here avoids what newer servers added, and
what they removed). Every dashboard question is answered from the raw events: no rollups, no sessions
table. Visits are rebuilt per query from each visitor's sorted events (arrays: `arrayDifference` for the
gaps, `arrayCumSum` for the visit numbers), with the same rules and windows as rollups.py, so both stores
give the same answers. Filtered questions, goals, funnels and properties follow filters.py's rules: visits
rebuilt from the range's events, kept by their first (or last) event's values and by whether one of their
events matches, the counted events filtered per visit with `arrayFilter`; a funnel walks each visit's (or
visitor-day's) sorted events with nested `arrayFirstIndex` (each step after the previous one's event),
which is funnels.py's rule — not `windowFunnel`'s (a time window from the first step).

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
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import structlog
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.analytics import pushdown, query, rollups
from pentad.apps.analytics.filters import (
    BREAKDOWNS,
    NONE_VALUE,
    PAGEVIEW,
    PROP_PREFIX,
    VISIT_DIMENSIONS,
    VISITOR_FACTS,
    Filter,
)
from pentad.apps.analytics.goals import GoalRule
from pentad.apps.analytics.settings import ClickHouseSettings
from pentad.core.errors import AppError
from pentad.core.ingest import FlushContext

if TYPE_CHECKING:
    from clickhouse_driver import Client

    from pentad.apps.analytics.funnels import Step

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
                " sum(views) AS all_views, sum(customs) AS all_customs"
                f" FROM ({self._visits(span, {'opening': f'{pick}(tuple(v.1), t)'}, (column,))})"
                " GROUP BY value HAVING visitors > 0"
                " ORDER BY visitors DESC, all_views + all_customs DESC, isNull(value), value LIMIT %(limit)s",
                params,
            )
        else:
            condition = {"pages": " AND name = 'pageview'", "events": " AND name != 'pageview'"}.get(
                dimension, ""
            )
            found = await self.client.execute(
                f"SELECT {column} AS value, uniqExact(visitor_id) AS visitors,"
                " countIf(name = 'pageview') AS all_views, countIf(name != 'pageview') AS all_customs"
                f" FROM {self.table} WHERE {self._in_range()}{condition}"
                " GROUP BY value"
                " ORDER BY visitors DESC, all_views + all_customs DESC, isNull(value), value LIMIT %(limit)s",
                params,
            )
        label = query.NONE_LABELS.get(dimension, "(unknown)")
        return [
            query.Row(value if value is not None else label, int(visitors), int(views), int(customs))
            for value, visitors, views, customs in found
        ]

    async def medium_traffic(
        self, site_key: int, span: query.Range, limit: int
    ) -> list[tuple[str | None, int, int]]:
        found = await self.client.execute(
            "SELECT medium, uniqExact(visitor_id), count() AS views"
            f" FROM {self.table} WHERE {self._in_range()} AND name = 'pageview'"
            " GROUP BY medium ORDER BY views DESC, isNull(medium), medium LIMIT %(limit)s",
            {**self._params(site_key, span, 0), "limit": limit},
        )
        return [(medium, int(visitors), int(views)) for medium, visitors, views in found]

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

    # -------------------------------------------------------------- filtered answers (filters.py's rules)

    def _kept(self, site_key: int, span: query.Range, session_timeout: int, ask: _Ask) -> str:
        """One row per kept visit of the range: visitor_id, `evs` (its events as tuples of `ask.columns`,
        in time order) and `cevs` (its counted events). Visits are rebuilt from the range's events alone,
        as filters.load_visits does (a visit begun before the range starts at its first event in it)."""
        ask.params.update(self._params(site_key, span, session_timeout))
        narrowed = "".join(
            f" AND {check.dimension} = {ask.param(check.value)}"
            for check in ask.filters
            if check.dimension in VISITOR_FACTS and check.operator == "is" and check.value != NONE_VALUE
        )
        fields = ", ".join(ask.columns)
        visits = (
            "SELECT visitor_id, visit, arraySort(x -> tupleElement(x, 1), groupArray(event)) AS evs FROM ("
            "SELECT visitor_id, event, visit FROM (SELECT visitor_id,"
            f" arraySort(x -> tupleElement(x, 1), groupArray(tuple({fields}))) AS events,"
            " arrayCumSum(arrayMap((gap, i) -> i = 1 OR gap > %(gap)s,"
            " arrayDifference(arrayMap(x -> tupleElement(x, 1), events)), arrayEnumerate(events))) AS visits"
            f" FROM {self.table} WHERE {self._in_range()}{narrowed} GROUP BY visitor_id)"
            " ARRAY JOIN events AS event, visits AS visit) GROUP BY visitor_id, visit"
        )
        kept: list[str] = []
        for check in ask.filters:
            if check.on_visit:
                column = VISIT_DIMENSIONS[check.dimension]
                value = ask.last("path") if column == "exit" else ask.first(column)
                passed = ask.test(check, value)
            else:
                passed = f"arrayExists(x -> {ask.event_test(check, 'x')}, evs)"
            kept.append(f"NOT ({passed})" if check.operator == "is_not" else passed)
        narrowing = [ask.event_test(f, "x") for f in ask.filters if not f.on_visit and f.operator != "is_not"]
        counted = f"arrayFilter(x -> {' AND '.join(narrowing)}, evs)" if narrowing else "evs"
        where = f" WHERE {' AND '.join(kept)}" if kept else ""
        return f"SELECT visitor_id, evs, {counted} AS cevs FROM ({visits}){where}"

    async def filtered_totals(
        self,
        site_key: int,
        span: query.Range,
        session_timeout: int,
        filters: Sequence[Filter],
        rules: Sequence[GoalRule],
    ) -> query.Totals:
        ask = _Ask(filters, rules)
        views = f"arrayCount(x -> {ask.is_view('x')}, evs)"
        rows = await self.client.execute(
            "SELECT uniqExact(visitor_id), count(),"
            f" sum(arrayCount(x -> {ask.is_view('x')}, cevs)), sum(length(cevs)),"
            f" countIf({views} <= 1 AND {views} = length(evs)),"
            f" sum({ask.last('ts_ms')} - {ask.first('ts_ms')})"
            f" FROM ({self._kept(site_key, span, session_timeout, ask)})",
            ask.params,
        )
        visitors, visits, views_counted, counted, bounces, duration = rows[0]
        return query.Totals(
            visitors=int(visitors),
            visits=int(visits),
            pageviews=int(views_counted),
            events=int(counted) - int(views_counted),
            bounces=int(bounces),
            duration_ms=int(duration),
        )

    async def filtered_timeseries(
        self,
        site_key: int,
        span: query.Range,
        session_timeout: int,
        filters: Sequence[Filter],
        rules: Sequence[GoalRule],
        edges: Sequence[int],
    ) -> list[tuple[int, int]]:
        """(visitors, pageviews) per interval starting at each of `edges`, of the counted events."""
        ask = _Ask(filters, rules)
        kept = self._kept(site_key, span, session_timeout, ask)
        rows = await self.client.execute(
            "SELECT greatest(arrayCount(edge -> edge <= tupleElement(e, 1), %(edges)s), 1) - 1 AS bucket,"
            f" uniqExact(visitor_id), countIf({ask.is_view('e')})"
            f" FROM ({kept}) ARRAY JOIN cevs AS e GROUP BY bucket",
            {**ask.params, "edges": list(edges)},
        )
        found = [(0, 0) for _ in edges]
        for bucket, visitors, views in rows:
            found[int(bucket)] = (int(visitors), int(views))
        return found

    async def filtered_breakdown(
        self,
        site_key: int,
        span: query.Range,
        session_timeout: int,
        filters: Sequence[Filter],
        rules: Sequence[GoalRule],
        dimension: str,
        limit: int,
    ) -> list[pushdown.Group]:
        per, column = BREAKDOWNS[dimension]
        ask = _Ask(filters, rules, [] if column == "exit" else [column])
        kept = self._kept(site_key, span, session_timeout, ask)
        if per == "visit":
            value = ask.last("path") if column == "exit" else ask.first(column)
            views = f"sum(arrayCount(x -> {ask.is_view('x')}, cevs))"
            sql = (
                f"SELECT {value} AS value, uniqExact(visitor_id), {views}, sum(length(cevs)) - {views}"
                f" FROM ({kept}) GROUP BY value"
            )
        else:
            view = ask.is_view("e")
            only = {"pages": f" WHERE {view}", "events": f" WHERE NOT {view}"}.get(dimension, "")
            sql = (
                f"SELECT {ask.element('e', column)} AS value, uniqExact(visitor_id), countIf({view}),"
                f" countIf(NOT {view}) FROM ({kept}) ARRAY JOIN cevs AS e{only} GROUP BY value"
            )
        rows = await self.client.execute(sql, ask.params)
        groups = [
            pushdown.Group(None if value is None else str(value), int(visitors), int(views), int(customs))
            for value, visitors, views, customs in rows
        ]
        return pushdown.ranked(groups, limit)

    async def filtered_goals(
        self,
        site_key: int,
        span: query.Range,
        session_timeout: int,
        filters: Sequence[Filter],
        rules: Sequence[GoalRule],
    ) -> tuple[int, list[pushdown.GoalCount]]:
        """(visitors of the kept visits, per goal: visitors who completed it, completions, revenue in its
        currency), over the counted events."""
        ask = _Ask(filters, rules, ["revenue_micros", "currency"])
        aggregates: list[str] = []
        for rule in rules:
            matched = ask.goal(rule, "x")
            paid = "0"
            if rule.currency is not None:
                currency = ask.equals(ask.element("x", "currency"), rule.currency)
                paid = (
                    f"arraySum(arrayMap(x -> if({matched} AND {currency},"
                    f" ifNull({ask.element('x', 'revenue_micros')}, 0), 0), cevs))"
                )
            aggregates.append(
                f"uniqExactIf(visitor_id, arrayExists(x -> {matched}, cevs)),"
                f" sum(arrayCount(x -> {matched}, cevs)), sum({paid})"
            )
        kept = self._kept(site_key, span, session_timeout, ask)
        rows = await self.client.execute(
            f"SELECT {', '.join(['uniqExact(visitor_id)', *aggregates])} FROM ({kept})", ask.params
        )
        row = rows[0]
        return int(row[0]), [
            pushdown.GoalCount(rule.id, int(row[1 + 3 * i]), int(row[2 + 3 * i]), int(row[3 + 3 * i]))
            for i, rule in enumerate(rules)
        ]

    async def filtered_props(
        self,
        site_key: int,
        span: query.Range,
        session_timeout: int,
        filters: Sequence[Filter],
        rules: Sequence[GoalRule],
        key: str | None,
        limit: int,
    ) -> list[tuple[str, int, int]]:
        """Property keys (key None) or one key's values over the counted events: (value, visitors,
        events carrying it), as filters.props_of."""
        ask = _Ask(filters, rules, ["props.key", "props.value"])
        keys, values = ask.element("e", "props.key"), ask.element("e", "props.value")
        if key is None:
            value, carried = f"arrayJoin({keys})", f"notEmpty({keys})"
        else:
            name = ask.param(key)
            value, carried = f"{values}[indexOf({keys}, {name})]", f"has({keys}, {name})"
        kept = self._kept(site_key, span, session_timeout, ask)
        rows = await self.client.execute(
            f"SELECT {value} AS value, uniqExact(visitor_id), count() FROM ({kept}) ARRAY JOIN cevs AS e"
            f" WHERE {carried} GROUP BY value",
            ask.params,
        )
        groups = [pushdown.Group(str(found), int(visitors), int(count), 0) for found, visitors, count in rows]
        return [
            (str(group.value), group.visitors, group.pageviews) for group in pushdown.ranked(groups, limit)
        ]

    async def filtered_funnel(
        self,
        site_key: int,
        span: query.Range,
        session_timeout: int,
        filters: Sequence[Filter],
        rules: Sequence[GoalRule],
        steps: Sequence[Step],
        scope: str,
    ) -> tuple[int, list[tuple[int, int]]]:
        """(units, per step (units, visitors) that reached it) of the kept visits (scope `visit`) or of
        each visitor's kept visits together (`day`): each unit advances one step each time an event
        matches the next step, in time order (funnels.report), written as nested `arrayFirstIndex`."""
        ask = _Ask(filters, rules)
        kept = self._kept(site_key, span, session_timeout, ask)
        if scope != "visit":
            kept = (
                "SELECT visitor_id, arraySort(x -> tupleElement(x, 1), groupArrayArray(evs)) AS evs"
                f" FROM ({kept}) GROUP BY visitor_id"
            )
        positions: list[str] = []
        for index, step in enumerate(steps):
            matched = ask.step(step, "x")
            if index == 0:
                positions.append(f"arrayFirstIndex(x -> {matched}, evs) AS p0")
            else:
                positions.append(
                    f"if(p{index - 1} = 0, 0, arrayFirstIndex((x, i) -> i > p{index - 1} AND {matched},"
                    f" evs, arrayEnumerate(evs))) AS p{index}"
                )
        counts = ", ".join(f"countIf(p{i} > 0), uniqExactIf(visitor_id, p{i} > 0)" for i in range(len(steps)))
        rows = await self.client.execute(
            f"SELECT count(), {counts} FROM (SELECT visitor_id, {', '.join(positions)} FROM ({kept}))",
            ask.params,
        )
        row = rows[0]
        return int(row[0]), [(int(row[1 + 2 * i]), int(row[2 + 2 * i])) for i in range(len(steps))]


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


class _Ask:
    """The SQL pieces of one filtered question: its parameters, and the event tuples' columns (time,
    name, path, then what the filters and the question read)."""

    def __init__(
        self, filters: Sequence[Filter], rules: Sequence[GoalRule], columns: Sequence[str] = ()
    ) -> None:
        self.filters = filters
        self.rules = rules
        wanted = ["ts_ms", "name", "path"]
        for check in filters:
            if check.on_visit and VISIT_DIMENSIONS[check.dimension] != "exit":
                wanted.append(VISIT_DIMENSIONS[check.dimension])
            elif check.dimension.startswith(PROP_PREFIX):
                wanted += ["props.key", "props.value"]
        wanted += columns
        self.columns = list(dict.fromkeys(wanted))
        self.params: dict[str, Any] = {}

    def param(self, value: Any) -> str:
        name = f"q{len(self.params)}"
        self.params[name] = value
        return f"%({name})s"

    def element(self, event: str, column: str) -> str:
        return f"tupleElement({event}, {self.columns.index(column) + 1})"

    def first(self, column: str) -> str:
        """The visit's first event's value."""
        return self.element("arrayElement(evs, 1)", column)

    def last(self, column: str) -> str:
        return self.element("arrayElement(evs, -1)", column)

    def is_view(self, event: str) -> str:
        return f"{self.element(event, 'name')} = 'pageview'"

    def equals(self, value: str, expected: str) -> str:
        return f"ifNull({value} = {self.param(expected)}, 0)"

    def test(self, check: Filter, value: str) -> str:
        """`Filter.test` (never NULL, so NOT negates it)."""
        if check.operator == "contains":
            return f"ifNull(position(lowerUTF8({value}), {self.param(check.value.lower())}) > 0, 0)"
        if check.value == NONE_VALUE:
            return f"isNull({value})"
        return self.equals(value, check.value)

    def pattern(self, event: str, pattern: str) -> str:
        """A pageview of a path pattern (`*`: any characters)."""
        return f"({self.is_view(event)} AND {self.element(event, 'path')} LIKE {self.param(_like(pattern))})"

    def goal(self, rule: GoalRule, event: str) -> str:
        if rule.kind == PAGEVIEW:
            if rule.path_pattern is None:
                return "0"
            return self.pattern(event, rule.path_pattern)
        return f"{self.element(event, 'name')} = {self.param(rule.event_name or '')}"

    def step(self, step: Step, event: str) -> str:
        if step.goal is not None:
            return self.goal(step.goal, event)
        assert step.path is not None
        return self.pattern(event, step.path)

    def event_test(self, check: Filter, event: str) -> str:
        """Whether an event passes an event filter's `is`/`contains` comparison (filters._event_passes)."""
        name = self.element(event, "name")
        if check.dimension == "page":
            return self.test(check, self.element(event, "path"))
        if check.dimension == "event":
            if check.operator != "contains" and check.value == NONE_VALUE:
                return f"{name} = 'pageview'"
            return f"({name} != 'pageview' AND {self.test(check, name)})"
        if check.dimension == "goal":
            if check.operator != "contains" and check.value == NONE_VALUE:
                return f"NOT ({' OR '.join(['0', *(self.goal(rule, event) for rule in self.rules)])})"
            chosen = [self.goal(rule, event) for rule in self.rules if check.test(rule.name)]
            return f"({' OR '.join(['0', *chosen])})"
        keys, values = self.element(event, "props.key"), self.element(event, "props.value")
        key = self.param(check.dimension[len(PROP_PREFIX) :])
        if check.operator != "contains" and check.value == NONE_VALUE:
            return f"NOT has({keys}, {key})"
        return f"(has({keys}, {key}) AND {self.test(check, f'{values}[indexOf({keys}, {key})]')})"
