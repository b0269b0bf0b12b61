"""Rollups: what the dashboards read instead of raw events for closed hours, days and months.

The ingest flush marks each (site, UTC hour) it stores events for in `analytics_dirty_buckets`. The job
`analytics.rollup` (cron every ROLLUP_INTERVAL seconds, concurrency 1, under the row lock of the one
`analytics_rollup_cursor` row) drains them: for each dirty hour it reads that hour's visitors' events of
the UTC day (their ids are daily, so no visit crosses it; the window is widened by the session timeout),
rebuilds their visits in `analytics_sessions`, and replaces the hour's rows in `analytics_rollup_hourly`
(DELETE + INSERT, so a recompute is idempotent and a late or replayed event just makes its hour dirty
again). Hours whose visits changed shape (a late event joining two visits) are recomputed too. Then the
site-local days and months those hours fall in are rebuilt from the hourly (daily) rows.

The per-hour numbers are computed in Python from one read of the hour's events, not with
`INSERT … SELECT … GROUP BY`: the visitor sketches (hll.py) need the visitor hashes anyway, and the
acquisition dimensions need each event's visit. `compute_hours` is also what the query planner uses for the
open hour and for hours still dirty, so live and stored numbers cannot disagree.

Counting rules per bucket: visitors, pageviews, custom events and revenue count where each event is;
visits, bounces and duration count in the bucket their visit starts in. Acquisition dimensions (source,
referrer, UTM) count each event under its visit's first value, as the raw statistics do.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import zoneinfo
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import repeat
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.analytics.hll import Sketch, visitor_hash
from pentad.apps.analytics.models import (
    AnalyticsDirtyBucket,
    AnalyticsEvent,
    AnalyticsRollupCursor,
    AnalyticsRollupDaily,
    AnalyticsRollupHourly,
    AnalyticsRollupMonthly,
    AnalyticsSession,
    AnalyticsSite,
)
from pentad.core.db.inserts import execute_in_parts

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
PAGEVIEW = "pageview"
EPOCH_DAY = date(1970, 1, 1).toordinal()
TOTALS = 0
DIMS: dict[str, int] = {
    "pages": 1,
    "sources": 2,
    "referrers": 3,
    "countries": 4,
    "devices": 5,
    "browsers": 6,
    "os": 7,
    "utm_source": 8,
    "utm_medium": 9,
    "utm_campaign": 10,
    "events": 11,
    "entry_pages": 12,
    "exit_pages": 13,
    "utm_content": 14,
    "utm_term": 15,
    "regions": 16,
    "cities": 17,
}
COLUMNS: dict[str, str] = {
    "pages": "path",
    "sources": "source",
    "referrers": "referrer_host",
    "countries": "country",
    "devices": "device",
    "browsers": "browser",
    "os": "os",
    "utm_source": "utm_source",
    "utm_medium": "utm_medium",
    "utm_campaign": "utm_campaign",
    "events": "name",
    "entry_pages": "path",
    "exit_pages": "exit",
    "utm_content": "utm_content",
    "utm_term": "utm_term",
    "regions": "region",
    "cities": "city",
}
"""Dimension → the event column of its value (`exit`: the visit's last page)."""
PROP_KEYS = 18
"""The custom property names events carried (value: the name): the properties panel's first level."""
PROP_VALUES = 19
"""A property's values (value: prop_value(name, value)): the panel's second level."""
REVENUE = 20
"""Events with revenue by currency and name, pageviews also by path (value: revenue_value(...)): what a
goal with a currency counts (the other rows' revenue_micros add up every currency). A custom event's path
is left out: an event goal matches by name, and purchases on every product page would make a row each."""
GOAL_DIMS = (PROP_KEYS, PROP_VALUES, REVENUE)
"""Rolled up for the goals and properties panels; not breakdowns (they have no event column)."""
ACQUISITION = frozenset(
    {
        "sources",
        "referrers",
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_content",
        "utm_term",
        "entry_pages",
    }
)
"""Counted under the visit's first event's value (the exit page: under its last page)."""
_EVENT_COLUMNS = (
    "visitor_id", "ts", "name", "revenue_micros", "path", "country", "region", "city", "device", "browser",
    "os", "source", "referrer_host", "utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term",
    "currency", "props",
)  # fmt: skip
"""What compute_hours reads of each event (the positions below index into it)."""
_IN_CHUNK = 500
"""Ids per `IN (...)` when the rows are found by primary key (sessions, dirty marks)."""
_IN_LIMIT = 30_000
"""Most visitor ids compute_hours asks for in one `IN (...)` (SQLite takes 32,766 bound values, asyncpg
32,767); with more it reads the whole window."""
_PART_ROWS = 5000
"""Events (or visits) handled between two turns of the event loop (about 15 ms of work). A rollup runs in
the web process with the in-process worker: a busy day's read and computation in one piece held every
request of the process (the ingest's included) for hundreds of milliseconds."""

_ROW_PARTS = 500
"""Rollup rows built between two turns of the event loop when a day or month is rebuilt (each row carries
its sketch's text: a month of pages held requests ~50 ms when built in one piece)."""

Key = tuple[int, str | None]
"""(dim, value): one rollup row."""


def _json(parts: list[str | None]) -> str:
    """A composite rollup value: compact JSON, so no separator can be confused with the texts."""
    return json.dumps(parts, ensure_ascii=False, separators=(",", ":"))


def prop_value(name: str, value: str) -> str:
    """The PROP_VALUES value of one property."""
    return _json([name, value])


def prop_prefix(name: str) -> str:
    """What every PROP_VALUES value of property `name` starts with."""
    return _json([name])[:-1] + ","


def revenue_value(currency: str, name: str, path: str) -> str:
    """The REVENUE value of an event ([currency, name, path], the path null but for pageviews)."""
    return _json([currency, name, path if name == PAGEVIEW else None])


def value_hash(value: str | None) -> int:
    """The signed 64-bit key of a dimension value (None, the dimension's "(none)", has its own)."""
    raw = b"\x00" if value is None else b"v" + value.encode()
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "little", signed=True)


@dataclass
class Agg:
    """The numbers of one (dim, value) in one bucket or a merge of buckets."""

    sketch: Sketch = field(default_factory=Sketch)
    visits: int = 0
    pageviews: int = 0
    events: int = 0
    bounces: int = 0
    duration_ms: int = 0
    revenue_micros: int = 0

    def merge(self, other: Agg) -> None:
        self.sketch.merge(other.sketch)
        self.visits += other.visits
        self.pageviews += other.pageviews
        self.events += other.events
        self.bounces += other.bounces
        self.duration_ms += other.duration_ms
        self.revenue_micros += other.revenue_micros


def merge_into(target: dict[Key, Agg], source: dict[Key, Agg]) -> None:
    for key, agg in source.items():
        if key in target:
            target[key].merge(agg)
        else:
            copy = Agg()
            copy.merge(agg)
            target[key] = copy


@dataclass
class Visit:
    visitor_id: int
    start: int
    end: int
    first: dict[str, Any]
    last_path: str
    pageviews: int = 0
    events: int = 0

    @property
    def bounce(self) -> bool:
        return self.pageviews <= 1 and self.events == 0


@dataclass
class HoursResult:
    """The rollup rows of some hours of one UTC day, and the visits of their visitors."""

    aggs: dict[int, dict[Key, Agg]]
    """By hour: every hour asked for, empty when it has no events."""
    visits: list[Visit]
    visitors: list[int]
    window: tuple[int, int]


def _day_window(day: int, timeout_ms: int) -> tuple[int, int]:
    return day * DAY_MS - timeout_ms, (day + 1) * DAY_MS + timeout_ms


def _chunks(values: Sequence[int]) -> Iterable[Sequence[int]]:
    for index in range(0, len(values), _IN_CHUNK):
        yield values[index : index + _IN_CHUNK]


async def compute_hours(
    session: AsyncSession, site_key: int, hours: Collection[int], session_timeout: int
) -> HoursResult:
    """The rollup rows of `hours` (all in one UTC day), from raw events (read only): one read of the
    visitors seen in them, one read of those visitors' events of the day (widened by the timeout)."""
    wanted = set(hours)
    days = {hour * HOUR_MS // DAY_MS for hour in wanted}
    if len(days) != 1:
        raise ValueError("compute_hours takes hours of one UTC day")
    timeout_ms = session_timeout * 1000
    window = _day_window(days.pop(), timeout_ms)
    first, last = min(wanted) * HOUR_MS, (max(wanted) + 1) * HOUR_MS
    visitors = sorted(
        int(v)
        for v in (
            await session.scalars(
                select(AnalyticsEvent.visitor_id)
                .where(
                    AnalyticsEvent.site_key == site_key, AnalyticsEvent.ts >= first, AnalyticsEvent.ts < last
                )
                .distinct()
            )
        ).all()
    )
    aggs: dict[int, dict[Key, Agg]] = {hour: {} for hour in wanted}
    visits: list[Visit] = []
    counts: dict[int, _HourCounts] = {hour: _HourCounts() for hour in wanted}
    hashes: dict[int, int] = {}
    fact_keys: dict[tuple[Any, ...], tuple[Key, ...]] = {}
    current: Visit | None = None  # a visitor's events may continue in the next part
    acquired: tuple[Key, ...] = ()
    pending: list[tuple[int, tuple[Key, ...], int, bool, int]] = []
    """The current visit's events in the hours (their keys wait for its exit page)."""

    def close_visit() -> None:
        if current is not None and pending:
            tail = (*acquired, (_EXIT, current.last_path))
            for hour, head, hashed, is_view, revenue in pending:
                counts[hour].add((*head, *tail), hashed, is_view=is_view, revenue=revenue)
        pending.clear()

    async for rows in _visitor_events(session, site_key, visitors, window):
        await asyncio.sleep(0)  # a part at a time: requests are served between them
        for raw in rows:
            visitor, ts, name = int(raw[0]), int(raw[1]), raw[2]
            is_view = name == PAGEVIEW
            if current is None or current.visitor_id != visitor or ts - current.end > timeout_ms:
                close_visit()
                event = dict(zip(_EVENT_COLUMNS, raw, strict=True))
                current = Visit(visitor, ts, ts, event, event["path"])
                visits.append(current)
                acquired = tuple((DIMS[dim], event[COLUMNS[dim]]) for dim in _ACQUISITION_ORDER)
            current.end, current.last_path = ts, raw[_PATH]
            if is_view:
                current.pageviews += 1
            else:
                current.events += 1
            hour = ts // HOUR_MS
            if hour not in wanted:
                continue
            facts = raw[_FACTS]
            keys_of_facts = fact_keys.get(facts)
            if keys_of_facts is None:
                keys_of_facts = fact_keys[facts] = tuple(zip(_FACT_DIMS, facts, strict=True))
            what = (_PAGES, raw[_PATH]) if is_view else (_EVENTS, name)
            hashed = hashes.get(visitor)
            if hashed is None:
                hashed = hashes[visitor] = visitor_hash(visitor)
            head = (_TOTAL_KEY, what, *keys_of_facts)
            revenue = int(raw[_REVENUE] or 0)
            if raw[_PROPS] or (revenue and raw[_CURRENCY]):
                head = (*head, *_goal_keys(name, raw[_PATH], revenue, raw[_CURRENCY], raw[_PROPS]))
            pending.append((hour, head, hashed, is_view, revenue))
    close_visit()
    for hour, hour_counts in counts.items():
        hour_counts.into(aggs[hour])
        await asyncio.sleep(0)
    for number, visit in enumerate(visits):
        if number % _PART_ROWS == 0:
            await asyncio.sleep(0)
        start_hour = visit.start // HOUR_MS
        if start_hour in wanted:
            by_key = aggs[start_hour]
            for key in _visit_keys(visit):
                agg = by_key.get(key)
                if agg is None:
                    agg = by_key[key] = Agg()
                agg.visits += 1
                agg.bounces += int(visit.bounce)
                agg.duration_ms += visit.end - visit.start
    for by_key in aggs.values():
        for agg in by_key.values():
            agg.sketch.compact()
        await asyncio.sleep(0)
    return HoursResult(aggs, visits, visitors, window)


async def _visitor_events(
    session: AsyncSession, site_key: int, visitors: Sequence[int], window: tuple[int, int]
) -> AsyncIterator[Sequence[tuple[Any, ...]]]:
    """The events of `visitors` in `window` (_EVENT_COLUMNS), by visitor then time, in parts: one read
    with every visitor in one `IN (...)` (the database scans the window by (site_key, ts) and keeps their
    rows: a busy hour's visitors are a twentieth of the day's, and 4x cheaper to compute from than the
    whole window passed through Python; one `IN` read per few hundred visitors would scan the window
    again each time); beyond _IN_LIMIT visitors, the whole window, the others' events skipped here."""
    # Core columns: an ORM-enabled select would pass every row through the ORM's loading
    events = _table(AnalyticsEvent)
    columns = [events.c[name] for name in _EVENT_COLUMNS]
    in_window = (
        events.c.site_key == site_key,
        events.c.ts >= window[0],
        events.c.ts < window[1],
    )
    order = (events.c.visitor_id, events.c.ts)
    if len(visitors) <= _IN_LIMIT:
        query = select(*columns).where(*in_window, events.c.visitor_id.in_(visitors)).order_by(*order)
        # read whole (their events only: a busy hour's are ~13,000 rows of the 10 M set): a server-side
        # cursor stays open on PostgreSQL until the transaction ends, and holds its partitions
        rows = (await session.execute(query)).all()
        for start in range(0, len(rows), _PART_ROWS):
            yield rows[start : start + _PART_ROWS]
        return
    wanted = set(visitors)
    found = await session.stream(select(*columns).where(*in_window).order_by(*order))
    async for part in found.partitions(_PART_ROWS):
        yield [row for row in part if row[0] in wanted]


class _HourCounts:
    """One hour's per-key counts as the events are read: C-level counters and one set of (key, visitor
    hash) pairs, turned into `Agg`s (with their sketches) once at the end."""

    __slots__ = ("customs", "pairs", "revenue", "views")

    def __init__(self) -> None:
        self.views: Counter[Key] = Counter()
        self.customs: Counter[Key] = Counter()
        self.revenue: Counter[Key] = Counter()
        self.pairs: set[tuple[Key, int]] = set()

    def add(self, keys: tuple[Key, ...], hashed: int, *, is_view: bool, revenue: int) -> None:
        (self.views if is_view else self.customs).update(keys)
        self.pairs.update(zip(keys, repeat(hashed)))
        if revenue:
            for key in keys:
                self.revenue[key] += revenue

    def into(self, aggs: dict[Key, Agg]) -> None:
        for key, hashed in self.pairs:
            agg = aggs.get(key)
            if agg is None:
                agg = aggs[key] = Agg()
            assert agg.sketch.exact is not None  # exact until compact()
            agg.sketch.exact.add(hashed)
        for key, count in self.views.items():
            aggs[key].pageviews = count
        for key, count in self.customs.items():
            aggs[key].events = count
        for key, revenue in self.revenue.items():
            aggs[key].revenue_micros = revenue


_TOTAL_KEY: Key = (TOTALS, "")
_PAGES, _EVENTS, _EXIT = DIMS["pages"], DIMS["events"], DIMS["exit_pages"]
_ACQUISITION_ORDER = tuple(name for name in DIMS if name in ACQUISITION)
_FACT_NAMES = ("countries", "regions", "cities", "devices", "browsers", "os")
_FACT_DIMS = tuple(DIMS[name] for name in _FACT_NAMES)
_FACTS = slice(
    _EVENT_COLUMNS.index(COLUMNS[_FACT_NAMES[0]]), _EVENT_COLUMNS.index(COLUMNS[_FACT_NAMES[-1]]) + 1
)
_PATH = _EVENT_COLUMNS.index("path")
_REVENUE = _EVENT_COLUMNS.index("revenue_micros")
_CURRENCY = _EVENT_COLUMNS.index("currency")
_PROPS = _EVENT_COLUMNS.index("props")


def _goal_keys(
    name: str, path: str, revenue: int, currency: str | None, props: dict[str, Any] | None
) -> list[Key]:
    """An event's PROP_KEYS, PROP_VALUES and REVENUE keys."""
    keys: list[Key] = []
    for prop, value in (props or {}).items():
        keys.append((PROP_KEYS, prop))
        keys.append((PROP_VALUES, prop_value(prop, str(value))))
    if revenue and currency:
        keys.append((REVENUE, revenue_value(currency, name, path)))
    return keys


def _visit_keys(visit: Visit) -> list[Key]:
    keys: list[Key] = [(TOTALS, "")]
    keys.extend((DIMS[name], visit.first[COLUMNS[name]]) for name in sorted(ACQUISITION))
    keys.append((_EXIT, visit.last_path))
    return keys


def _rows(site_key: int, bucket: int, aggs: dict[Key, Agg]) -> list[dict[str, Any]]:
    return [
        {
            "site_key": site_key,
            "dim": dim,
            "bucket": bucket,
            "value_hash": value_hash(value),
            "value": value,
            "visitors": agg.sketch.count(),
            "visits": agg.visits,
            "pageviews": agg.pageviews,
            "events": agg.events,
            "bounces": agg.bounces,
            "duration_ms": agg.duration_ms,
            "revenue_micros": agg.revenue_micros,
            "visitors_sketch": agg.sketch.to_text(),
        }
        for (dim, value), agg in aggs.items()
    ]


RollupTable = type[AnalyticsRollupHourly] | type[AnalyticsRollupDaily] | type[AnalyticsRollupMonthly]


async def read_rollups(
    session: AsyncSession,
    table: RollupTable,
    site_key: int,
    buckets: Sequence[int],
    dims: Sequence[int],
    *,
    prefix: str | None = None,
) -> dict[int, dict[Key, Agg]]:
    """The stored rows of `buckets`, by bucket; with `prefix`, only the values starting with it (exactly:
    MariaDB's LIKE ignores case)."""
    found: dict[int, dict[Key, Agg]] = defaultdict(dict)
    if not buckets:
        return found
    query = select(
        table.bucket,
        table.dim,
        table.value,
        table.visits,
        table.pageviews,
        table.events,
        table.bounces,
        table.duration_ms,
        table.revenue_micros,
        table.visitors_sketch,
    ).where(table.site_key == site_key, table.dim.in_(list(dims)), table.bucket.in_(list(buckets)))
    if prefix is not None:
        query = query.where(table.value.startswith(prefix, autoescape=True))
    for number, (bucket, dim, value, visits, views, customs, bounces, duration, revenue, sketch) in enumerate(
        (await session.execute(query)).all()
    ):
        if number % _PART_ROWS == _PART_ROWS - 1:
            await asyncio.sleep(0)  # a month of rows decoded in one piece held requests ~100 ms
        if prefix is not None and not (value or "").startswith(prefix):
            continue
        key: Key = (int(dim), "" if dim == TOTALS else value)
        found[int(bucket)][key] = Agg(
            Sketch.from_text(sketch),
            int(visits),
            int(views),
            int(customs),
            int(bounces),
            int(duration),
            int(revenue),
        )
    return found


def _table(model: RollupTable | type[AnalyticsSession] | type[AnalyticsEvent]) -> Table:
    """The Core table: an executemany of plain rows (several rows per INSERT), without the ORM's
    bulk-insert bookkeeping, which costs more than the rows' numbers do."""
    return cast(Table, model.__table__)


async def _replace(
    session: AsyncSession, table: RollupTable, site_key: int, bucket: int, aggs: dict[Key, Agg]
) -> None:
    await session.execute(delete(table).where(table.site_key == site_key, table.bucket == bucket))
    items = list(aggs.items())
    for start in range(0, len(items), _ROW_PARTS):
        part = dict(items[start : start + _ROW_PARTS])
        await execute_in_parts(session, insert(_table(table)), _rows(site_key, bucket, part))


async def store_hours(session: AsyncSession, site_key: int, result: HoursResult) -> set[int]:
    """Write the hours' rollup rows and their visitors' sessions; returns the other hours whose numbers
    changed with them: every hour of each visit that is not as it was (new, gone, longer, or its first
    event moved: a late event joining two visits), as its visit numbers or its events' acquisition
    values count there. A visit that merely continues from an earlier hour changes that hour once; the
    earlier hours' own visits are as they were, so the recompute stops there."""
    visit_key = tuple[int, int, int, int, int]
    old: set[visit_key] = set()
    # the days a visit starting in the window can start in (lets the primary key find the sessions)
    days = list(range(result.window[0] // DAY_MS, (result.window[1] - 1) // DAY_MS + 1))
    for chunk in _chunks(result.visitors):
        in_window = (
            AnalyticsSession.site_key == site_key,
            AnalyticsSession.day.in_(days),
            AnalyticsSession.visitor_id.in_(chunk),
            AnalyticsSession.start_ts >= result.window[0],
            AnalyticsSession.start_ts < result.window[1],
        )
        found = await session.execute(
            select(
                AnalyticsSession.visitor_id,
                AnalyticsSession.start_ts,
                AnalyticsSession.end_ts,
                AnalyticsSession.pageviews,
                AnalyticsSession.events,
            ).where(*in_window)
        )
        old.update(cast(visit_key, tuple(int(value) for value in row)) for row in found.all())
        await session.execute(delete(AnalyticsSession).where(*in_window))
    new = {(v.visitor_id, v.start, v.end, v.pageviews, v.events) for v in result.visits}
    touched = {
        hour
        for _visitor, start, end, _views, _events in old ^ new
        for hour in range(start // HOUR_MS, end // HOUR_MS + 1)
    }
    sessions = [
        {
            "site_key": site_key,
            "day": visit.start // DAY_MS,
            "visitor_id": visit.visitor_id,
            "start_ts": visit.start,
            "end_ts": visit.end,
            "pageviews": visit.pageviews,
            "events": visit.events,
            "entry_path": visit.first["path"],
            "exit_path": visit.last_path,
            **{name: visit.first[name] for name in _SESSION_DIMS},
        }
        for visit in result.visits
    ]
    await execute_in_parts(session, insert(_table(AnalyticsSession)), sessions)
    hours = sorted(result.aggs)
    await session.execute(
        delete(AnalyticsRollupHourly).where(
            AnalyticsRollupHourly.site_key == site_key, AnalyticsRollupHourly.bucket.in_(hours)
        )
    )
    rows = [row for hour in hours for row in _rows(site_key, hour, result.aggs[hour])]
    await execute_in_parts(session, insert(_table(AnalyticsRollupHourly)), rows)
    return touched - set(hours)


_SESSION_DIMS = (
    "source", "referrer_host", "utm_source", "utm_medium", "utm_campaign",
    "country", "device", "browser", "os",
)  # fmt: skip


def local_midnight(day: date, zone: zoneinfo.ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def day_number(day: date) -> int:
    return day.toordinal() - EPOCH_DAY


def month_number(day: date) -> int:
    return day.year * 12 + day.month - 1


def _hours_of(start: datetime, end: datetime) -> range:
    """The UTC hours starting within [start, end)."""
    start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    return range(-(-start_ms // HOUR_MS), -(-end_ms // HOUR_MS))


def local_day_of_hour(hour: int, zone: zoneinfo.ZoneInfo) -> date:
    return datetime.fromtimestamp(hour * 3600, UTC).astimezone(zone).date()


async def rebuild_day(session: AsyncSession, site_key: int, day: date, zone: zoneinfo.ZoneInfo) -> None:
    start, end = local_midnight(day, zone), local_midnight(day + timedelta(days=1), zone)
    hours = list(_hours_of(start, end))
    merged: dict[Key, Agg] = {}
    for aggs in (await read_rollups(session, AnalyticsRollupHourly, site_key, hours, ALL_DIMS)).values():
        merge_into(merged, aggs)
        await asyncio.sleep(0)
    await _replace(session, AnalyticsRollupDaily, site_key, day_number(day), merged)


async def rebuild_month(session: AsyncSession, site_key: int, first: date) -> None:
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    days = list(range(day_number(first), day_number(following)))
    merged: dict[Key, Agg] = {}
    for aggs in (await read_rollups(session, AnalyticsRollupDaily, site_key, days, ALL_DIMS)).values():
        merge_into(merged, aggs)
        await asyncio.sleep(0)
    await _replace(session, AnalyticsRollupMonthly, site_key, month_number(first), merged)


ALL_DIMS = (TOTALS, *DIMS.values(), *GOAL_DIMS)
"""Every dimension a bucket has rows of."""


async def dirty_hours(session: AsyncSession, site_key: int, first: int, last: int) -> set[int]:
    """The site's hours in [first, last) that have events not rolled up yet."""
    query = select(AnalyticsDirtyBucket.hour).where(
        AnalyticsDirtyBucket.site_key == site_key,
        AnalyticsDirtyBucket.hour >= first,
        AnalyticsDirtyBucket.hour < last,
    )
    return {int(hour) for hour in (await session.scalars(query)).all()}


async def rollup_epoch(session: AsyncSession) -> int:
    return int(
        await session.scalar(select(AnalyticsRollupCursor.epoch).where(AnalyticsRollupCursor.id == 1)) or 0
    )


@dataclass
class DrainReport:
    dirty: int = 0
    hours: int = 0
    days: int = 0
    months: int = 0


async def _lock_cursor(session: AsyncSession) -> AnalyticsRollupCursor:
    cursor = await session.scalar(
        select(AnalyticsRollupCursor).where(AnalyticsRollupCursor.id == 1).with_for_update()
    )
    if cursor is None:
        cursor = AnalyticsRollupCursor(id=1, epoch=0)
        session.add(cursor)
    return cursor


async def claim_dirty(session: AsyncSession, batch: int) -> list[tuple[int, int]]:
    """Take up to `batch` dirty (site, hour) marks (deleted here), and the rest of the last UTC day's
    marks of the sites claimed in it (a day is never split between two claims). Commit this before
    recomputing: a flush that stores more events for a claimed hour after the claim marks it dirty
    again, and the recompute (a later transaction, hence a later snapshot, also on MariaDB's REPEATABLE
    READ) sees at least every event stored before the claim."""
    await _lock_cursor(session)
    dirty = (
        await session.execute(
            select(AnalyticsDirtyBucket.site_key, AnalyticsDirtyBucket.hour)
            .order_by(AnalyticsDirtyBucket.hour, AnalyticsDirtyBucket.site_key)
            .limit(batch)
        )
    ).all()
    claimed = [(int(site_key), int(hour)) for site_key, hour in dirty]
    if len(claimed) == batch:
        claimed.extend(await _rest_of_last_day(session, claimed))
    by_site: dict[int, list[int]] = defaultdict(list)
    for site_key, hour in claimed:
        by_site[site_key].append(hour)
    for site_key, hours in by_site.items():
        for chunk in _chunks(hours):
            await session.execute(
                delete(AnalyticsDirtyBucket).where(
                    AnalyticsDirtyBucket.site_key == site_key, AnalyticsDirtyBucket.hour.in_(chunk)
                )
            )
    return claimed


async def _rest_of_last_day(
    session: AsyncSession, claimed: Sequence[tuple[int, int]]
) -> list[tuple[int, int]]:
    """The dirty hours of the claim's last UTC day that the batch limit cut off, for the sites it claimed
    hours of that day: a day is recomputed from one read of its events, and a day split across two batches
    would be read twice in each (its other hours are touched by visits crossing the split)."""
    last_day = claimed[-1][1] * HOUR_MS // DAY_MS
    first_hour = last_day * DAY_MS // HOUR_MS
    sites = {site_key for site_key, hour in claimed if hour >= first_hour}
    taken = set(claimed)
    rest = await session.execute(
        select(AnalyticsDirtyBucket.site_key, AnalyticsDirtyBucket.hour).where(
            AnalyticsDirtyBucket.site_key.in_(sorted(sites)),
            AnalyticsDirtyBucket.hour >= first_hour,
            AnalyticsDirtyBucket.hour < first_hour + DAY_MS // HOUR_MS,
        )
    )
    return sorted(
        {(int(site_key), int(hour)) for site_key, hour in rest.all()} - taken, key=lambda m: (m[1], m[0])
    )


async def mark_dirty(session: AsyncSession, marks: Sequence[tuple[int, int]]) -> None:
    """Put claimed marks back (a recompute that failed)."""
    for site_key, hour in marks:
        exists = await session.get(AnalyticsDirtyBucket, (site_key, hour))
        if exists is None:
            session.add(AnalyticsDirtyBucket(site_key=site_key, hour=hour))
    await session.flush()


async def recompute(
    session: AsyncSession,
    claimed: Sequence[tuple[int, int]],
    session_timeout: int,
    *,
    raw_floor: dict[int, int] | None = None,
) -> DrainReport:
    """Recompute claimed dirty hours (and the hours, days and months they touch), holding the cursor's
    row lock so two workers never rebuild the same day at once; bumps the rollup epoch.

    `raw_floor`: per site key, the first unix ms still inside raw retention; older dirty hours are dropped
    unrecomputed (their raw events are gone; recomputing would erase the rollups kept for them)."""
    report = DrainReport(dirty=len(claimed))
    cursor = await _lock_cursor(session)
    if not claimed:
        return report
    by_site: dict[int, list[int]] = defaultdict(list)
    for site_key, hour in claimed:
        by_site[site_key].append(hour)
    sites = {
        site.key: site
        for site in (
            await session.scalars(select(AnalyticsSite).where(AnalyticsSite.key.in_(list(by_site))))
        ).all()
    }
    for site_key, hours in by_site.items():
        site = sites.get(site_key)
        if site is None:
            continue
        zone = zoneinfo.ZoneInfo(site.timezone)
        floor_hour = -(-(raw_floor or {}).get(site_key, 0) // HOUR_MS)
        pending = {hour for hour in hours if hour >= floor_hour}
        done: set[int] = set()
        while pending:
            utc_day = max(pending) * HOUR_MS // DAY_MS
            group = {hour for hour in pending if hour * HOUR_MS // DAY_MS == utc_day}
            pending -= group
            while group:  # a late event may reshape visits starting in other hours of the day
                result = await compute_hours(session, site_key, group, session_timeout)
                touched = await store_hours(session, site_key, result)
                done |= group
                group = {h for h in touched if h * HOUR_MS // DAY_MS == utc_day and h >= floor_hour} - done
                pending |= {h for h in touched if h * HOUR_MS // DAY_MS != utc_day and h >= floor_hour} - done
        days = {local_day_of_hour(hour, zone) for hour in done}
        for day in sorted(days):
            await rebuild_day(session, site_key, day, zone)
        months = {day.replace(day=1) for day in days}
        for first in sorted(months):
            await rebuild_month(session, site_key, first)
        report.hours += len(done)
        report.days += len(days)
        report.months += len(months)
    cursor.epoch += 1
    await session.flush()
    return report


async def drain(
    session: AsyncSession, session_timeout: int, *, batch: int = 200, raw_floor: dict[int, int] | None = None
) -> DrainReport:
    """Claim and recompute in one transaction (SQLite, where writers are serialised anyway, and tests);
    the job uses claim_dirty and recompute in two."""
    claimed = await claim_dirty(session, batch)
    return await recompute(session, claimed, session_timeout, raw_floor=raw_floor)
