"""The Stats API, shaped like Plausible's Stats API v1 so its clients port: `GET /api/analytics/v1/stats/
{aggregate,timeseries,breakdown,realtime/visitors}?site_id=<domain>&period=…&date=…&metrics=…`.

It answers from the query planner (query.py), the same numbers as the dashboard. Credentials: a Stats API
key (`pas_…`, keys.py) of a site it names, or any credential that may read the site (a session, a core
API key whose scopes hold `analytics.use` and `analytics.site.read`). A site the caller may not read is
404, like a site that does not exist. Requests spend the rate class `analytics_stats_api` (per address;
the per-principal limit applies too).

Differences from Plausible: errors are problem+json (`detail` carries what Plausible puts in `error`);
`filters` in Plausible's syntax (`event:page==/blog;visit:country==DE`) are answered from raw events as
the dashboard's filters are (no `|` alternatives); breakdown metrics are visitors, pageviews and events.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.analytics import query, store
from pentad.apps.analytics.filters import (
    MAX_FILTERS,
    PROP_PREFIX,
    VISIT_DIMENSIONS,
    Filter,
    Operator,
    parse_filter,
)
from pentad.apps.analytics.keys import KEY_PRINCIPAL, stats_site
from pentad.apps.analytics.models import AnalyticsEvent, AnalyticsSite
from pentad.apps.analytics.permissions import ANALYTICS_USE, SITE_READ
from pentad.core.auth.dependencies import Authenticator, db_session
from pentad.core.auth.principal import Principal
from pentad.core.errors import BadRequest, PermissionDenied, problem_responses
from pentad.core.platform import Platform, get_platform
from pentad.core.policy import RateLimitClass, route_policy

STATS_API_RATE = RateLimitClass("analytics_stats_api", "600/hour")
"""Plausible's default: 600 requests an hour per key."""
REALTIME_WINDOW = timedelta(minutes=5)

AGGREGATE_METRICS = (
    "visitors",
    "visits",
    "pageviews",
    "views_per_visit",
    "bounce_rate",
    "visit_duration",
    "events",
)
TIMESERIES_METRICS = ("visitors", "pageviews")
BREAKDOWN_METRICS = ("visitors", "pageviews", "events")
PROPERTIES: dict[str, tuple[str, str]] = {
    "event:page": ("pages", "page"),
    "event:name": ("events", "name"),
    "visit:source": ("sources", "source"),
    "visit:referrer": ("referrers", "referrer"),
    "visit:country": ("countries", "country"),
    "visit:device": ("devices", "device"),
    "visit:browser": ("browsers", "browser"),
    "visit:os": ("os", "os"),
    "visit:utm_source": ("utm_source", "utm_source"),
    "visit:utm_medium": ("utm_medium", "utm_medium"),
    "visit:utm_campaign": ("utm_campaign", "utm_campaign"),
}
"""Plausible's property → (the planner's dimension, the key of the value in each result)."""
FILTER_OPERATORS: dict[str, Operator] = {"!=": "is_not", "==": "is", "~": "contains"}
"""Plausible's v1 filter operators → ours (filters.py); `|` alternatives are not read."""
FILTER_PROPERTIES: dict[str, str] = {
    "event:page": "page",
    "event:name": "event",
    "event:goal": "goal",
    **{f"visit:{name}": name for name in VISIT_DIMENSIONS},
}
"""Plausible's filter property → our filter dimension; `event:props:<key>` → `prop.<key>`."""


class StatsReader(Authenticator):
    """A Stats API key (which holds `analytics.site.read` only), or a member's credential."""

    def check(self, principal: Principal) -> None:
        needed = SITE_READ if principal.kind == KEY_PRINCIPAL else ANALYTICS_USE
        if not principal.has(needed):
            raise PermissionDenied(f"You need the permission {needed.key!r} for this.")


class StatsError(BadRequest):
    code = "stats_bad_request"


router = APIRouter(
    prefix="/api/analytics/v1/stats",
    tags=["analytics stats api"],
    responses=problem_responses(400, 401, 403, 404, 422, 429),
)
Session = Annotated[AsyncSession, Depends(db_session)]
Reader = Annotated[Principal, Depends(StatsReader(ANALYTICS_USE))]
SiteQuery = Annotated[str, Query(description="The site's domain, as on its settings.", max_length=253)]
PeriodParam = Annotated[
    str, Query(description="day, 7d, 30d, month, 6mo, 12mo or custom (with date=YYYY-MM-DD,YYYY-MM-DD).")
]
DateParam = Annotated[
    str | None,
    Query(
        alias="date",
        description="The day the period ends on (YYYY-MM-DD; default today), or `from,to` for custom.",
    ),
]
MetricsParam = Annotated[str, Query(description="Comma-separated metrics.")]
FiltersParam = Annotated[
    str | None, Query(description="Plausible filters: `event:page==/blog;visit:country==DE`.")
]


def parse_filters(text: str | None) -> tuple[Filter, ...]:
    """`event:page==/blog;visit:country!=DE;event:props:plan~pro` → our filters; 400 for one we cannot
    read. Filtered answers come from raw events, as on the dashboard (422 past the raw tier)."""
    found: list[Filter] = []
    for part in filter(None, (piece.strip() for piece in (text or "").split(";"))):
        marks = sorted((part.find(mark), mark) for mark in FILTER_OPERATORS if mark in part)
        mark = marks[0][1] if marks else None  # the first one in the text: values may hold the others
        if mark is None:
            raise StatsError(f"Cannot read the filter {part!r}: write property==value.", code="bad_filter")
        name, _, value = part.partition(mark)
        operator = FILTER_OPERATORS[mark]
        name = name.strip()
        if name.startswith("event:props:") and name[len("event:props:") :]:
            dimension = PROP_PREFIX + name[len("event:props:") :]
        elif name in FILTER_PROPERTIES:
            dimension = FILTER_PROPERTIES[name]
        else:
            raise StatsError(
                f"Unknown filter property {name!r}; use {', '.join(FILTER_PROPERTIES)} or event:props:<key>.",
                code="bad_filter",
            )
        found.append(parse_filter(f"{dimension}:{operator}:{value.strip()}"))
    if len(found) > MAX_FILTERS:
        raise StatsError(f"At most {MAX_FILTERS} filters.", code="bad_filter")
    return tuple(found)


def _metrics(text: str, allowed: tuple[str, ...]) -> list[str]:
    metrics = list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    if not metrics:
        raise StatsError("Name at least one metric.", code="bad_metric")
    for name in metrics:
        if name not in allowed:
            raise StatsError(
                f"The metric {name!r} is not supported here; use {', '.join(allowed)}.", code="bad_metric"
            )
    return metrics


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise StatsError(f"{text!r} is not a date: write YYYY-MM-DD.", code="bad_date") from None


def resolve(site: AnalyticsSite, period: str, date_text: str | None) -> query.Range:
    """Plausible's period and date as the planner's range in the site's time zone."""
    if period == "custom":
        first, sep, last = (date_text or "").partition(",")
        if not sep:
            raise StatsError("A custom period needs date=YYYY-MM-DD,YYYY-MM-DD.", code="bad_date")
        return query.resolve_range("custom", site.timezone, start=_day(first), end=_day(last))
    if period not in ("day", "7d", "30d", "month", "6mo", "12mo"):
        raise StatsError(f"Unknown period {period!r}.", code="bad_period")
    now = None
    if date_text:
        reference = datetime.combine(_day(date_text), time(12), tzinfo=ZoneInfo(site.timezone))
        now = reference.astimezone(UTC)
    return query.resolve_range(period, site.timezone, now=now)


def _options(platform: Platform, site: AnalyticsSite) -> query.Options:
    return query.options_for(platform, site, store=store.external_store(platform))


@router.get("/aggregate", summary="Totals of a site over a period (Plausible v1 aggregate)")
@route_policy(rate_limit=STATS_API_RATE)
async def aggregate(
    request: Request,
    session: Session,
    principal: Reader,
    site_id: SiteQuery,
    period: PeriodParam = "30d",
    date_text: DateParam = None,
    metrics: MetricsParam = "visitors",
    compare: Annotated[str | None, Query(description="`previous_period` adds each metric's change.")] = None,
    filters: FiltersParam = None,
) -> dict[str, Any]:
    platform = get_platform(request)
    site = await stats_site(session, platform, principal, site_id)
    chosen = _metrics(metrics, AGGREGATE_METRICS)
    wanted = parse_filters(filters)
    span = resolve(site, period, date_text)
    options = _options(platform, site)
    found = await query.site_totals(session, site, span, wanted, options)
    results: dict[str, dict[str, Any]] = {name: {"value": getattr(found, name)} for name in chosen}
    if compare is not None:
        if compare != "previous_period":
            raise StatsError("compare takes `previous_period`.", code="bad_compare")
        before = await query.site_totals(
            session, site, query.compare_range(span, "previous"), wanted, options
        )
        for name in chosen:
            results[name]["change"] = query.percent_change(getattr(found, name), getattr(before, name))
    return {"results": results}


@router.get("/timeseries", summary="A metric per hour, day or month (Plausible v1 timeseries)")
@route_policy(rate_limit=STATS_API_RATE)
async def timeseries(
    request: Request,
    session: Session,
    principal: Reader,
    site_id: SiteQuery,
    period: PeriodParam = "30d",
    date_text: DateParam = None,
    metrics: MetricsParam = "visitors",
    interval: Annotated[str | None, Query(description="date or month (hour for one day); optional.")] = None,
    filters: FiltersParam = None,
) -> dict[str, Any]:
    platform = get_platform(request)
    site = await stats_site(session, platform, principal, site_id)
    chosen = _metrics(metrics, TIMESERIES_METRICS)
    chosen_filters = parse_filters(filters)
    span = resolve(site, period, date_text)
    wanted = {"date": "day", "day": "day", "month": "month", "hour": "hour"}.get(
        interval or "", span.interval
    )
    if interval is not None and wanted != span.interval:
        raise StatsError(
            f"The period {period!r} is answered per {span.interval}; leave `interval` out.",
            code="bad_interval",
        )
    points = await query.site_timeseries(session, site, span, chosen_filters, _options(platform, site))

    def label(start: datetime) -> str:
        if span.interval == "hour":
            return start.strftime("%Y-%m-%d %H:%M:%S")
        return start.date().isoformat()

    return {
        "results": [
            {"date": label(point.start), **{name: getattr(point, name) for name in chosen}}
            for point in points
        ]
    }


@router.get("/breakdown", summary="Top values of a property (Plausible v1 breakdown)")
@route_policy(rate_limit=STATS_API_RATE)
async def breakdown(
    request: Request,
    session: Session,
    principal: Reader,
    site_id: SiteQuery,
    property: Annotated[str, Query(description="e.g. event:page, visit:source, visit:country.")],
    period: PeriodParam = "30d",
    date_text: DateParam = None,
    metrics: MetricsParam = "visitors",
    limit: Annotated[int, Query(ge=1, le=1000, description="Rows per page.")] = 100,
    page: Annotated[int, Query(ge=1, le=1000, description="Page of rows, from 1.")] = 1,
    filters: FiltersParam = None,
) -> dict[str, Any]:
    platform = get_platform(request)
    site = await stats_site(session, platform, principal, site_id)
    if property not in PROPERTIES:
        raise StatsError(
            f"Unknown property {property!r}; use one of {', '.join(PROPERTIES)}.", code="bad_property"
        )
    chosen = _metrics(metrics, BREAKDOWN_METRICS)
    wanted = parse_filters(filters)
    span = resolve(site, period, date_text)
    dimension, key = PROPERTIES[property]
    rows = await query.site_breakdown(
        session, site, span, dimension, wanted, _options(platform, site), limit=limit * page
    )
    return {
        "results": [
            {key: row.value, **{name: getattr(row, name) for name in chosen}}
            for row in rows[limit * (page - 1) :]
        ]
    }


@router.get("/realtime/visitors", summary="Visitors in the last 5 minutes (Plausible v1 realtime)")
@route_policy(rate_limit=STATS_API_RATE)
async def realtime_visitors(request: Request, session: Session, principal: Reader, site_id: SiteQuery) -> int:
    platform = get_platform(request)
    site = await stats_site(session, platform, principal, site_id)
    since = int((datetime.now(UTC) - REALTIME_WINDOW).timestamp() * 1000)
    external = store.external_store(platform)
    if external is not None:
        visitors, _, _ = await external.live(site.key, since, 0)
        return visitors
    count = await session.scalar(
        select(func.count(distinct(AnalyticsEvent.visitor_id))).where(
            AnalyticsEvent.site_key == site.key, AnalyticsEvent.ts >= since
        )
    )
    return int(count or 0)
