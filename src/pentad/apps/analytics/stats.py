"""The dashboard's statistics as API answers, shared by the site API (endpoints.py), shared links
(sharing.py) and exports (export.py): each function takes a site the caller may read and the request's
range and filters, and calls the site-level query functions (query.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.analytics import query, store
from pentad.apps.analytics.filters import BREAKDOWN_FILTER, Filter, parse_filters
from pentad.apps.analytics.models import AnalyticsFunnel, AnalyticsSite
from pentad.core.context import AppContext

PeriodQuery = Annotated[query.Period, Query(description="Range preset, or `custom` with `from` and `to`.")]
FromQuery = Annotated[date | None, Query(alias="from", description="First day of a custom range.")]
ToQuery = Annotated[date | None, Query(alias="to", description="Last day of a custom range (inclusive).")]
FilterQuery = Annotated[
    list[str],
    Query(
        alias="filter",
        description="Repeatable `dimension:operator:value`, e.g. `page:is:/pricing`, `country:is_not:DE`, "
        "`prop.plan:is:pro`, `goal:is:Signup` (operators is, is_not, contains). Filtered answers come "
        "from raw events, within the site's raw retention tier.",
    ),
]


class RangeParams:
    """A statistics request's range and filters: the query parameters `period`, `from`, `to` and `filter`
    (`RangeQuery` makes a route take them)."""

    def __init__(
        self,
        period: PeriodQuery = "30d",
        start: FromQuery = None,
        end: ToQuery = None,
        filters: FilterQuery = [],  # noqa: B006 (FastAPI copies defaults)
    ) -> None:
        self.period, self.start, self.end, self.filters = period, start, end, filters


RangeQuery = Annotated[RangeParams, Depends()]


@dataclass(frozen=True)
class Ask:
    """One statistics request: the site, its range and filters, and the query options."""

    site: AnalyticsSite
    span: query.Range
    filters: tuple[Filter, ...]
    options: query.Options
    period: str

    @classmethod
    def of(
        cls,
        context: AppContext,
        site: AnalyticsSite,
        asked: RangeParams,
    ) -> Ask:
        span = query.resolve_range(asked.period, site.timezone, start=asked.start, end=asked.end)
        options = query.options_for(context, site, store=store.external_store(context))
        return cls(site, span, parse_filters(asked.filters), options, asked.period)


class Compared(BaseModel):
    """The same top stats over the range compared with, and each one's change in percent."""

    start: datetime
    end: datetime
    visitors: int
    visits: int
    pageviews: int
    events: int
    bounce_rate: float | None
    visit_duration: float | None
    views_per_visit: float | None
    change: dict[str, float | None] = Field(
        description="Per metric: (this range - compared range) / compared range, percent; null when the "
        "compared range has none."
    )


class Aggregate(BaseModel):
    period: str
    start: datetime = Field(description="First instant of the range (site time zone).")
    end: datetime = Field(description="End of the range, exclusive (site time zone).")
    visitors: int = Field(description="Unique visitors (daily ids: one person on two days counts twice).")
    visits: int
    pageviews: int
    events: int = Field(description="Custom events.")
    bounce_rate: float | None = Field(description="Visits of one pageview and no custom event, percent.")
    visit_duration: float | None = Field(description="Average visit duration, seconds.")
    views_per_visit: float | None
    filters: list[str] = Field(default_factory=list, description="The filters applied.")
    comparison: Compared | None = Field(None, description="With `compare`: the range compared with.")


class TimePoint(BaseModel):
    start: datetime
    visitors: int
    pageviews: int


class Timeseries(BaseModel):
    period: str
    interval: str
    points: list[TimePoint]


class BreakdownRow(BaseModel):
    value: str
    visitors: int
    pageviews: int
    events: int


class Breakdown(BaseModel):
    period: str
    dimension: str
    filter: str = Field(description="The filter dimension a row of this panel adds when clicked.")
    rows: list[BreakdownRow]


class GoalConversion(BaseModel):
    goal_id: uuid.UUID
    name: str
    visitors: int = Field(description="Unique visitors who completed the goal.")
    completions: int
    conversion_rate: float | None = Field(description="Visitors who completed it / all visitors, percent.")
    revenue: float | None = Field(description="Revenue of the completions in the goal's currency.")
    currency: str | None


class Goals(BaseModel):
    period: str
    visitors: int
    goals: list[GoalConversion]


class PropRow(BaseModel):
    value: str
    visitors: int
    events: int


class Props(BaseModel):
    period: str
    key: str | None = Field(description="The property whose values are listed (null: the property keys).")
    rows: list[PropRow]


class FunnelStepResult(BaseModel):
    label: str
    visitors: int
    units: int = Field(description="Visits (scope visit) or visitor-days (scope day) that reached the step.")
    conversion_rate: float | None = Field(description="Of the previous step (the first: of all), percent.")
    overall_rate: float | None = Field(description="Of the first step, percent.")
    dropoff: int


class FunnelReport(BaseModel):
    period: str
    funnel_id: uuid.UUID
    name: str
    scope: str
    units: int = Field(description="Visits or visitor-days in the range (after the filters).")
    steps: list[FunnelStepResult]


METRICS = ("visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration", "views_per_visit")


async def aggregate(session: AsyncSession, ask: Ask, compare: str | None = None) -> Aggregate:
    found = await query.site_totals(session, ask.site, ask.span, ask.filters, ask.options)
    comparison = None
    if compare is not None:
        other = query.compare_range(ask.span, compare)
        before = await query.site_totals(session, ask.site, other, ask.filters, ask.options)
        comparison = Compared(
            start=other.start,
            end=other.end,
            **{name: getattr(before, name) for name in METRICS},
            change={
                name: query.percent_change(getattr(found, name), getattr(before, name)) for name in METRICS
            },
        )
    values: dict[str, Any] = {name: getattr(found, name) for name in METRICS}
    return Aggregate(
        period=ask.period,
        start=ask.span.start,
        end=ask.span.end,
        filters=[f.text() for f in ask.filters],
        comparison=comparison,
        **values,
    )


async def timeseries(session: AsyncSession, ask: Ask) -> Timeseries:
    points = await query.site_timeseries(session, ask.site, ask.span, ask.filters, ask.options)
    return Timeseries(
        period=ask.period,
        interval=ask.span.interval,
        points=[TimePoint(start=p.start, visitors=p.visitors, pageviews=p.pageviews) for p in points],
    )


async def breakdown(session: AsyncSession, ask: Ask, dimension: str, limit: int) -> Breakdown:
    rows = await query.site_breakdown(
        session, ask.site, ask.span, dimension, ask.filters, ask.options, limit=limit
    )
    return Breakdown(
        period=ask.period,
        dimension=dimension,
        filter=BREAKDOWN_FILTER[dimension],
        rows=[
            BreakdownRow(value=r.value, visitors=r.visitors, pageviews=r.pageviews, events=r.events)
            for r in rows
        ],
    )


async def goals(session: AsyncSession, ask: Ask) -> Goals:
    found = await query.site_goals(session, ask.site, ask.span, ask.filters, ask.options)
    totals = await query.site_totals(session, ask.site, ask.span, ask.filters, ask.options)
    return Goals(
        period=ask.period,
        visitors=totals.visitors,
        goals=[
            GoalConversion(
                goal_id=c.goal_id,
                name=c.name,
                visitors=c.visitors,
                completions=c.completions,
                conversion_rate=c.conversion_rate,
                revenue=None if c.revenue_micros is None else c.revenue_micros / 1_000_000,
                currency=c.currency,
            )
            for c in found
        ],
    )


async def props(session: AsyncSession, ask: Ask, key: str | None, limit: int) -> Props:
    rows = await query.site_props(session, ask.site, ask.span, ask.filters, ask.options, key=key, limit=limit)
    return Props(
        period=ask.period,
        key=key,
        rows=[PropRow(value=r.value, visitors=r.visitors, events=r.events) for r in rows],
    )


async def funnel(session: AsyncSession, ask: Ask, found: AnalyticsFunnel) -> FunnelReport:
    units, steps = await query.site_funnel(session, ask.site, ask.span, found, ask.filters, ask.options)
    return FunnelReport(
        period=ask.period,
        funnel_id=found.id,
        name=found.name,
        scope=found.scope,
        units=units,
        steps=[
            FunnelStepResult(
                label=s.label,
                visitors=s.visitors,
                units=s.units,
                conversion_rate=s.conversion_rate,
                overall_rate=s.overall_rate,
                dropoff=s.dropoff,
            )
            for s in steps
        ],
    )
