"""Goals: what counts as a conversion, and the completions the ingest flush reports.

A goal is a pageview of a path pattern (`kind` "pageview": `*` matches any characters, `/blog/*`,
`/thanks`) or a custom event by name (`kind` "event"). With a `currency`, the revenue of the completing
events in that currency counts towards the goal (events in another currency count as conversions without
revenue).

At every flush of `analytics.events` (ingest.flush_events calls `emit_completions`), the batch's events
are matched against their sites' goals (one read of the goals of the batch's sites) and every site whose
events complete goals gets one domain event `analytics.goals_completed` (events.py) in the flush
transaction — several when it has more than MAX_COMPLETIONS completions. A replayed batch is never
flushed twice (the ingest batch id), so each completion is emitted once; subscribers get it at least once.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.analytics import rollups
from pentad.apps.analytics.events import GOALS_COMPLETED, MAX_COMPLETIONS, GoalCompletion, GoalsCompleted
from pentad.apps.analytics.hll import Sketch
from pentad.apps.analytics.models import AnalyticsGoal, AnalyticsSite
from pentad.core.events import emit

PAGEVIEW: Final = "pageview"
MAX_GOALS: Final = 100
"""Goals per site."""


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """A path pattern (`*` any characters, everything else literal) as an anchored expression."""
    return re.compile(
        "".join(".*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", pattern))
    )


@dataclass(frozen=True)
class GoalRule:
    """A goal compiled for matching events."""

    id: uuid.UUID
    name: str
    kind: str
    event_name: str | None
    pattern: re.Pattern[str] | None
    currency: str | None
    path_pattern: str | None = None
    """The pattern `pattern` was compiled from (`*` wildcards), for the stores that match in SQL."""

    @property
    def on_pages(self) -> bool:
        """Completed by pageviews (a pageview goal, or an event goal named `pageview`)."""
        return self.kind == PAGEVIEW or self.event_name == PAGEVIEW

    def matches(self, name: str, path: str) -> bool:
        if self.kind == PAGEVIEW:
            return name == PAGEVIEW and self.pattern is not None and self.pattern.fullmatch(path) is not None
        return name == self.event_name

    def revenue(self, revenue_micros: int | None, currency: str | None) -> int | None:
        """The event's revenue when the goal counts revenue in the event's currency."""
        if self.currency is None or revenue_micros is None or currency != self.currency:
            return None
        return revenue_micros


def rule_of(goal: AnalyticsGoal) -> GoalRule:
    return GoalRule(
        id=goal.id,
        name=goal.name,
        kind=goal.kind,
        event_name=goal.event_name,
        pattern=compile_pattern(goal.path_pattern) if goal.path_pattern else None,
        currency=goal.currency,
        path_pattern=goal.path_pattern,
    )


async def list_goals(session: AsyncSession, site_id: uuid.UUID) -> list[AnalyticsGoal]:
    query = select(AnalyticsGoal).where(AnalyticsGoal.site_id == site_id).order_by(AnalyticsGoal.created_at)
    return list((await session.scalars(query)).all())


async def _rules_by_site_key(
    session: AsyncSession, site_keys: Iterable[int]
) -> dict[int, tuple[str, list[GoalRule]]]:
    keys = sorted(set(site_keys))
    if not keys:
        return {}
    query = (
        select(AnalyticsSite.key, AnalyticsSite.domain, AnalyticsGoal)
        .join(AnalyticsGoal, AnalyticsGoal.site_id == AnalyticsSite.id)
        .where(AnalyticsSite.key.in_(keys))
        .order_by(AnalyticsGoal.created_at)
    )
    found: dict[int, tuple[str, list[GoalRule]]] = {}
    for key, domain, goal in (await session.execute(query)).all():
        found.setdefault(int(key), (domain, []))[1].append(rule_of(goal))
    return found


def completions_of(rules: Sequence[GoalRule], rows: Iterable[Any]) -> list[GoalCompletion]:
    """Every (event, goal) pair where the event completes the goal, in the rows' order. `rows` have the
    fields of ingest.EventRow."""
    found: list[GoalCompletion] = []
    for row in rows:
        for rule in rules:
            if rule.matches(row.name, row.path):
                moment = datetime.fromtimestamp(row.ts / 1000, UTC)
                revenue = rule.revenue(row.revenue_micros, row.currency)
                found.append(
                    GoalCompletion(
                        goal_id=rule.id,
                        goal_name=rule.name,
                        visitor_id=row.visitor_id,
                        day=moment.date(),
                        ts=moment,
                        path=row.path,
                        source=row.source,
                        revenue_micros=revenue,
                        currency=rule.currency if revenue is not None else None,
                    )
                )
    return found


async def emit_completions(session: AsyncSession, rows: Sequence[Any]) -> int:
    """Match a flushed batch against its sites' goals and emit `analytics.goals_completed` per site (in
    chunks of MAX_COMPLETIONS) into `session`'s transaction; how many completions were emitted."""
    by_site: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        by_site[row.site_key].append(row)
    rules = await _rules_by_site_key(session, by_site)
    emitted = 0
    for site_key, (domain, site_rules) in rules.items():
        completions = completions_of(site_rules, by_site[site_key])
        for index in range(0, len(completions), MAX_COMPLETIONS):
            chunk = completions[index : index + MAX_COMPLETIONS]
            await emit(session, GOALS_COMPLETED.name, GoalsCompleted(site_domain=domain, completions=chunk))
            emitted += len(chunk)
    return emitted


@dataclass(frozen=True)
class Conversion:
    """One goal's numbers over a range: unique visitors who completed it, completions, the conversion
    rate (uniques / all visitors of the range, percent) and the revenue in the goal's currency."""

    goal_id: uuid.UUID
    name: str
    visitors: int
    completions: int
    conversion_rate: float | None
    revenue_micros: int | None
    currency: str | None


def conversion_rate(uniques: int, visitors_total: int) -> float | None:
    """Percent of the range's visitors, one decimal."""
    return round(100 * uniques / visitors_total, 1) if visitors_total else None


def conversions_of(
    rules: Sequence[GoalRule], visitors_total: int, visits: Iterable[tuple[int, Iterable[Any]]]
) -> list[Conversion]:
    """Per goal, over (visitor id, events) pairs (events as mappings of the raw columns)."""
    uniques: dict[uuid.UUID, set[int]] = {rule.id: set() for rule in rules}
    totals: dict[uuid.UUID, int] = dict.fromkeys(uniques, 0)
    revenue: dict[uuid.UUID, int] = dict.fromkeys(uniques, 0)
    for visitor, events in visits:
        for event in events:
            for rule in rules:
                if rule.matches(event["name"], event["path"]):
                    uniques[rule.id].add(visitor)
                    totals[rule.id] += 1
                    revenue[rule.id] += rule.revenue(event["revenue_micros"], event["currency"]) or 0

    return [
        Conversion(
            goal_id=rule.id,
            name=rule.name,
            visitors=len(uniques[rule.id]),
            completions=totals[rule.id],
            conversion_rate=conversion_rate(len(uniques[rule.id]), visitors_total),
            revenue_micros=revenue[rule.id] if rule.currency else None,
            currency=rule.currency,
        )
        for rule in rules
    ]


ROLLUP_DIMS: Final = (rollups.TOTALS, rollups.DIMS["pages"], rollups.DIMS["events"], rollups.REVENUE)
"""The rollup rows `rolled_up_conversions` reads."""


def rolled_up_conversions(
    rules: Sequence[GoalRule], merged: dict[rollups.Key, rollups.Agg]
) -> list[Conversion]:
    """Per goal, from a range's merged rollup rows of ROLLUP_DIMS: a pageview goal is the union of the
    `pages` rows its pattern matches (their visitor sketches merged, their pageviews added), an event goal
    its `events` row, the revenue the REVENUE rows of the goal's currency whose event it matches (a custom
    event's row has no path: event goals match by name)."""
    total = merged.get((rollups.TOTALS, ""))
    visitors_total = total.sketch.count() if total is not None else 0
    pages = [(value or "", agg) for (dim, value), agg in merged.items() if dim == rollups.DIMS["pages"]]
    revenues = [
        (json.loads(value), agg.revenue_micros)
        for (dim, value), agg in merged.items()
        if dim == rollups.REVENUE and value is not None
    ]
    found: list[Conversion] = []
    for rule in rules:
        sketch = Sketch()
        completions = 0
        if rule.on_pages:
            for path, agg in pages:
                if rule.matches(PAGEVIEW, path):
                    sketch.merge(agg.sketch)
                    completions += agg.pageviews
        else:
            row = merged.get((rollups.DIMS["events"], rule.event_name))
            if row is not None:
                sketch.merge(row.sketch)
                completions = row.events
        revenue = sum(
            micros
            for (currency, name, path), micros in revenues
            if currency == rule.currency and rule.matches(name, path or "")
        )
        uniques = sketch.count()
        found.append(
            Conversion(
                goal_id=rule.id,
                name=rule.name,
                visitors=uniques,
                completions=completions,
                conversion_rate=conversion_rate(uniques, visitors_total),
                revenue_micros=revenue if rule.currency else None,
                currency=rule.currency,
            )
        )
    return found
