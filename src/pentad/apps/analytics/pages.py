"""The analytics pages (`/analytics`: your sites, `/analytics/{site_id}`: a site's dashboard) and the
public files a tracked page loads: the tracker script and, for the dashboard, uPlot."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.templating import Jinja2Templates
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from pentad.apps.analytics.access import access_site
from pentad.apps.analytics.actions.sites import SiteService
from pentad.apps.analytics.permissions import ANALYTICS_USE, SITE_MANAGE
from pentad.apps.analytics.schemas import SiteCreate
from pentad.apps.analytics.settings import AnalyticsSettings
from pentad.apps.analytics.tracker import Tracker, build
from pentad.core.auth.dependencies import db_session, request_actor
from pentad.core.auth.principal import Principal
from pentad.core.errors import AppError, NotFound
from pentad.core.platform import get_platform
from pentad.core.policy import UNLIMITED, route_policy
from pentad.core.web.pages.kit import (
    TEMPLATES_DIR,
    PageAccess,
    failure_context,
    parse_form,
    render_page,
    see_other,
)

templates = Jinja2Templates(directory=[Path(__file__).parent / "templates", TEMPLATES_DIR])

router = APIRouter(include_in_schema=False)

AnalyticsUser = Annotated[Principal, Depends(PageAccess(ANALYTICS_USE))]
Session = Annotated[AsyncSession, Depends(db_session)]

IMMUTABLE = "public, max-age=31536000, immutable"


def tracker_of(request: Request) -> Tracker:
    return build(tuple(get_platform(request).app_settings(AnalyticsSettings).download_extensions))


def _script(request: Request, tracker: Tracker, cache_control: str) -> Response:
    headers = {"Cache-Control": cache_control, "ETag": tracker.etag, "Vary": "Accept-Encoding"}
    if tracker.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    body = tracker.body
    if "gzip" in request.headers.get("accept-encoding", ""):
        body, headers["Content-Encoding"] = tracker.gzipped, "gzip"
    return Response(body, media_type="text/javascript", headers=headers)


@router.get("/analytics/js/script.js")
@route_policy(public="the tracker script, loaded by every tracked page", rate_limit=UNLIMITED)
async def tracker_script(request: Request) -> Response:
    tracker = tracker_of(request)
    max_age = get_platform(request).app_settings(AnalyticsSettings).tracker_max_age
    return _script(request, tracker, f"public, max-age={max_age}")


@router.get("/analytics/js/t.{digest}.js")
@route_policy(public="the tracker script at its versioned URL", rate_limit=UNLIMITED)
async def tracker_versioned(digest: str, request: Request) -> Response:
    tracker = tracker_of(request)
    if digest != tracker.digest:
        raise NotFound("No such version of the tracker.")
    return _script(request, tracker, IMMUTABLE)


@router.get("/analytics")
async def sites_page(request: Request, principal: AnalyticsUser, session: Session) -> Response:
    service = SiteService(session, get_platform(request), principal, request_actor(request, principal))
    return render_page(
        request, "analytics_sites.html", principal, renderer=templates, sites=await service.list()
    )


@router.post("/analytics/sites")
async def create_site_form(
    request: Request,
    principal: AnalyticsUser,
    session: Session,
    domain: Annotated[str, Form()],
    timezone: Annotated[str, Form()] = "UTC",
) -> Response:
    service = SiteService(session, get_platform(request), principal, request_actor(request, principal))
    try:
        data = parse_form(SiteCreate, domain=domain, timezone=timezone or "UTC")
        site = await service.create(data, principal.id)
    except AppError as exc:
        return render_page(
            request, "analytics_sites.html", principal, renderer=templates,
            sites=await service.list(), domain=domain, timezone=timezone, **failure_context(exc),
        )  # fmt: skip
    return see_other(f"/analytics/{site.id}")


@router.get("/analytics/{site_id}")
async def dashboard_page(
    site_id: uuid.UUID, request: Request, principal: AnalyticsUser, session: Session
) -> Response:
    access = await access_site(session, get_platform(request), principal, site_id)
    tracker = tracker_of(request)
    base = get_platform(request).base_url.rstrip("/")
    snippet = (
        f'<script defer data-domain="{access.site.domain}" src="{base}/analytics/js/script.js"></script>'
    )
    return render_page(
        request, "analytics_dashboard.html", principal, renderer=templates, site=access.site,
        can_manage=access.has(SITE_MANAGE), snippet=snippet, tracker_bytes=len(tracker.gzipped),
    )  # fmt: skip
