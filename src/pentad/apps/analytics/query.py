"""Dashboard statistics: the query planner over rollups (rollups.py) and the raw events.

A range is cut into closed months (monthly rollups), closed days (daily), closed hours (hourly) and the
open hour plus any hour still dirty (computed from raw events with rollups.compute_hours, the same code
that fills the rollups). The `raw_*` functions compute the same answers from raw events alone: the
reference the planner is tested against, and the fallback for time zones whose midnight is not on a UTC
hour (e.g. Asia/Kolkata), where hours do not add up to days.

The site-level functions at the end (`site_totals`, `site_timeseries`, `site_breakdown`, `site_goals`,
`site_props`, `site_funnel`: `(session, site, span, filters, options=...)`) are the documented interface
other parts (the dashboard, exports, shared links, the Stats API, reports) call: without filters they use
the planner; with filters, and for what rollups do not keep, the raw engine of filters.py within the raw
retention tier (else 422 `filter_needs_raw_data`).

A range is a preset (`day`, `7d`, `30d`, `month`, `6mo`, `12mo`) or `custom` with `from`/`to` dates, in
the site's time zone; `to` is inclusive. The interval of the time series is the hour for one day, the
month for 6 and 12 months, else the day. Visits: a visitor's events with gaps of at most
PENTAD_ANALYTICS__SESSION_TIMEOUT; a bounce is a visit of one pageview and no custom event; the visit
duration is from its first to its last event.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import zoneinfo
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

from sqlalchemy import ColumnElement, case, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.analytics import filters as raw
from pentad.apps.analytics import funnels, goals, pushdown, retention, rollups
from pentad.apps.analytics.hll import Sketch, StoredSketch
from pentad.apps.analytics.models import (
    AnalyticsEvent,
    AnalyticsFunnel,
    AnalyticsRollupDaily,
    AnalyticsRollupHourly,
    AnalyticsRollupMonthly,
    AnalyticsSite,
)
from pentad.apps.analytics.settings import AnalyticsSettings
from pentad.core.cache import Cache
from pentad.core.context import AppContext
from pentad.core.errors import BadRequest

if TYPE_CHECKING:
    from pentad.apps.analytics.store.base import EventStore

Period = Literal["day", "7d", "30d", "month", "6mo", "12mo", "custom"]
Interval = Literal["hour", "day", "month"]
PAGEVIEW = "pageview"
EARLIEST_DAY: Final = date(1970, 1, 2)
LATEST_DAY: Final = date(2199, 12, 31)
"""A custom range's bounds: any real traffic, with room to compare with the range before (no date
arithmetic overflows)."""
MAX_CUSTOM_DAYS = 731

DIMENSIONS = {
    name: getattr(AnalyticsEvent, "path" if column == "exit" else column)
    for name, column in rollups.COLUMNS.items()
}
"""Breakdown dimension → its event column (exit pages: the path, of a visit's last event)."""
Dimension = Literal[
    "pages",
    "entry_pages",
    "exit_pages",
    "sources",
    "referrers",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_content",
    "utm_term",
    "countries",
    "regions",
    "cities",
    "devices",
    "browsers",
    "os",
    "events",
]
"""Breakdown dimensions, in the dashboard's order (export.BREAKDOWN_PANELS); every one is in rollups.DIMS
(a test checks), so an unfiltered breakdown comes from rollups."""
NONE_LABELS = {"sources": "Direct / None", "referrers": "Direct / None"}
ACQUISITION = rollups.ACQUISITION - {"entry_pages"}
"""Dimensions of how a visit arrived: a visit counts under its first event's value (the later pages of a
visit have the site itself, or nothing, as referrer)."""


@dataclass(frozen=True)
class Range:
    period: str
    start: datetime
    """Inclusive, in the site's zone."""
    end: datetime
    """Exclusive, in the site's zone."""
    interval: Interval

    @property
    def start_ms(self) -> int:
        return int(self.start.timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return int(self.end.timestamp() * 1000)

    def buckets(self) -> list[datetime]:
        """The start of every interval of the range, in the site's zone."""
        found: list[datetime] = []
        current = self.start
        while current < self.end:
            found.append(current)
            current = _advance(current, self.interval)
        return found


def _local_midnight(day: date, zone: zoneinfo.ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def _advance(moment: datetime, interval: Interval) -> datetime:
    zone = moment.tzinfo
    assert isinstance(zone, zoneinfo.ZoneInfo)
    if interval == "hour":
        return (moment.astimezone(UTC) + timedelta(hours=1)).astimezone(zone)
    if interval == "day":
        return _local_midnight(moment.date() + timedelta(days=1), zone)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return datetime(year, month, 1, tzinfo=zone)


def _months_back(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


def resolve_range(
    period: str,
    timezone: str,
    *,
    start: date | None = None,
    end: date | None = None,
    now: datetime | None = None,
) -> Range:
    """The range a preset (or `custom` with `start`/`end`, inclusive) means today in the site's zone."""
    zone = zoneinfo.ZoneInfo(timezone)
    today = (now or datetime.now(UTC)).astimezone(zone).date()
    tomorrow = today + timedelta(days=1)
    interval: Interval = "day"
    if period == "day":
        first, last, interval = today, tomorrow, "hour"
    elif period in ("7d", "30d"):
        first, last = today - timedelta(days=int(period[:-1]) - 1), tomorrow
    elif period == "month":
        first, last = today.replace(day=1), tomorrow
    elif period in ("6mo", "12mo"):
        first, last, interval = _months_back(today, int(period[:-2]) - 1), tomorrow, "month"
    elif period == "custom":
        if start is None or end is None or end < start:
            raise BadRequest("A custom range needs `from` and `to` dates, `from` first.", code="bad_range")
        if (end - start).days >= MAX_CUSTOM_DAYS:
            raise BadRequest(f"A custom range is at most {MAX_CUSTOM_DAYS} days.", code="bad_range")
        if start < EARLIEST_DAY or end > LATEST_DAY:
            raise BadRequest(
                f"A custom range lies between {EARLIEST_DAY} and {LATEST_DAY}.", code="bad_range"
            )
        first, last = start, end + timedelta(days=1)
        interval = "hour" if last - first == timedelta(days=1) else "day"
    else:
        raise BadRequest("Unknown period.", code="bad_range")
    return Range(period, _local_midnight(first, zone), _local_midnight(last, zone), interval)


Comparison = Literal["previous", "year"]


def compare_range(span: Range, mode: str) -> Range:
    """The range to compare with: as many local days just before (`previous`), or the same dates a year
    earlier (`year`; 29 February becomes the 28th). Same interval, period `compare`."""
    zone = span.start.tzinfo
    assert isinstance(zone, zoneinfo.ZoneInfo)
    first, last = span.start.date(), span.end.date()
    if mode == "previous":
        length = last - first
        first, last = first - length, first
    elif mode == "year":
        first, last = _year_before(first), _year_before(last)
    else:
        raise BadRequest("Compare with `previous` or `year`.", code="bad_range")
    return Range("compare", _local_midnight(first, zone), _local_midnight(last, zone), span.interval)


def _year_before(day: date) -> date:
    return (
        day.replace(year=day.year - 1, day=28)
        if (day.month, day.day) == (2, 29)
        else day.replace(year=day.year - 1)
    )


def percent_change(now: float | None, before: float | None) -> float | None:
    """Change from `before` to `now` in percent (None when there is nothing to compare with)."""
    if now is None or before is None or before == 0:
        return None
    return round(100 * (now - before) / before, 1)


def _in_range(site_key: int, span: Range) -> list[ColumnElement[bool]]:
    return [
        AnalyticsEvent.site_key == site_key,
        AnalyticsEvent.ts >= span.start_ms,
        AnalyticsEvent.ts < span.end_ms,
    ]


@dataclass
class Totals:
    visitors: int = 0
    visits: int = 0
    pageviews: int = 0
    events: int = 0
    bounces: int = 0
    duration_ms: int = 0

    @property
    def bounce_rate(self) -> float | None:
        return round(100 * self.bounces / self.visits, 1) if self.visits else None

    @property
    def visit_duration(self) -> float | None:
        return round(self.duration_ms / 1000 / self.visits, 1) if self.visits else None

    @property
    def views_per_visit(self) -> float | None:
        return round(self.pageviews / self.visits, 2) if self.visits else None


async def raw_totals(session: AsyncSession, site_key: int, span: Range, session_timeout: int) -> Totals:
    """Top stats over the range: one pass over the range's events by visitor and time."""
    query = (
        select(AnalyticsEvent.visitor_id, AnalyticsEvent.ts, AnalyticsEvent.name)
        .where(*_in_range(site_key, span))
        .order_by(AnalyticsEvent.visitor_id, AnalyticsEvent.ts)
    )
    result = Totals()
    gap = session_timeout * 1000
    visitor: int | None = None
    last_ts = first_ts = 0
    views = customs = 0

    def close_visit() -> None:
        result.visits += 1
        result.duration_ms += last_ts - first_ts
        if views <= 1 and customs == 0:
            result.bounces += 1

    for row_visitor, ts, name in (await session.execute(query)).all():
        if row_visitor != visitor or ts - last_ts > gap:
            if visitor is not None:
                close_visit()
            if row_visitor != visitor:
                result.visitors += 1
            visitor, first_ts, views, customs = row_visitor, ts, 0, 0
        last_ts = ts
        if name == PAGEVIEW:
            views += 1
            result.pageviews += 1
        else:
            customs += 1
            result.events += 1
    if visitor is not None:
        close_visit()
    return result


@dataclass
class Point:
    start: datetime
    visitors: int
    pageviews: int


async def raw_timeseries(session: AsyncSession, site_key: int, span: Range) -> list[Point]:
    """Visitors and pageviews per interval. Read per UTC hour (distinct visitors per hour), then each
    hour is put in the site-local bucket it starts in."""
    hour = func.floor(AnalyticsEvent.ts / 3_600_000)
    query = (
        select(hour, AnalyticsEvent.visitor_id, func.sum(case((AnalyticsEvent.name == PAGEVIEW, 1), else_=0)))
        .where(*_in_range(site_key, span))
        .group_by(hour, AnalyticsEvent.visitor_id)
    )
    starts = span.buckets()
    edges = [int(start.timestamp() * 1000) for start in starts]
    visitors: dict[int, set[int]] = defaultdict(set)
    pageviews: dict[int, int] = defaultdict(int)
    for hour_number, visitor, views in (await session.execute(query)).all():
        index = bisect.bisect_right(edges, int(hour_number) * 3_600_000) - 1
        index = max(index, 0)
        visitors[index].add(int(visitor))
        pageviews[index] += int(views or 0)
    return [Point(start, len(visitors[index]), pageviews[index]) for index, start in enumerate(starts)]


@dataclass
class Row:
    value: str
    visitors: int
    pageviews: int
    events: int


async def raw_breakdown(
    session: AsyncSession,
    site_key: int,
    span: Range,
    dimension: str,
    *,
    limit: int = 10,
    session_timeout: int,
) -> list[Row]:
    """The top values of a dimension by visitors. Pages count pageviews only; `events` lists custom
    events by name; acquisition dimensions count whole visits under their first event's value."""
    if dimension in ACQUISITION or dimension in ("entry_pages", "exit_pages"):
        return await _visit_breakdown(session, site_key, span, dimension, limit, session_timeout)
    column = DIMENSIONS[dimension]
    conditions = _in_range(site_key, span)
    if dimension == "pages":
        conditions.append(AnalyticsEvent.name == PAGEVIEW)
    elif dimension == "events":
        conditions.append(AnalyticsEvent.name != PAGEVIEW)
    visitors = func.count(distinct(AnalyticsEvent.visitor_id))
    query = (
        select(
            column,
            visitors,
            func.sum(case((AnalyticsEvent.name == PAGEVIEW, 1), else_=0)),
            func.sum(case((AnalyticsEvent.name != PAGEVIEW, 1), else_=0)),
        )
        .where(*conditions)
        .group_by(column)
        .order_by(visitors.desc(), func.count().desc(), column.is_(None), column)
        .limit(limit)
    )
    label = NONE_LABELS.get(dimension, "(unknown)")
    return [
        Row(value if value is not None else label, int(count), int(views or 0), int(customs or 0))
        for value, count, views, customs in (await session.execute(query)).all()
    ]


async def _visit_breakdown(
    session: AsyncSession, site_key: int, span: Range, dimension: str, limit: int, session_timeout: int
) -> list[Row]:
    column = DIMENSIONS[dimension]
    query = (
        select(AnalyticsEvent.visitor_id, AnalyticsEvent.ts, AnalyticsEvent.name, column)
        .where(*_in_range(site_key, span))
        .order_by(AnalyticsEvent.visitor_id, AnalyticsEvent.ts)
    )
    gap = session_timeout * 1000
    exit_page = dimension == "exit_pages"
    visitors: dict[str | None, set[int]] = defaultdict(set)
    views: dict[str | None, int] = defaultdict(int)
    customs: dict[str | None, int] = defaultdict(int)
    visitor: int | None = None
    last_ts = 0
    value: str | None = None
    visit = [0, 0]  # the current visit's pageviews and custom events

    def close_visit() -> None:
        if visitor is not None:
            visitors[value].add(visitor)
            views[value] += visit[0]
            customs[value] += visit[1]
        visit[0] = visit[1] = 0

    for row_visitor, ts, name, row_value in (await session.execute(query)).all():
        if row_visitor != visitor or ts - last_ts > gap:
            close_visit()
            visitor, value = row_visitor, row_value
        if exit_page:
            value = row_value
        last_ts = ts
        visit[0 if name == PAGEVIEW else 1] += 1
    close_visit()
    label = NONE_LABELS.get(dimension, "(unknown)")
    ranked = sorted(visitors, key=lambda key: raw.rank(key, len(visitors[key]), views[key] + customs[key]))[
        :limit
    ]
    return [
        Row(key if key is not None else label, len(visitors[key]), views[key], customs[key]) for key in ranked
    ]


# ------------------------------------------------------------------ the planner over rollups

Tier = Literal["month", "day", "hour", "raw"]
_TIER_RANK = {"hour": 0, "day": 1, "month": 2}
_TABLES: dict[str, rollups.RollupTable] = {
    "hour": AnalyticsRollupHourly,
    "day": AnalyticsRollupDaily,
    "month": AnalyticsRollupMonthly,
}
CACHE_TTL = 3600.0
CACHE_FORMAT = 2
"""In every key: entries another version of the code wrote (a rolling deploy) are not read."""
RAW_CACHE_TTL = 60.0
"""How long the open and dirty hours' rows computed from raw events stay cached. Their key names the
newest event id, so a new event computes them again; the TTL bounds what a key cannot see (a batch that
commits after a later one, on another process)."""


@dataclass(frozen=True)
class Part:
    """One piece of a range: a stored rollup bucket of a tier, or an hour computed from raw events."""

    tier: Tier
    bucket: int
    start_ms: int


@dataclass(frozen=True)
class Planning:
    """What the planner needs besides the range: the clock, and the cache for closed parts (keyed by the
    site's version and the rollup epoch, so a rollup run or a site change invalidates them)."""

    now: datetime | None = None
    cache: Cache | None = None
    site_version: int = 0
    store: EventStore | None = None
    """Where to ask instead (store/: the ClickHouse store answers from its raw events); None: here."""


def plan(span: Range, now_ms: int, dirty: set[int], max_tier: Interval) -> list[Part] | None:
    """Cut a range into parts, largest closed tier first; None when its edges are not on UTC hours."""
    if span.start_ms % rollups.HOUR_MS or span.end_ms % rollups.HOUR_MS:
        return None
    open_hour = now_ms // rollups.HOUR_MS
    closed_end = open_hour * rollups.HOUR_MS
    rank = _TIER_RANK[max_tier]
    parts: list[Part] = []

    def clean(start_ms: int, end_ms: int) -> bool:
        return end_ms <= closed_end and not any(start_ms <= hour * rollups.HOUR_MS < end_ms for hour in dirty)

    cursor = span.start
    while cursor < span.end:
        cursor_ms = int(cursor.timestamp() * 1000)
        if cursor.hour == 0 and cursor.minute == 0:
            if rank >= 2 and cursor.day == 1:
                following = _advance(cursor, "month")
                if following <= span.end and clean(cursor_ms, int(following.timestamp() * 1000)):
                    parts.append(Part("month", rollups.month_number(cursor.date()), cursor_ms))
                    cursor = following
                    continue
            if rank >= 1:
                following = _advance(cursor, "day")
                if following <= span.end and clean(cursor_ms, int(following.timestamp() * 1000)):
                    parts.append(Part("day", rollups.day_number(cursor.date()), cursor_ms))
                    cursor = following
                    continue
        hour = cursor_ms // rollups.HOUR_MS
        if hour in dirty or hour == open_hour:
            parts.append(Part("raw", hour, cursor_ms))
        else:  # closed, or later than now (events from clocks ahead, rolled up already)
            parts.append(Part("hour", hour, cursor_ms))
        cursor = _advance(cursor, "hour")
    return parts


def _encode(found: dict[int, dict[rollups.Key, rollups.Agg]]) -> list[Any]:
    """JSON for the cache. Sketches keep their form (an exact set merged past EXACT_LIMIT stays exact),
    so a cached merge counts as the merge it stands for; their count is stored beside them."""
    return [
        [
            bucket,
            [
                [
                    dim,
                    value,
                    a.visits,
                    a.pageviews,
                    a.events,
                    a.bounces,
                    a.duration_ms,
                    a.revenue_micros,
                    a.sketch.to_text(compact=False),
                    a.sketch.count(),
                ]
                for (dim, value), a in aggs.items()
            ],
        ]
        for bucket, aggs in found.items()
    ]


def _decode(
    raw: list[Any], keep: Callable[[int, str | None], bool] | None = None, *, lazy: bool = False
) -> dict[int, dict[rollups.Key, rollups.Agg]]:
    """`_encode`'s rows back (with `keep`, only the (dim, value) rows it keeps; `lazy`: sketches decoded
    when first merged, their count read from the entry)."""

    def sketch(row: list[Any]) -> Sketch:
        return StoredSketch(row[8], int(row[9])) if lazy else Sketch.from_text(row[8])

    return {
        int(bucket): {
            (int(row[0]), row[1]): rollups.Agg(sketch(row), *map(int, row[2:8]))
            for row in rows
            if keep is None or keep(row[0], row[1])
        }
        for bucket, rows in raw
    }


def _stored_by_tier(parts: list[Part]) -> dict[str, list[int]]:
    return {tier: [p.bucket for p in parts if p.tier == tier] for tier in ("month", "day", "hour")}


async def _cached(
    session: AsyncSession,
    site_key: int,
    what: str,
    by_tier: dict[str, list[int]],
    dims: tuple[int, ...],
    planning: Planning,
    load: Callable[[], Awaitable[dict[int, dict[rollups.Key, rollups.Agg]]]],
    prefix: str | None = None,
    *,
    lazy: bool = False,
) -> dict[int, dict[rollups.Key, rollups.Agg]]:
    """`load()`, through the cache when there is one. The key names every stored bucket (a digest: a dirty
    hour inside a range leaves a gap, so first, last and count would not tell two ranges apart), the
    site's version and the rollup epoch (a rollup run or a site change invalidates the entry)."""
    if planning.cache is None or not any(by_tier.values()):
        return await load()

    async def encoded() -> list[Any]:
        return _encode(await load())

    epoch = await rollups.rollup_epoch(session)
    buckets = ";".join(f"{tier}:{','.join(map(str, found))}" for tier, found in by_tier.items())
    if prefix is not None:
        buckets += f";prefix:{prefix}"
    digest = hashlib.blake2b(buckets.encode(), digest_size=16).hexdigest()
    key = (
        f"analytics:rollup:{CACHE_FORMAT}:{what}:{site_key}:{planning.site_version}:{epoch}:{digest}:"
        f"{','.join(map(str, dims))}"
    )
    return _decode(await planning.cache.get_or_set(key, CACHE_TTL, encoded), lazy=lazy)


async def _raw_parts(
    session: AsyncSession,
    site_key: int,
    parts: list[Part],
    dims: tuple[int, ...],
    session_timeout: int,
    planning: Planning,
    prefix: str | None = None,
) -> list[tuple[int, dict[rollups.Key, rollups.Agg]]]:
    """The rows of `dims` (values starting with `prefix`) of the raw parts (the open hour, hours still
    dirty), from raw events, with their start (unix ms); through the cache when there is one
    (`_raw_hours_cached`)."""
    by_day: dict[int, list[int]] = defaultdict(list)
    for part in parts:
        if part.tier == "raw":
            by_day[part.bucket * rollups.HOUR_MS // rollups.DAY_MS].append(part.bucket)
    if not by_day:
        return []

    def keep(dim: int, value: str | None) -> bool:
        return dim in dims and (prefix is None or (value or "").startswith(prefix))

    found = None
    if planning.cache is not None:
        found = await _raw_hours_cached(session, site_key, by_day, dims, keep, session_timeout, planning)
    if found is None:  # no cache, or an entry already gone (evicted between the write and the read)
        computed = await _raw_hours(session, site_key, by_day, session_timeout)
        found = {
            hour: {key: agg for key, agg in aggs.items() if keep(*key)} for hour, aggs in computed.items()
        }
    return [(hour * rollups.HOUR_MS, aggs) for hour, aggs in found.items()]


async def _raw_hours(
    session: AsyncSession, site_key: int, by_day: dict[int, list[int]], session_timeout: int
) -> dict[int, dict[rollups.Key, rollups.Agg]]:
    """Every row of the hours (grouped by UTC day), by hour, from raw events (rollups.compute_hours)."""
    found: dict[int, dict[rollups.Key, rollups.Agg]] = {}
    for hours in by_day.values():
        found.update((await rollups.compute_hours(session, site_key, hours, session_timeout)).aggs)
    return found


async def _raw_hours_cached(
    session: AsyncSession,
    site_key: int,
    by_day: dict[int, list[int]],
    dims: tuple[int, ...],
    keep: Callable[[int, str | None], bool],
    session_timeout: int,
    planning: Planning,
) -> dict[int, dict[rollups.Key, rollups.Agg]] | None:
    """The rows `keep` keeps of the hours, by hour: every dimension computed at once (one single-flight
    loader) and cached a dimension an entry (RAW_CACHE_TTL) under the newest event's id and the rollup
    epoch, so the panels of one dashboard load share one computation, each decodes only its dimensions,
    and a new event or rollup run makes the next question compute again. None when an entry is gone."""
    cache = planning.cache
    assert cache is not None
    newest = await session.scalar(select(func.max(AnalyticsEvent.id)))
    epoch = await rollups.rollup_epoch(session)
    hours = ",".join(str(hour) for day in sorted(by_day) for hour in sorted(by_day[day]))
    base = (
        f"analytics:rollup:{CACHE_FORMAT}:raw:{site_key}:{planning.site_version}:{epoch}:{newest}:"
        f"{session_timeout}:{hashlib.blake2b(hours.encode(), digest_size=16).hexdigest()}"
    )
    keys = [f"{base}:{dim}" for dim in sorted(set(dims))]

    async def compute_every_dim() -> bool:
        by_dim: dict[int, dict[int, dict[rollups.Key, rollups.Agg]]] = {
            dim: defaultdict(dict) for dim in rollups.ALL_DIMS
        }
        for hour, aggs in (await _raw_hours(session, site_key, by_day, session_timeout)).items():
            for key, agg in aggs.items():
                by_dim[key[0]][hour][key] = agg
        for dim, by_hour in by_dim.items():
            await cache.set(f"{base}:{dim}", _encode(by_hour), RAW_CACHE_TTL)
        return True

    stored = await cache.get_many(keys)
    if any(entry is None for entry in stored):
        await cache.get_or_set(f"{base}:computed", RAW_CACHE_TTL, compute_every_dim)
        stored = await cache.get_many(keys)
        if any(entry is None for entry in stored):
            return None
    found: dict[int, dict[rollups.Key, rollups.Agg]] = defaultdict(dict)
    for entry in stored:
        for hour, aggs in _decode(entry, keep).items():
            found[hour].update(aggs)
    return found


async def _collect(
    session: AsyncSession,
    site_key: int,
    parts: list[Part],
    dims: tuple[int, ...],
    session_timeout: int,
    planning: Planning,
) -> list[tuple[int, dict[rollups.Key, rollups.Agg]]]:
    """Every part's rows of `dims`, with the part's start (unix ms)."""
    by_tier = _stored_by_tier(parts)

    async def load() -> dict[int, dict[rollups.Key, rollups.Agg]]:
        found: dict[int, dict[rollups.Key, rollups.Agg]] = {}
        for tier, buckets in by_tier.items():
            stored = await rollups.read_rollups(session, _TABLES[tier], site_key, buckets, dims)
            found.update((_TIER_RANK[tier] << 40 | bucket, aggs) for bucket, aggs in stored.items())
        return found

    stored = await _cached(session, site_key, "parts", by_tier, dims, planning, load)
    found = [
        (part.start_ms, stored.get(_TIER_RANK[part.tier] << 40 | part.bucket, {}))
        for part in parts
        if part.tier != "raw"
    ]
    found.extend(await _raw_parts(session, site_key, parts, dims, session_timeout, planning))
    return found


async def _merged(
    session: AsyncSession,
    site_key: int,
    parts: list[Part],
    dims: tuple[int, ...],
    session_timeout: int,
    planning: Planning,
    prefix: str | None = None,
) -> dict[rollups.Key, rollups.Agg]:
    """Every part's rows of `dims` (values starting with `prefix`) merged over the whole range. The merge
    of the stored (closed) parts is cached as one entry: a warm answer decodes one sketch per value
    instead of one per value and bucket."""
    by_tier = _stored_by_tier(parts)

    async def load() -> dict[int, dict[rollups.Key, rollups.Agg]]:
        merged: dict[rollups.Key, rollups.Agg] = {}
        for tier, buckets in by_tier.items():
            stored = await rollups.read_rollups(
                session, _TABLES[tier], site_key, buckets, dims, prefix=prefix
            )
            for aggs in stored.values():
                rollups.merge_into(merged, aggs)
        return {0: merged}

    cached = await _cached(session, site_key, "merged", by_tier, dims, planning, load, prefix, lazy=True)
    merged = cached.get(0, {})
    for _, aggs in await _raw_parts(session, site_key, parts, dims, session_timeout, planning, prefix):
        rollups.merge_into(merged, aggs)
    return merged


async def _parts(
    session: AsyncSession, site_key: int, span: Range, max_tier: Interval, now: datetime | None
) -> list[Part] | None:
    now_ms = int((now or datetime.now(UTC)).timestamp() * 1000)
    first = span.start_ms // rollups.HOUR_MS
    dirty = await rollups.dirty_hours(session, site_key, first, -(-span.end_ms // rollups.HOUR_MS))
    return plan(span, now_ms, dirty, max_tier)


async def totals(
    session: AsyncSession, site_key: int, span: Range, session_timeout: int, planning: Planning | None = None
) -> Totals:
    """Top stats over the range, from rollups and the open or dirty hours."""
    planning = planning or Planning()
    if planning.store is not None:
        return await planning.store.totals(session, site_key, span, session_timeout, planning)
    parts = await _parts(session, site_key, span, "month", planning.now)
    if parts is None:
        return await raw_totals(session, site_key, span, session_timeout)
    found = await _merged(session, site_key, parts, (rollups.TOTALS,), session_timeout, planning)
    merged = found.get((rollups.TOTALS, ""), rollups.Agg())
    return Totals(
        visitors=merged.sketch.count(),
        visits=merged.visits,
        pageviews=merged.pageviews,
        events=merged.events,
        bounces=merged.bounces,
        duration_ms=merged.duration_ms,
    )


async def timeseries(
    session: AsyncSession, site_key: int, span: Range, session_timeout: int, planning: Planning | None = None
) -> list[Point]:
    """Visitors and pageviews per interval, from rollups no coarser than the interval."""
    planning = planning or Planning()
    if planning.store is not None:
        return await planning.store.timeseries(session, site_key, span, session_timeout, planning)
    parts = await _parts(session, site_key, span, span.interval, planning.now)
    if parts is None:
        return await raw_timeseries(session, site_key, span)
    starts = span.buckets()
    edges = [int(start.timestamp() * 1000) for start in starts]
    merged = [rollups.Agg() for _ in starts]
    for start_ms, aggs in await _collect(
        session, site_key, parts, (rollups.TOTALS,), session_timeout, planning
    ):
        if (rollups.TOTALS, "") in aggs:
            index = max(bisect.bisect_right(edges, start_ms) - 1, 0)
            merged[index].merge(aggs[(rollups.TOTALS, "")])
    return [
        Point(start, agg.sketch.count(), agg.pageviews) for start, agg in zip(starts, merged, strict=True)
    ]


async def breakdown(
    session: AsyncSession,
    site_key: int,
    span: Range,
    dimension: str,
    *,
    limit: int = 10,
    session_timeout: int,
    planning: Planning | None = None,
) -> list[Row]:
    """The top values of a dimension by visitors, from rollups."""
    planning = planning or Planning()
    if planning.store is not None:
        return await planning.store.breakdown(
            session,
            site_key,
            span,
            dimension,
            limit=limit,
            session_timeout=session_timeout,
            planning=planning,
        )
    parts = await _parts(session, site_key, span, "month", planning.now)
    if parts is None:
        return await raw_breakdown(
            session, site_key, span, dimension, limit=limit, session_timeout=session_timeout
        )
    dim = rollups.DIMS[dimension]
    merged = await _merged(session, site_key, parts, (dim,), session_timeout, planning)
    counted = [(value, agg.sketch.count(), agg) for (_, value), agg in merged.items()]
    counted.sort(key=lambda item: raw.rank(item[0], item[1], item[2].pageviews + item[2].events))
    label = NONE_LABELS.get(dimension, "(unknown)")
    return [
        Row(value if value is not None else label, count, agg.pageviews, agg.events)
        for value, count, agg in counted[:limit]
    ]


async def conversions(
    session: AsyncSession,
    site_key: int,
    span: Range,
    rules: Sequence[goals.GoalRule],
    session_timeout: int,
    planning: Planning,
) -> list[goals.Conversion] | None:
    """Every goal's conversions over the range, from rollups; None when the range's edges are not on
    UTC hours (raw events answer then)."""
    parts = await _parts(session, site_key, span, "month", planning.now)
    if parts is None:
        return None
    merged = await _merged(session, site_key, parts, goals.ROLLUP_DIMS, session_timeout, planning)
    return goals.rolled_up_conversions(rules, merged)


@dataclass(frozen=True)
class PropRow:
    value: str
    visitors: int
    events: int


async def properties(
    session: AsyncSession,
    site_key: int,
    span: Range,
    key: str | None,
    session_timeout: int,
    planning: Planning,
    *,
    limit: int,
) -> list[PropRow] | None:
    """Custom property names (key None) or one property's values, ranked as breakdowns are, from
    rollups; None when the range's edges are not on UTC hours."""
    parts = await _parts(session, site_key, span, "month", planning.now)
    if parts is None:
        return None
    dim, prefix = (
        (rollups.PROP_KEYS, None) if key is None else (rollups.PROP_VALUES, rollups.prop_prefix(key))
    )
    merged = await _merged(session, site_key, parts, (dim,), session_timeout, planning, prefix)
    counted = [
        (value if prefix is None else json.loads(value or "[]")[1], agg.sketch.count(), agg)
        for (_, value), agg in merged.items()
    ]
    counted.sort(key=lambda item: raw.rank(item[0], item[1], item[2].pageviews + item[2].events))
    return [PropRow(value or "", count, agg.pageviews + agg.events) for value, count, agg in counted[:limit]]


# ------------------------------------------------------------------ the site-level interface


@dataclass(frozen=True)
class Options:
    """What the site-level functions need besides the site and range: the visit timeout, the server's
    default retention tiers, and the planner's clock and cache (`options_for` builds them)."""

    session_timeout: int = 1800
    default_tiers: Mapping[str, str] = field(default_factory=lambda: dict(retention.DEFAULT))
    planning: Planning = Planning()
    pushdown: bool = True
    """Filtered answers computed by the database (pushdown.py) where it can; False: by filters.py in
    Python (the reference the SQL is tested against)."""


def options_for(
    context: AppContext, site: AnalyticsSite, now: datetime | None = None, store: EventStore | None = None
) -> Options:
    """`store`: the deployment's events store when it is not this database (store.external_store)."""
    settings = context.app_settings(AnalyticsSettings)
    return Options(
        session_timeout=settings.session_timeout,
        default_tiers=settings.default_tiers,
        planning=Planning(now=now, cache=context.cache, site_version=site.version, store=store),
    )


async def raw_selection(
    session: AsyncSession,
    site: AnalyticsSite,
    span: Range,
    filters: Sequence[raw.Filter],
    options: Options,
    rules: Sequence[goals.GoalRule] | None = None,
    columns: Sequence[str] = (),
) -> raw.Selection:
    """The range's visits from raw events with the filters applied, reading the base columns, the
    filters' and `columns`; 422 `filter_needs_raw_data` when the raw tier no longer covers the range."""
    if options.planning.store is not None:
        raise BadRequest(
            "This deployment keeps raw events in ClickHouse, which answers this question itself.",
            status=422,
            code="store_cannot_answer",
        )
    _ensure_raw(site, span, options)
    if rules is None:
        rules = await site_goal_rules(session, site) if any(f.dimension == "goal" for f in filters) else []
    visits = await raw.load_visits(
        session,
        site.key,
        span.start_ms,
        span.end_ms,
        options.session_timeout,
        filters,
        raw.needed_columns(filters, columns),
    )
    return raw.select_visits(visits, filters, rules)


async def site_goal_rules(session: AsyncSession, site: AnalyticsSite) -> list[goals.GoalRule]:
    return [goals.rule_of(goal) for goal in await goals.list_goals(session, site.id)]


def _ensure_raw(site: AnalyticsSite, span: Range, options: Options) -> None:
    """422 `filter_needs_raw_data` when the site's raw tier no longer covers the range."""
    tiers = retention.effective(site.retention, options.default_tiers)
    retention.ensure_raw_available(span.start_ms, tiers, options.planning.now)


async def _filter_rules(
    session: AsyncSession, site: AnalyticsSite, filters: Sequence[raw.Filter]
) -> list[goals.GoalRule]:
    return await site_goal_rules(session, site) if any(f.dimension == "goal" for f in filters) else []


def _in_sql(session: AsyncSession, filters: Sequence[raw.Filter], options: Options) -> bool:
    """Whether the database answers a filtered question itself (pushdown.py)."""
    return (
        options.planning.store is None
        and options.pushdown
        and pushdown.supported(filters, pushdown.dialect_of(session))
    )


def _external(options: Options) -> EventStore | None:
    return options.planning.store


async def site_totals(
    session: AsyncSession,
    site: AnalyticsSite,
    span: Range,
    filters: Sequence[raw.Filter] = (),
    options: Options | None = None,
) -> Totals:
    """Top stats over the range (rollups when unfiltered, raw events with filters)."""
    options = options or Options()
    if not filters:
        return await totals(session, site.key, span, options.session_timeout, options.planning)
    external = _external(options)
    if external is not None:
        _ensure_raw(site, span, options)
        rules = await _filter_rules(session, site, filters)
        return await external.filtered_totals(site.key, span, options.session_timeout, filters, rules)
    if _in_sql(session, filters, options):
        _ensure_raw(site, span, options)
        rules = await _filter_rules(session, site, filters)
        found = await pushdown.totals(
            session, site.key, span.start_ms, span.end_ms, options.session_timeout, filters, rules
        )
        return Totals(
            visitors=found.visitors,
            visits=found.visits,
            pageviews=found.pageviews,
            events=found.events,
            bounces=found.bounces,
            duration_ms=found.duration_ms,
        )
    counts = raw.totals_of(await raw_selection(session, site, span, filters, options))
    return Totals(
        visitors=counts.visitors,
        visits=counts.visits,
        pageviews=counts.pageviews,
        events=counts.events,
        bounces=counts.bounces,
        duration_ms=counts.duration_ms,
    )


async def site_timeseries(
    session: AsyncSession,
    site: AnalyticsSite,
    span: Range,
    filters: Sequence[raw.Filter] = (),
    options: Options | None = None,
) -> list[Point]:
    """Visitors and pageviews per interval of the range."""
    options = options or Options()
    if not filters:
        return await timeseries(session, site.key, span, options.session_timeout, options.planning)
    starts = span.buckets()
    edges = [int(start.timestamp() * 1000) for start in starts]
    external = _external(options)
    if external is not None:
        _ensure_raw(site, span, options)
        rules = await _filter_rules(session, site, filters)
        found = await external.filtered_timeseries(
            site.key, span, options.session_timeout, filters, rules, edges
        )
    elif _in_sql(session, filters, options):
        _ensure_raw(site, span, options)
        rules = await _filter_rules(session, site, filters)
        found = await pushdown.timeseries(
            session, site.key, span.start_ms, span.end_ms, options.session_timeout, filters, rules, edges
        )
    else:
        found = raw.timeseries_of(await raw_selection(session, site, span, filters, options), edges)
    return [Point(start, visitors, views) for start, (visitors, views) in zip(starts, found, strict=True)]


async def site_breakdown(
    session: AsyncSession,
    site: AnalyticsSite,
    span: Range,
    dimension: str,
    filters: Sequence[raw.Filter] = (),
    options: Options | None = None,
    *,
    limit: int = 10,
) -> list[Row]:
    """The top values of a dimension (query.Dimension) by visitors."""
    options = options or Options()
    # Unfiltered: rollups, or the deployment's events store, which answers the raw-only dimensions too.
    if not filters and (dimension in rollups.DIMS or options.planning.store is not None):
        return await breakdown(
            session,
            site.key,
            span,
            dimension,
            limit=limit,
            session_timeout=options.session_timeout,
            planning=options.planning,
        )
    label = NONE_LABELS.get(dimension, "(unknown)")
    external = _external(options)
    if external is not None or _in_sql(session, filters, options):
        _ensure_raw(site, span, options)
        rules = await _filter_rules(session, site, filters)
        if external is not None:
            groups = await external.filtered_breakdown(
                site.key, span, options.session_timeout, filters, rules, dimension, limit
            )
        else:
            groups = await pushdown.breakdown(
                session,
                site.key,
                span.start_ms,
                span.end_ms,
                options.session_timeout,
                filters,
                rules,
                dimension,
                limit,
            )
        return [
            Row(
                group.value if group.value is not None else label,
                group.visitors,
                group.pageviews,
                group.events,
            )
            for group in groups
        ]
    column = raw.BREAKDOWNS[dimension][1]
    selection = await raw_selection(session, site, span, filters, options, columns=[column])
    found = raw.breakdown_of(selection, dimension)
    return [
        Row(value if value is not None else label, len(bucket.visitors), bucket.pageviews, bucket.events)
        for value, bucket in raw.ranked(found, limit)
    ]


async def site_goals(
    session: AsyncSession,
    site: AnalyticsSite,
    span: Range,
    filters: Sequence[raw.Filter] = (),
    options: Options | None = None,
) -> list[goals.Conversion]:
    """Every goal of the site with its conversions over the range (rollups when unfiltered, raw events
    with filters)."""
    options = options or Options()
    rules = await site_goal_rules(session, site)
    external = _external(options)
    if not filters and external is None:
        rolled = await conversions(session, site.key, span, rules, options.session_timeout, options.planning)
        if rolled is not None:
            return rolled
    if external is not None or _in_sql(session, filters, options):
        _ensure_raw(site, span, options)
        if external is not None:
            visitors, counts = await external.filtered_goals(
                site.key, span, options.session_timeout, filters, rules
            )
        else:
            args = (session, site.key, span.start_ms, span.end_ms, options.session_timeout, filters, rules)
            counts = await pushdown.goals(*args)
            visitors = await pushdown.visitors(*args)
        return [
            goals.Conversion(
                goal_id=rule.id,
                name=rule.name,
                visitors=count.visitors,
                completions=count.completions,
                conversion_rate=goals.conversion_rate(count.visitors, visitors),
                revenue_micros=count.revenue_micros if rule.currency else None,
                currency=rule.currency,
            )
            for rule, count in zip(rules, counts, strict=True)
        ]
    selection = await raw_selection(
        session, site, span, filters, options, rules, ["revenue_micros", "currency"]
    )
    pairs = zip((visit.visitor_id for visit in selection.visits), selection.counted, strict=True)
    return goals.conversions_of(rules, selection.visitors, pairs)


async def site_props(
    session: AsyncSession,
    site: AnalyticsSite,
    span: Range,
    filters: Sequence[raw.Filter] = (),
    options: Options | None = None,
    *,
    key: str | None = None,
    limit: int = 10,
) -> list[PropRow]:
    """Custom event properties: the keys (key None), or one key's values, with the visitors and events
    that carried them."""
    options = options or Options()
    external = options.planning.store
    if not filters and external is not None:
        return [PropRow(*row) for row in await external.props(site.key, span, key, limit=limit)]
    if not filters:
        rolled = await properties(
            session, site.key, span, key, options.session_timeout, options.planning, limit=limit
        )
        if rolled is not None:
            return rolled
    if external is not None:
        _ensure_raw(site, span, options)
        rules = await _filter_rules(session, site, filters)
        stored = await external.filtered_props(
            site.key, span, options.session_timeout, filters, rules, key, limit
        )
        return [PropRow(*row) for row in stored]
    found = raw.props_of(await raw_selection(session, site, span, filters, options, columns=["props"]), key)
    return [
        PropRow(str(value), len(bucket.visitors), bucket.events + bucket.pageviews)
        for value, bucket in raw.ranked(found, limit)
    ]


async def site_funnel(
    session: AsyncSession,
    site: AnalyticsSite,
    span: Range,
    funnel: AnalyticsFunnel,
    filters: Sequence[raw.Filter] = (),
    options: Options | None = None,
) -> tuple[int, list[funnels.StepResult]]:
    """(units in the range, per-step results) of a funnel of the site."""
    options = options or Options()
    rules = await site_goal_rules(session, site)
    steps = funnels.compile_steps(funnel, rules)
    external = _external(options)
    if external is not None:
        _ensure_raw(site, span, options)
        units, reached = await external.filtered_funnel(
            site.key, span, options.session_timeout, filters, rules, steps, funnel.scope
        )
        return units, funnels.results(steps, units, reached)
    selection = await raw_selection(session, site, span, filters, options, rules)
    return funnels.report(selection, steps, funnel.scope)
