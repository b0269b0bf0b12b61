"""The analytics REST API: sites (CRUD, sharing, data quality) and their statistics."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import StreamingResponse

from pentad.apps.analytics import export, query, repository, stats, store
from pentad.apps.analytics.access import access_site
from pentad.apps.analytics.actions.goals import GoalService
from pentad.apps.analytics.actions.sites import SiteService, site_read
from pentad.apps.analytics.live import LiveFrame, live_frame
from pentad.apps.analytics.permissions import ANALYTICS_USE, SITE_MANAGE
from pentad.apps.analytics.schemas import (
    DropCount,
    DropsRead,
    FunnelCreate,
    FunnelRead,
    GoalCreate,
    GoalRead,
    GrantCreate,
    GrantRead,
    ShareCreate,
    ShareRead,
    SiteCreate,
    SiteRead,
    SiteUpdate,
)
from pentad.apps.analytics.sharing import ShareService, share_read
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
PeriodQuery = stats.PeriodQuery
FromQuery = stats.FromQuery
ToQuery = stats.ToQuery
RangeQuery = stats.RangeQuery


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


# ------------------------------------------------------------------ goals and funnels


def _goals(request: Request, session: AsyncSession, principal: Principal) -> GoalService:
    return GoalService(session, get_platform(request), principal, request_actor(request, principal))


GoalId = Annotated[uuid.UUID, Path(description="Goal id.")]
FunnelId = Annotated[uuid.UUID, Path(description="Funnel id.")]


@router.get("/sites/{site_id}/goals", summary="A site's goals")
async def list_goals(
    site_id: SiteId, request: Request, session: Session, principal: Member
) -> list[GoalRead]:
    return [GoalRead.model_validate(g) for g in await _goals(request, session, principal).goals(site_id)]


@router.post("/sites/{site_id}/goals", status_code=201, summary="Add a goal (owners)")
async def create_goal(
    site_id: SiteId, data: GoalCreate, request: Request, session: Session, principal: Member
) -> GoalRead:
    return GoalRead.model_validate(await _goals(request, session, principal).create_goal(site_id, data))


@router.delete("/sites/{site_id}/goals/{goal_id}", status_code=204, summary="Remove a goal (owners)")
async def delete_goal(
    site_id: SiteId, goal_id: GoalId, request: Request, session: Session, principal: Member
) -> Response:
    await _goals(request, session, principal).delete_goal(site_id, goal_id)
    return Response(status_code=204)


@router.get("/sites/{site_id}/funnels", summary="A site's funnels")
async def list_funnels(
    site_id: SiteId, request: Request, session: Session, principal: Member
) -> list[FunnelRead]:
    return [FunnelRead.model_validate(f) for f in await _goals(request, session, principal).funnels(site_id)]


@router.post("/sites/{site_id}/funnels", status_code=201, summary="Define a funnel (owners)")
async def create_funnel(
    site_id: SiteId, data: FunnelCreate, request: Request, session: Session, principal: Member
) -> FunnelRead:
    return FunnelRead.model_validate(await _goals(request, session, principal).create_funnel(site_id, data))


@router.delete("/sites/{site_id}/funnels/{funnel_id}", status_code=204, summary="Remove a funnel (owners)")
async def delete_funnel(
    site_id: SiteId, funnel_id: FunnelId, request: Request, session: Session, principal: Member
) -> Response:
    await _goals(request, session, principal).delete_funnel(site_id, funnel_id)
    return Response(status_code=204)


# ------------------------------------------------------------------ statistics


async def _ask(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    site_id: uuid.UUID,
    asked: stats.RangeParams,
) -> stats.Ask:
    platform = get_platform(request)
    site = (await access_site(session, platform, principal, site_id)).site
    return stats.Ask.of(platform, site, asked)


@router.get("/sites/{site_id}/stats/aggregate", summary="Top stats over a range")
async def stats_aggregate(
    site_id: SiteId,
    request: Request,
    session: Session,
    principal: Member,
    asked: RangeQuery,
    compare: Annotated[
        query.Comparison | None,
        Query(description="Also answer for the previous period of the same length, or a year earlier."),
    ] = None,
) -> stats.Aggregate:
    ask = await _ask(request, session, principal, site_id, asked)
    return await stats.aggregate(session, ask, compare)


@router.get("/sites/{site_id}/stats/timeseries", summary="Visitors and pageviews per hour, day or month")
async def stats_timeseries(
    site_id: SiteId,
    request: Request,
    session: Session,
    principal: Member,
    asked: RangeQuery,
) -> stats.Timeseries:
    ask = await _ask(request, session, principal, site_id, asked)
    return await stats.timeseries(session, ask)


@router.get("/sites/{site_id}/stats/breakdown/{dimension}", summary="Top values of a dimension")
async def stats_breakdown(
    site_id: SiteId,
    dimension: Annotated[query.Dimension, Path(description="What to break the traffic down by.")],
    request: Request,
    session: Session,
    principal: Member,
    asked: RangeQuery,
    limit: Annotated[int, Query(ge=1, le=1000, description="How many rows.")] = 10,
) -> stats.Breakdown:
    ask = await _ask(request, session, principal, site_id, asked)
    return await stats.breakdown(session, ask, dimension, limit)


@router.get("/sites/{site_id}/stats/live", summary="Visitors on the site now (the last 5 minutes)")
async def stats_live(site_id: SiteId, request: Request, session: Session, principal: Member) -> LiveFrame:
    site = (await access_site(session, get_platform(request), principal, site_id)).site
    return await live_frame(session, site.key, store=store.external_store(get_platform(request)))


@router.get("/sites/{site_id}/stats/goals", summary="Goal conversions over a range")
async def stats_goals(
    site_id: SiteId,
    request: Request,
    session: Session,
    principal: Member,
    asked: RangeQuery,
) -> stats.Goals:
    ask = await _ask(request, session, principal, site_id, asked)
    return await stats.goals(session, ask)


@router.get("/sites/{site_id}/stats/props", summary="Custom event properties: keys, or one key's values")
async def stats_props(
    site_id: SiteId,
    request: Request,
    session: Session,
    principal: Member,
    asked: RangeQuery,
    key: Annotated[str | None, Query(max_length=300, description="List this property's values.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="How many rows.")] = 10,
) -> stats.Props:
    ask = await _ask(request, session, principal, site_id, asked)
    return await stats.props(session, ask, key, limit)


@router.get("/sites/{site_id}/funnels/{funnel_id}/report", summary="How far visitors get through a funnel")
async def funnel_report(
    site_id: SiteId,
    funnel_id: FunnelId,
    request: Request,
    session: Session,
    principal: Member,
    asked: RangeQuery,
) -> stats.FunnelReport:
    site, funnel = await _goals(request, session, principal).funnel(site_id, funnel_id)
    ask = stats.Ask.of(get_platform(request), site, asked)
    return await stats.funnel(session, ask, funnel)


# ------------------------------------------------------------------ CSV export


@router.get(
    "/sites/{site_id}/export/{panel}",
    summary="Export a panel as CSV, or every panel as a ZIP",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}, "application/zip": {}}}},
)
async def export_panel(
    site_id: SiteId,
    panel: Annotated[
        str, Path(description=f"`<panel>.csv` ({', '.join(export.PANELS)}) or `all.zip`.", max_length=40)
    ],
    request: Request,
    session: Session,
    principal: Member,
    asked: RangeQuery,
) -> StreamingResponse:
    ask = await _ask(request, session, principal, site_id, asked)
    return await export.export_response(session, ask, panel)


# ------------------------------------------------------------------ shared links


def _shares(request: Request, session: AsyncSession, principal: Principal) -> ShareService:
    return ShareService(session, get_platform(request), principal, request_actor(request, principal))


@router.post(
    "/sites/{site_id}/shares", status_code=201, summary="Make a shared link to the dashboard (owners)"
)
async def create_share(
    site_id: SiteId, data: ShareCreate, request: Request, session: Session, principal: Member
) -> ShareRead:
    share = await _shares(request, session, principal).create(site_id, data)
    return share_read(get_platform(request), share)


@router.get("/sites/{site_id}/shares", summary="A site's shared links (owners)")
async def list_shares(
    site_id: SiteId, request: Request, session: Session, principal: Member
) -> list[ShareRead]:
    platform = get_platform(request)
    return [share_read(platform, s) for s in await _shares(request, session, principal).list(site_id)]


@router.delete("/sites/{site_id}/shares/{share_id}", status_code=204, summary="Revoke a shared link (owners)")
async def revoke_share(
    site_id: SiteId,
    share_id: Annotated[uuid.UUID, Path(description="Shared link id.")],
    request: Request,
    session: Session,
    principal: Member,
) -> Response:
    await _shares(request, session, principal).revoke(site_id, share_id)
    return Response(status_code=204)
