"""Filtered answers computed by the database (SQLite, PostgreSQL, MariaDB): SQL pre-aggregation.

filters.py defines what a filtered answer is and computes it in Python from the range's events (the
reference). Here the same answers are computed in SQL, so only the answer's rows leave the database:

- visits are rebuilt with window functions over the range's events by visitor and time (`LAG`/`LEAD`
  mark each visit's first and last event, a running `SUM` numbers the visits), then grouped into one row
  per visit: its first event's values (entry page, source, UTM, country ...), its last page (exit), its
  size, its counted pageviews and custom events, and per event filter whether one of its events matches;
- the kept visits are those rows passing every filter; the counted events (for the time series, the
  event panels and goals) are the range's events of kept visits that match every `is`/`contains` event
  filter. When every filter is such an event filter, no visit needs rebuilding: the counted events are
  simply the matching ones (their visits match by construction) — one filtered GROUP BY;
- totals, the time series, breakdowns and goal conversions are GROUP BYs with `COUNT(DISTINCT
  visitor_id)` over those.

Comparisons are case-sensitive as in Python (MariaDB's default collation is not: text is compared and
grouped under `utf8mb4_bin` there); `contains` lowers both sides. `supported` says when a question stays
with the Python engine: filters on custom properties (JSON), and on SQLite a `contains` value beyond
ASCII (its `lower` folds ASCII only). Properties and funnels are computed by the Python engine too.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import (
    CTE,
    ColumnElement,
    Subquery,
    and_,
    case,
    distinct,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

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
from pentad.apps.analytics.models import AnalyticsEvent

BINARY_COLLATION: Final = "utf8mb4_bin"

Column = Callable[[str], ColumnElement[Any]]


def dialect_of(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def supported(filters: Sequence[Filter], dialect: str) -> bool:
    """Whether these filters are answered in SQL (else by filters.py in Python)."""
    for check in filters:
        if check.dimension.startswith(PROP_PREFIX):
            return False
        if check.operator == "contains" and dialect == "sqlite" and not check.value.isascii():
            return False
    return True


class _Sql:
    """Dialect-aware text comparisons."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.mysql = dialect in ("mysql", "mariadb")

    def text(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        """`column` compared and grouped byte for byte."""
        return column.collate(BINARY_COLLATION) if self.mysql else column

    def equals(self, column: ColumnElement[Any], value: str) -> ColumnElement[bool]:
        if self.mysql:  # the column's own collation first: an index on it can find the rows
            return and_(column.is_not(None), column == value, self.text(column) == value)
        return and_(column.is_not(None), self.text(column) == value)

    def contains(self, column: ColumnElement[Any], value: str) -> ColumnElement[bool]:
        needle = value.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return and_(column.is_not(None), func.lower(column).like(f"%{needle}%", escape="\\"))

    def test(self, check: Filter, column: ColumnElement[Any]) -> ColumnElement[bool]:
        """`Filter.test` of a value (None: not set), never NULL (so `not_` negates it)."""
        if check.operator == "contains":
            return self.contains(column, check.value)
        if check.value == NONE_VALUE:
            return column.is_(None)
        return self.equals(column, check.value)

    def pattern(self, column: ColumnElement[Any], pattern: str) -> ColumnElement[bool]:
        """A goal's path pattern (`*`: any characters) matched in full, case-sensitively."""
        if "*" not in pattern:
            return self.text(column) == pattern
        parts = pattern.split("*")
        if self.dialect == "sqlite":  # GLOB is case-sensitive; its specials taken literally in brackets
            escaped = ["".join(f"[{c}]" if c in "*?[" else c for c in part) for part in parts]
            return column.op("GLOB")("*".join(escaped))
        like = "%".join(part.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") for part in parts)
        return self.text(column).like(like, escape="\\")

    def goal(self, rule: GoalRule, c: Column) -> ColumnElement[bool]:
        if rule.kind == PAGEVIEW:
            if rule.pattern is None or rule.path_pattern is None:
                return false()
            return and_(c("name") == PAGEVIEW, self.pattern(c("path"), rule.path_pattern))
        return self.text(c("name")) == (rule.event_name or "")

    def event_test(self, check: Filter, c: Column, rules: Sequence[GoalRule]) -> ColumnElement[bool]:
        """Whether an event passes an event filter's `is`/`contains` comparison (filters._event_passes)."""
        if check.dimension == "page":
            return self.test(check, c("path"))
        if check.dimension == "event":
            if check.operator != "contains" and check.value == NONE_VALUE:
                return c("name") == PAGEVIEW
            return and_(c("name") != PAGEVIEW, self.test(check, c("name")))
        # goal: the names of the goals the event completes, or None when it completes none
        if check.operator != "contains" and check.value == NONE_VALUE:
            return not_(or_(false(), *(self.goal(rule, c) for rule in rules)))
        return or_(false(), *(self.goal(rule, c) for rule in rules if check.test(rule.name)))


@dataclass(frozen=True)
class Frame:
    """The SQL of a filtered question: the range's events (`ev`; with visits rebuilt, each event carries
    its visit's number, first values and filter flags), which events belong to kept visits (`kept`) and
    which count (`counted`), and `vis`: one row per kept visit (when asked for)."""

    sql: _Sql
    ev: Subquery | CTE
    vis: Subquery | None
    kept: ColumnElement[bool]
    counted: ColumnElement[bool]
    pv: ColumnElement[int]

    def counted_events(self, *columns: ColumnElement[Any]) -> Any:
        """SELECT `columns` FROM the counted events of kept visits."""
        return select(*columns).select_from(self.ev).where(self.kept, self.counted)


def _satisfied_by_read(check: Filter) -> bool:
    """A visitor's fact (`country:is:DE`) narrows the read itself: every event read has the value, so
    each visit's first one has it (filters.load_visits reads the same way)."""
    return check.dimension in VISITOR_FACTS and check.operator == "is" and check.value != NONE_VALUE


def frame(
    dialect: str,
    site_key: int,
    start_ms: int,
    end_ms: int,
    session_timeout: int,
    filters: Sequence[Filter],
    rules: Sequence[GoalRule],
    columns: Sequence[str] = (),
    *,
    visits: bool = False,
    firsts: Sequence[str] = (),
) -> Frame:
    """The question's SQL parts. `columns`: event columns the question reads besides visitor, time, name
    and path; `visits`: rebuild visits even when the filters do not need them and give `vis` (totals,
    visit panels); `firsts`: columns whose value at each visit's first event `vis` gives (`v_<column>`,
    `v_exit` the last page).

    Visits take three window passes (no join: MariaDB and SQLite would nest loops over it): LAG/LEAD
    mark each visit's first and last event, a running SUM numbers the visits, and aggregates over
    (visitor, visit) hand every event its visit's first values and filter flags."""
    sql = _Sql(dialect)
    event_filters = [f for f in filters if not f.on_visit]
    narrowing = [f for f in event_filters if f.operator != "is_not"]
    visit_filters = [f for f in filters if f.on_visit and not _satisfied_by_read(f)]
    visits = visits or bool(visit_filters) or any(f.operator == "is_not" for f in event_filters)
    visit_columns = sorted(({VISIT_DIMENSIONS[f.dimension] for f in visit_filters} | set(firsts)) - {"exit"})
    wanted = list(dict.fromkeys(["visitor_id", "ts", "name", "path", *sorted({*columns, *visit_columns})]))
    conditions: list[ColumnElement[bool]] = [
        AnalyticsEvent.site_key == site_key,
        AnalyticsEvent.ts >= start_ms,
        AnalyticsEvent.ts < end_ms,
    ]
    for check in filters:
        if _satisfied_by_read(check):  # country, device, browser and OS are indexed (site, fact, time)
            conditions.append(sql.equals(getattr(AnalyticsEvent, check.dimension), check.value))
    read: list[Any] = [AnalyticsEvent.id, *(getattr(AnalyticsEvent, name) for name in wanted)]
    if not visits:
        plain = select(*read).where(*conditions).cte("ev")
        c: Column = lambda name: plain.c[name]  # noqa: E731
        counted = and_(true(), *(sql.event_test(check, c, rules) for check in narrowing))
        return Frame(sql, plain, None, true(), counted, case((c("name") == PAGEVIEW, 1), else_=0))
    # A kept visit has an event passing each `is`/`contains` filter (its first event for a visit's
    # dimension, its last for the exit page): only the visitors with such events need their visits
    # rebuilt, all of their events in the range (so visits stay as they are).
    other = aliased(AnalyticsEvent)
    o: Column = lambda name: getattr(other, name)  # noqa: E731
    for check in filters:
        if check.operator == "is_not" or _satisfied_by_read(check):
            continue
        if check.on_visit:
            column = VISIT_DIMENSIONS[check.dimension]
            passing = sql.test(check, o("path" if column == "exit" else column))
        else:
            passing = sql.event_test(check, o, rules)
        having = select(other.visitor_id).where(
            other.site_key == site_key, other.ts >= start_ms, other.ts < end_ms, passing
        )
        conditions.append(AnalyticsEvent.visitor_id.in_(having))
    order = (AnalyticsEvent.ts, AnalyticsEvent.id)
    gap = session_timeout * 1000
    before = func.lag(AnalyticsEvent.ts).over(partition_by=AnalyticsEvent.visitor_id, order_by=order)
    after = func.lead(AnalyticsEvent.ts).over(partition_by=AnalyticsEvent.visitor_id, order_by=order)
    base = (
        select(
            *read,
            case((or_(before.is_(None), AnalyticsEvent.ts - before > gap), 1), else_=0).label("brk"),
            case((or_(after.is_(None), after - AnalyticsEvent.ts > gap), 1), else_=0).label("lst"),
        )
        .where(*conditions)
        .subquery("base")
    )
    number = func.sum(base.c.brk).over(
        partition_by=base.c.visitor_id, order_by=(base.c.ts, base.c.id), rows=(None, 0)
    )
    numbered = select(base, number.label("visit")).subquery("numbered")
    n: Column = lambda name: numbered.c[name]  # noqa: E731
    per_visit = (n("visitor_id"), n("visit"))
    counted_here = and_(true(), *(sql.event_test(check, n, rules) for check in narrowing))
    carried: list[Any] = [
        case((n("name") == PAGEVIEW, 1), else_=0).label("pv"),
        case((counted_here, 1), else_=0).label("cnt"),
        func.max(case((n("lst") == 1, n("path")))).over(partition_by=per_visit).label("v_exit"),
        *(
            func.max(case((n("brk") == 1, n(name)))).over(partition_by=per_visit).label(f"v_{name}")
            for name in visit_columns
        ),
        *(
            func.max(case((sql.event_test(check, n, rules), 1), else_=0))
            .over(partition_by=per_visit)
            .label(f"f{index}")
            for index, check in enumerate(event_filters)
        ),
    ]
    ev = select(numbered, *carried).subquery("ev")
    kept: list[ColumnElement[bool]] = [
        ev.c[f"f{index}"] == (0 if check.operator == "is_not" else 1)
        for index, check in enumerate(event_filters)
    ]
    for check in visit_filters:
        column = VISIT_DIMENSIONS[check.dimension]
        passed = sql.test(check, ev.c["v_exit" if column == "exit" else f"v_{column}"])
        kept.append(not_(passed) if check.operator == "is_not" else passed)
    keep = and_(true(), *kept)
    vis = (
        select(
            ev.c.visitor_id,
            ev.c.visit,
            func.min(ev.c.ts).label("vstart"),
            func.max(ev.c.ts).label("vend"),
            func.sum(ev.c.pv).label("views"),
            func.count().label("size"),
            func.sum(ev.c.cnt * ev.c.pv).label("cviews"),
            func.sum(ev.c.cnt * (1 - ev.c.pv)).label("cevents"),
            func.max(ev.c.v_exit).label("v_exit"),
            *(func.max(ev.c[f"v_{name}"]).label(f"v_{name}") for name in visit_columns),
        )
        .where(keep)
        .group_by(ev.c.visitor_id, ev.c.visit)
        .subquery("vis")
    )
    return Frame(sql, ev, vis, keep, ev.c.cnt == 1, ev.c.pv)


# ------------------------------------------------------------------ answers


@dataclass
class Found:
    visitors: int = 0
    visits: int = 0
    pageviews: int = 0
    events: int = 0
    bounces: int = 0
    duration_ms: int = 0


def _int(value: Any) -> int:
    return int(value or 0)


async def totals(
    session: AsyncSession,
    site_key: int,
    start_ms: int,
    end_ms: int,
    session_timeout: int,
    filters: Sequence[Filter],
    rules: Sequence[GoalRule],
) -> Found:
    """filters.totals_of, in SQL."""
    parts = frame(
        dialect_of(session), site_key, start_ms, end_ms, session_timeout, filters, rules, visits=True
    )
    vis = parts.vis
    assert vis is not None
    bounce = case((and_(vis.c.views <= 1, vis.c.size == vis.c.views), 1), else_=0)
    row = (
        await session.execute(
            select(
                func.count(distinct(vis.c.visitor_id)),
                func.count(),
                func.sum(vis.c.cviews),
                func.sum(vis.c.cevents),
                func.sum(bounce),
                func.sum(vis.c.vend - vis.c.vstart),
            )
        )
    ).one()
    return Found(*(_int(value) for value in row))


def _bucket(ts: ColumnElement[int], edges: Sequence[int], low: int, high: int) -> ColumnElement[int]:
    """The index of the last edge at or before `ts` among edges[low:high] (a binary search in CASEs)."""
    if high - low <= 1:
        return literal(low)
    middle = (low + high) // 2
    return case(
        (ts >= edges[middle], _bucket(ts, edges, middle, high)), else_=_bucket(ts, edges, low, middle)
    )


async def timeseries(
    session: AsyncSession,
    site_key: int,
    start_ms: int,
    end_ms: int,
    session_timeout: int,
    filters: Sequence[Filter],
    rules: Sequence[GoalRule],
    edges: Sequence[int],
) -> list[tuple[int, int]]:
    """filters.timeseries_of, in SQL: (visitors, pageviews) per interval starting at each of `edges`."""
    parts = frame(dialect_of(session), site_key, start_ms, end_ms, session_timeout, filters, rules)
    ts = parts.ev.c.ts
    bucket = _bucket(ts, edges, 0, len(edges)).label("bucket")
    inner = parts.counted_events(bucket, parts.ev.c.visitor_id, parts.pv.label("pv")).subquery("counted")
    found = [(0, 0) for _ in edges]
    query = select(inner.c.bucket, func.count(distinct(inner.c.visitor_id)), func.sum(inner.c.pv)).group_by(
        inner.c.bucket
    )
    for index, visitors, views in (await session.execute(query)).all():
        found[int(index)] = (int(visitors), _int(views))
    return found


@dataclass(frozen=True)
class Group:
    value: str | None
    visitors: int
    pageviews: int
    events: int


def ranked(groups: Sequence[Group], limit: int) -> list[Group]:
    """By visitors, then events, then value (filters.ranked's order)."""
    order = sorted(
        groups,
        key=lambda g: (-g.visitors, -(g.pageviews + g.events), g.value is None, g.value or ""),
    )
    return order[:limit]


async def breakdown(
    session: AsyncSession,
    site_key: int,
    start_ms: int,
    end_ms: int,
    session_timeout: int,
    filters: Sequence[Filter],
    rules: Sequence[GoalRule],
    dimension: str,
    limit: int,
) -> list[Group]:
    """filters.breakdown_of (then ranked), in SQL."""
    per, column = BREAKDOWNS[dimension]
    dialect = dialect_of(session)
    if per == "visit":
        parts = frame(
            dialect,
            site_key,
            start_ms,
            end_ms,
            session_timeout,
            filters,
            rules,
            visits=True,
            firsts=[] if column == "exit" else [column],
        )
        vis = parts.vis
        assert vis is not None
        value = vis.c.v_exit if column == "exit" else vis.c[f"v_{column}"]
        grouped = parts.sql.text(value).label("value")
        query = select(
            grouped,
            func.count(distinct(vis.c.visitor_id)),
            func.sum(vis.c.cviews),
            func.sum(vis.c.cevents),
        ).group_by(grouped)
    else:
        parts = frame(dialect, site_key, start_ms, end_ms, session_timeout, filters, rules, [column])
        ev = parts.ev
        grouped = parts.sql.text(ev.c[column]).label("value")
        selected = parts.counted_events(
            grouped,
            func.count(distinct(ev.c.visitor_id)),
            func.sum(parts.pv),
            func.sum(1 - parts.pv),
        )
        if dimension == "pages":
            selected = selected.where(ev.c.name == PAGEVIEW)
        elif dimension == "events":
            selected = selected.where(ev.c.name != PAGEVIEW)
        query = selected.group_by(grouped)
    groups = [
        Group(None if value is None else str(value), int(visitors), _int(views), _int(customs))
        for value, visitors, views, customs in (await session.execute(query)).all()
    ]
    return ranked(groups, limit)


@dataclass(frozen=True)
class GoalCount:
    goal_id: uuid.UUID
    visitors: int
    completions: int
    revenue_micros: int


async def goals(
    session: AsyncSession,
    site_key: int,
    start_ms: int,
    end_ms: int,
    session_timeout: int,
    filters: Sequence[Filter],
    rules: Sequence[GoalRule],
) -> list[GoalCount]:
    """Per goal, over the counted events: the visitors who completed it, completions, revenue in the
    goal's currency (goals.conversions_of's numbers)."""
    if not rules:
        return []
    parts = frame(
        dialect_of(session),
        site_key,
        start_ms,
        end_ms,
        session_timeout,
        filters,
        rules,
        ["revenue_micros", "currency"],
    )
    ev = parts.ev
    c: Column = lambda name: ev.c[name]  # noqa: E731
    aggregates: list[ColumnElement[Any]] = []
    for rule in rules:
        matched = parts.sql.goal(rule, c)
        aggregates.append(func.count(distinct(case((matched, ev.c.visitor_id)))))
        aggregates.append(func.sum(case((matched, 1), else_=0)))
        if rule.currency is None:
            aggregates.append(literal(0))
        else:
            paid = and_(
                matched, ev.c.revenue_micros.is_not(None), parts.sql.equals(ev.c.currency, rule.currency)
            )
            aggregates.append(func.sum(case((paid, ev.c.revenue_micros), else_=0)))
    row = (await session.execute(parts.counted_events(*aggregates))).one()
    return [
        GoalCount(rule.id, _int(row[3 * i]), _int(row[3 * i + 1]), _int(row[3 * i + 2]))
        for i, rule in enumerate(rules)
    ]


async def visitors(
    session: AsyncSession,
    site_key: int,
    start_ms: int,
    end_ms: int,
    session_timeout: int,
    filters: Sequence[Filter],
    rules: Sequence[GoalRule],
) -> int:
    """The visitors of the kept visits (a totals' first number, without rebuilding visits when at most
    one event filter and no visit filter apply: then a visit is kept exactly when it has a counted event)."""
    needs_visits = any((f.on_visit and not _satisfied_by_read(f)) or f.operator == "is_not" for f in filters)
    if needs_visits or sum(not f.on_visit for f in filters) > 1:
        found = await totals(session, site_key, start_ms, end_ms, session_timeout, filters, rules)
        return found.visitors
    parts = frame(dialect_of(session), site_key, start_ms, end_ms, session_timeout, filters, rules)
    return _int(await session.scalar(parts.counted_events(func.count(distinct(parts.ev.c.visitor_id)))))
