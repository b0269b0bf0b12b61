"""The analytics REST API: sites (CRUD, sharing, data quality) and their statistics."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.analytics import query, repository, store
from pentad.apps.analytics.access import access_site
from pentad.apps.analytics.actions.sites import SiteService, site_read
from pentad.apps.analytics.permissions import ANALYTICS_USE, SITE_MANAGE
from pentad.apps.analytics.schemas import (
    DropCount,
    DropsRead,
    GrantCreate,
    GrantRead,
    SiteCreate,
    SiteRead,
    SiteUpdate,
)
from pentad.apps.analytics.settings import AnalyticsSettings
from pentad.core.auth.dependencies import db_session, request_actor, require
from pentad.core.auth.principal import Principal
from pentad.core.errors import problem_responses
from pentad.core.platform import get_platform

router = APIRouter(
    prefix="/api/analytics",
    tags=["analytics"],
    responses=problem_responses(400, 401, 403, 404, 409, 422, 429),
)

SiteId = Annotated[uuid.UUID, Path(description="Site id.")]
Session = Annotated[AsyncSession, Depends(db_session)]
Member = Annotated[Principal, Depends(require(ANALYTICS_USE))]
PeriodQuery = Annotated[query.Period, Query(description="Range preset, or `custom` with `from` and `to`.")]
FromQuery = Annotated[date | None, Query(alias="from", description="First day of a custom range.")]
ToQuery = Annotated[date | None, Query(alias="to", description="Last day of a custom range (inclusive).")]


def _service(request: Request, session: AsyncSession, principal: Principal) -> SiteService:
    return SiteService(session, get_platform(request), principal, request_actor(request, principal))


@router.post("/sites", status_code=201, summary="Add a site (you become its owner)")
async def create_site(data: SiteCreate, request: Request, session: Session, principal: Member) -> SiteRead:
    owner = principal.id if principal.is_user else None
    site = await _service(request, session, principal).create(data, owner)
    return site_read(site, frozenset({SITE_MANAGE.key}))


@router.get("/sites", summary="The sites you may see")
async def list_sites(request: Request, session: Session, principal: Member) -> list[SiteRead]:
    return await _service(request, session, principal).list()


@router.get("/sites/{site_id}", summary="A site's settings")
async def get_site(site_id: SiteId, request: Request, session: Session, principal: Member) -> SiteRead:
    access = await access_site(session, get_platform(request), principal, site_id)
    return site_read(access.site, access.permissions)


@router.patch("/sites/{site_id}", summary="Change a site (owners)")
async def update_site(
    site_id: SiteId, data: SiteUpdate, request: Request, session: Session, principal: Member
) -> SiteRead:
    site = await _service(request, session, principal).update(site_id, data)
    return site_read(site, frozenset({SITE_MANAGE.key}))


@router.delete("/sites/{site_id}", status_code=204, summary="Delete a site and its data (owners)")
async def delete_site(site_id: SiteId, request: Request, session: Session, principal: Member) -> Response:
    await _service(request, session, principal).delete(site_id)
    return Response(status_code=204)


@router.post("/sites/{site_id}/grants", status_code=201, summary="Share a site with an account (owners)")
async def share_site(
    site_id: SiteId, data: GrantCreate, request: Request, session: Session, principal: Member
) -> GrantRead:
    user_id = await _service(request, session, principal).share(site_id, data)
    return GrantRead(user_id=user_id, role=data.role)


@router.get("/sites/{site_id}/grants", summary="Who the site is shared with (owners)")
async def site_grants(
    site_id: SiteId, request: Request, session: Session, principal: Member
) -> list[GrantRead]:
    return await _service(request, session, principal).holders(site_id)


@router.delete("/sites/{site_id}/grants/{user_id}", status_code=204, summary="Stop sharing a site (owners)")
async def unshare_site(
    site_id: SiteId,
    user_id: Annotated[uuid.UUID, Path(description="The account's id.")],
    request: Request,
    session: Session,
    principal: Member,
) -> Response:
    await _service(request, session, principal).unshare(site_id, user_id)
    return Response(status_code=204)


@router.get("/sites/{site_id}/drops", summary="Events dropped over a range, by reason (data quality)")
async def site_drops(
    site_id: SiteId,
    request: Request,
    session: Session,
    principal: Member,
    period: PeriodQuery = "30d",
    start: FromQuery = None,
    end: ToQuery = None,
) -> DropsRead:
    site = (await access_site(session, get_platform(request), principal, site_id)).site
    span = query.resolve_range(period, site.timezone, start=start, end=end)
    counts = await repository.count_drops(session, site.key, span.start_ms // 60_000, span.end_ms // 60_000)
    return DropsRead(
        period=period,
        total=sum(count for _, count in counts),
        reasons=[DropCount(reason=reason, count=count) for reason, count in counts],
    )


# ------------------------------------------------------------------ statistics


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
    comparison: Compared | None = Field(None, description="With `compare`: the range compared with.")


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
    rows: list[BreakdownRow]


@router.get("/sites/{site_id}/stats/aggregate", summary="Top stats over a range")
async def stats_aggregate(
    site_id: SiteId,
    request: Request,
    session: Session,
    principal: Member,
    period: PeriodQuery = "30d",
    start: FromQuery = None,
    end: ToQuery = None,
    compare: Annotated[
        query.Comparison | None,
        Query(description="Also answer for the previous period of the same length, or a year earlier."),
    ] = None,
) -> Aggregate:
    platform = get_platform(request)
    site = (await access_site(session, platform, principal, site_id)).site
    span = query.resolve_range(period, site.timezone, start=start, end=end)
    timeout = platform.app_settings(AnalyticsSettings).session_timeout
    planning = query.Planning(
        cache=platform.cache, site_version=site.version, store=store.event_store(platform)
    )
    found = await query.totals(session, site.key, span, timeout, planning)
    comparison = None
    if compare is not None:
        other = query.compare_range(span, compare)
        before = await query.totals(session, site.key, other, timeout, planning)
        metrics = (
            "visitors",
            "visits",
            "pageviews",
            "events",
            "bounce_rate",
            "visit_duration",
            "views_per_visit",
        )
        comparison = Compared(
            start=other.start,
            end=other.end,
            **{name: getattr(before, name) for name in metrics},
            change={
                name: query.percent_change(getattr(found, name), getattr(before, name)) for name in metrics
            },
        )
    return Aggregate(
        comparison=comparison,
        period=period,
        start=span.start,
        end=span.end,
        visitors=found.visitors,
        visits=found.visits,
        pageviews=found.pageviews,
        events=found.events,
        bounce_rate=found.bounce_rate,
        visit_duration=found.visit_duration,
        views_per_visit=found.views_per_visit,
    )


@router.get("/sites/{site_id}/stats/timeseries", summary="Visitors and pageviews per hour, day or month")
async def stats_timeseries(
    site_id: SiteId,
    request: Request,
    session: Session,
    principal: Member,
    period: PeriodQuery = "30d",
    start: FromQuery = None,
    end: ToQuery = None,
) -> Timeseries:
    platform = get_platform(request)
    site = (await access_site(session, platform, principal, site_id)).site
    span = query.resolve_range(period, site.timezone, start=start, end=end)
    timeout = platform.app_settings(AnalyticsSettings).session_timeout
    planning = query.Planning(
        cache=platform.cache, site_version=site.version, store=store.event_store(platform)
    )
    points = await query.timeseries(session, site.key, span, timeout, planning)
    return Timeseries(
        period=period,
        interval=span.interval,
        points=[TimePoint(start=p.start, visitors=p.visitors, pageviews=p.pageviews) for p in points],
    )


@router.get("/sites/{site_id}/stats/breakdown/{dimension}", summary="Top values of a dimension")
async def stats_breakdown(
    site_id: SiteId,
    dimension: Annotated[query.Dimension, Path(description="What to break the traffic down by.")],
    request: Request,
    session: Session,
    principal: Member,
    period: PeriodQuery = "30d",
    start: FromQuery = None,
    end: ToQuery = None,
    limit: Annotated[int, Query(ge=1, le=100, description="How many rows.")] = 10,
) -> Breakdown:
    platform = get_platform(request)
    site = (await access_site(session, platform, principal, site_id)).site
    span = query.resolve_range(period, site.timezone, start=start, end=end)
    timeout = platform.app_settings(AnalyticsSettings).session_timeout
    planning = query.Planning(
        cache=platform.cache, site_version=site.version, store=store.event_store(platform)
    )
    rows = await query.breakdown(
        session, site.key, span, dimension, limit=limit, session_timeout=timeout, planning=planning
    )
    return Breakdown(
        period=period,
        dimension=dimension,
        rows=[
            BreakdownRow(value=r.value, visitors=r.visitors, pageviews=r.pageviews, events=r.events)
            for r in rows
        ],
    )
