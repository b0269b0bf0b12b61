"""Filters on every dimension, and the raw-event engine that answers what rollups cannot.

A filter is `<dimension>:<operator>:<value>` (the API's repeatable `filter` parameter; several filters
all apply). Operators: `is`, `is_not`, `contains` (case-insensitive substring). Dimensions:

- of a visit (its first event, or its last page for `exit_page`): `entry_page`, `exit_page`, `source`,
  `referrer`, `utm_source`, `utm_medium`, `utm_campaign`, `utm_content`, `utm_term`, `country`,
  `region`, `city`, `device`, `browser`, `os`;
- of an event: `page` (the event's path), `event` (a custom event's name), `goal` (a goal's name: the
  event completes it), `prop.<key>` (a custom property's value).

A visit is kept when every filter matches it: a visit dimension by its value; an event dimension when one
of its events matches (`is_not`: when none does). In the kept visits, the events counted (pageviews,
custom events, revenue, the event panels) are those matching every `is`/`contains` event filter; visits,
bounces and duration are the kept visits'. `(none)` as a value means "not set".

Rollups hold none of this, so filtered questions, and funnels (which rollups do not keep), are answered
from raw events
— only over ranges the raw tier still keeps (`retention.ensure_raw_available`, else 422
`filter_needs_raw_data`). One read of the range's events, by visitor and time; filters on a visitor's
own facts (country, region, city, device, browser, OS — the daily visitor id is a hash of the address
and agent, so they do not change within it) narrow that read in SQL.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.analytics.goals import GoalRule
from pentad.apps.analytics.models import AnalyticsEvent
from pentad.core.errors import BadRequest

Operator = Literal["is", "is_not", "contains"]
OPERATORS: Final = ("is", "is_not", "contains")
NONE_VALUE: Final = "(none)"
MAX_FILTERS: Final = 20

VISIT_DIMENSIONS: Final = {
    "entry_page": "path",
    "exit_page": "exit",
    "source": "source",
    "referrer": "referrer_host",
    "utm_source": "utm_source",
    "utm_medium": "utm_medium",
    "utm_campaign": "utm_campaign",
    "utm_content": "utm_content",
    "utm_term": "utm_term",
    "country": "country",
    "region": "region",
    "city": "city",
    "device": "device",
    "browser": "browser",
    "os": "os",
}
"""Filter dimension → the visit's value (a column of its first event, or `exit`: its last page)."""
VISITOR_FACTS: Final = frozenset({"country", "region", "city", "device", "browser", "os"})
EVENT_DIMENSIONS: Final = frozenset({"page", "event", "goal"})
PROP_PREFIX: Final = "prop."
COLUMNS: Final = (
    "visitor_id",
    "ts",
    "name",
    "path",
    "referrer_host",
    "source",
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
    "os",
    "props",
    "revenue_micros",
    "currency",
)
PAGEVIEW: Final = "pageview"
BASE_COLUMNS: Final = ("visitor_id", "ts", "name", "path")
"""Read for every question; the others only when a filter or a panel needs them (a narrower read of
the range is most of the time saved)."""


@dataclass(frozen=True)
class Filter:
    dimension: str
    operator: Operator
    value: str

    @property
    def on_visit(self) -> bool:
        return self.dimension in VISIT_DIMENSIONS

    def text(self) -> str:
        return f"{self.dimension}:{self.operator}:{self.value}"

    def test(self, value: str | None) -> bool:
        """Whether `value` (None: not set) passes an `is`/`contains` comparison (`is_not` negates it)."""
        if self.operator == "contains":
            return value is not None and self.value.lower() in value.lower()
        if self.value == NONE_VALUE:
            return value is None
        return value == self.value


def parse_filter(text: str) -> Filter:
    """`dimension:operator:value` (the value may contain `:`); 400 `bad_filter` otherwise."""
    dimension, _, rest = text.partition(":")
    operator, sep, value = rest.partition(":")
    known = dimension in VISIT_DIMENSIONS or dimension in EVENT_DIMENSIONS
    if dimension.startswith(PROP_PREFIX) and 0 < len(dimension) - len(PROP_PREFIX) <= 300:
        known = True
    if not known:
        raise BadRequest(
            f"Unknown filter dimension {dimension[:40]!r}: filter on "
            f"{', '.join([*VISIT_DIMENSIONS, *sorted(EVENT_DIMENSIONS)])} or prop.<key>.",
            code="bad_filter",
        )
    if not sep or operator not in OPERATORS:
        raise BadRequest(
            "A filter is dimension:operator:value with operator is, is_not or contains.", code="bad_filter"
        )
    if not value or len(value) > 2000:
        raise BadRequest("A filter's value is 1 to 2,000 characters.", code="bad_filter")
    return Filter(dimension, operator, value)  # type: ignore[arg-type]


def needed_columns(filters: Iterable[Filter], extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The raw columns a question reads: the base ones, the filters' and `extra`."""
    wanted = set(BASE_COLUMNS) | set(extra)
    for check in filters:
        if check.on_visit:
            wanted.add(VISIT_DIMENSIONS[check.dimension])
        elif check.dimension.startswith(PROP_PREFIX):
            wanted.add("props")
    return tuple(name for name in COLUMNS if name in wanted)


def parse_filters(texts: Iterable[str]) -> tuple[Filter, ...]:
    found = tuple(parse_filter(text) for text in texts)
    if len(found) > MAX_FILTERS:
        raise BadRequest(f"At most {MAX_FILTERS} filters.", code="bad_filter")
    return found


# ------------------------------------------------------------------ visits from raw events


@dataclass
class RawVisit:
    """One visit (gaps of at most the session timeout) of one visitor, with its events in time order."""

    visitor_id: int
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def first(self) -> dict[str, Any]:
        return self.events[0]

    @property
    def start(self) -> int:
        return int(self.events[0]["ts"])

    @property
    def end(self) -> int:
        return int(self.events[-1]["ts"])

    @property
    def pageviews(self) -> int:
        return sum(1 for event in self.events if event["name"] == PAGEVIEW)

    @property
    def bounce(self) -> bool:
        return self.pageviews <= 1 and len(self.events) == self.pageviews

    def value(self, column: str) -> str | None:
        if column == "exit":
            return str(self.events[-1]["path"])
        found = self.first[column]
        return None if found is None else str(found)


def event_value(event: dict[str, Any], dimension: str, goals: Sequence[GoalRule]) -> list[str | None]:
    """The values an event has for an event dimension (a goal dimension: the names of the goals it
    completes)."""
    if dimension == "page":
        return [event["path"]]
    if dimension == "event":
        return [event["name"] if event["name"] != PAGEVIEW else None]
    if dimension == "goal":
        return [rule.name for rule in goals if rule.matches(event["name"], event["path"])] or [None]
    props = event.get("props") or {}
    return [props.get(dimension[len(PROP_PREFIX) :])]


def _event_passes(event: dict[str, Any], check: Filter, goals: Sequence[GoalRule]) -> bool:
    return any(check.test(value) for value in event_value(event, check.dimension, goals))


@dataclass
class Selection:
    """The kept visits of a range, and which of their events count."""

    visits: list[RawVisit]
    counted: list[list[dict[str, Any]]]
    """Per kept visit, its counted events."""

    @property
    def visitors(self) -> int:
        return len({visit.visitor_id for visit in self.visits})


def select_visits(
    visits: Iterable[RawVisit], filters: Sequence[Filter], goals: Sequence[GoalRule]
) -> Selection:
    """Apply the filters (see the module text)."""
    kept: list[RawVisit] = []
    counted: list[list[dict[str, Any]]] = []
    narrowing = [f for f in filters if not f.on_visit and f.operator != "is_not"]
    for visit in visits:
        keep = True
        for check in filters:
            if check.on_visit:
                passed = check.test(visit.value(VISIT_DIMENSIONS[check.dimension]))
            else:
                passed = any(_event_passes(event, check, goals) for event in visit.events)
            if passed == (check.operator == "is_not"):
                keep = False
                break
        if not keep:
            continue
        kept.append(visit)
        counted.append(
            [e for e in visit.events if all(_event_passes(e, check, goals) for check in narrowing)]
        )
    return Selection(kept, counted)


async def load_visits(
    session: AsyncSession,
    site_key: int,
    start_ms: int,
    end_ms: int,
    session_timeout: int,
    filters: Sequence[Filter] = (),
    columns: Sequence[str] = COLUMNS,
) -> list[RawVisit]:
    """The visits of the range's events (a visit begun before the range starts at its first event in
    the range, as the raw reference answers count it), each event a dict of `columns` (needed_columns:
    the base ones and what the filters and the question read)."""
    conditions = [
        AnalyticsEvent.site_key == site_key,
        AnalyticsEvent.ts >= start_ms,
        AnalyticsEvent.ts < end_ms,
    ]
    for check in filters:
        if check.dimension in VISITOR_FACTS and check.operator == "is" and check.value != NONE_VALUE:
            conditions.append(getattr(AnalyticsEvent, check.dimension) == check.value)
    read = [getattr(AnalyticsEvent, name) for name in columns]
    query = select(*read).where(*conditions).order_by(AnalyticsEvent.visitor_id, AnalyticsEvent.ts)
    gap = session_timeout * 1000
    visits: list[RawVisit] = []
    current: RawVisit | None = None
    for raw in (await session.execute(query)).all():
        event = dict(zip(columns, raw, strict=True))
        visitor, ts = int(event["visitor_id"]), int(event["ts"])
        if current is None or current.visitor_id != visitor or ts - current.end > gap:
            current = RawVisit(visitor)
            visits.append(current)
        current.events.append(event)
    return visits


# ------------------------------------------------------------------ answers over a selection


@dataclass
class Counts:
    visitors: int = 0
    visits: int = 0
    pageviews: int = 0
    events: int = 0
    bounces: int = 0
    duration_ms: int = 0


def totals_of(selection: Selection) -> Counts:
    counts = Counts(visitors=selection.visitors, visits=len(selection.visits))
    for visit, events in zip(selection.visits, selection.counted, strict=True):
        counts.bounces += int(visit.bounce)
        counts.duration_ms += visit.end - visit.start
        for event in events:
            if event["name"] == PAGEVIEW:
                counts.pageviews += 1
            else:
                counts.events += 1
    return counts


def timeseries_of(selection: Selection, edges: Sequence[int]) -> list[tuple[int, int]]:
    """(visitors, pageviews) per interval starting at each of `edges` (unix ms, ascending)."""
    visitors: list[set[int]] = [set() for _ in edges]
    pageviews = [0] * len(edges)
    for visit, events in zip(selection.visits, selection.counted, strict=True):
        for event in events:
            index = max(bisect.bisect_right(edges, int(event["ts"])) - 1, 0)
            visitors[index].add(visit.visitor_id)
            pageviews[index] += int(event["name"] == PAGEVIEW)
    return [(len(seen), views) for seen, views in zip(visitors, pageviews, strict=True)]


BREAKDOWNS: Final = {
    "pages": ("event", "path"),
    "entry_pages": ("visit", "path"),
    "exit_pages": ("visit", "exit"),
    "sources": ("visit", "source"),
    "referrers": ("visit", "referrer_host"),
    "utm_source": ("visit", "utm_source"),
    "utm_medium": ("visit", "utm_medium"),
    "utm_campaign": ("visit", "utm_campaign"),
    "utm_content": ("visit", "utm_content"),
    "utm_term": ("visit", "utm_term"),
    "countries": ("event", "country"),
    "regions": ("event", "region"),
    "cities": ("event", "city"),
    "devices": ("event", "device"),
    "browsers": ("event", "browser"),
    "os": ("event", "os"),
    "events": ("event", "name"),
}
"""Breakdown dimension → (counted per visit or per event, column)."""
BREAKDOWN_FILTER: Final = {
    "pages": "page",
    "entry_pages": "entry_page",
    "exit_pages": "exit_page",
    "sources": "source",
    "referrers": "referrer",
    "utm_source": "utm_source",
    "utm_medium": "utm_medium",
    "utm_campaign": "utm_campaign",
    "utm_content": "utm_content",
    "utm_term": "utm_term",
    "countries": "country",
    "regions": "region",
    "cities": "city",
    "devices": "device",
    "browsers": "browser",
    "os": "os",
    "events": "event",
}
"""The filter a row of each breakdown adds when clicked (the dashboard's chips)."""


@dataclass
class Bucket:
    visitors: set[int] = field(default_factory=set)
    visits: int = 0
    pageviews: int = 0
    events: int = 0


def breakdown_of(selection: Selection, dimension: str) -> dict[str | None, Bucket]:
    """Every value of a breakdown dimension with its numbers (unsorted)."""
    per, column = BREAKDOWNS[dimension]
    found: dict[str | None, Bucket] = defaultdict(Bucket)
    for visit, events in zip(selection.visits, selection.counted, strict=True):
        if per == "visit":
            bucket = found[visit.value(column)]
            bucket.visitors.add(visit.visitor_id)
            bucket.visits += 1
            for event in events:
                _count(bucket, event)
            continue
        seen: set[str | None] = set()
        for event in events:
            if dimension == "pages" and event["name"] != PAGEVIEW:
                continue
            if dimension == "events" and event["name"] == PAGEVIEW:
                continue
            value = event[column]
            bucket = found[value]
            bucket.visitors.add(visit.visitor_id)
            if value not in seen:
                seen.add(value)
                bucket.visits += 1
            _count(bucket, event)
    return found


def _count(bucket: Bucket, event: dict[str, Any]) -> None:
    if event["name"] == PAGEVIEW:
        bucket.pageviews += 1
    else:
        bucket.events += 1


def props_of(selection: Selection, key: str | None) -> dict[str | None, Bucket]:
    """Custom property keys (key None) or one key's values, over the counted custom events."""
    found: dict[str | None, Bucket] = defaultdict(Bucket)
    for visit, events in zip(selection.visits, selection.counted, strict=True):
        for event in events:
            props = event.get("props") or {}
            names: list[str | None] = list(props) if key is None else ([props[key]] if key in props else [])
            for name in names:
                bucket = found[name]
                bucket.visitors.add(visit.visitor_id)
                _count(bucket, event)
    return found


def rank(value: str | None, visitors: int, hits: int) -> tuple[int, int, bool, str]:
    """Where a row stands in every ranked answer (breakdowns, properties; from rollups or raw events): by
    visitors, then pageviews and events (`hits`), then value, "(none)" last."""
    return -visitors, -hits, value is None, value or ""


def ranked(found: dict[str | None, Bucket], limit: int) -> list[tuple[str | None, Bucket]]:
    """By `rank`; at most `limit`."""
    order = sorted(
        found.items(),
        key=lambda item: rank(item[0], len(item[1].visitors), item[1].pageviews + item[1].events),
    )
    return order[:limit]
