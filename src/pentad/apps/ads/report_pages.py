"""The report pages: `/ads/sites/{id}/report` and `/ads/campaigns/{id}/report` (a daily chart drawn with
uPlot, the table per page or source, a CSV download), for those who may read the reports. uPlot comes from
the core's /static/vendor, so the pages work without analytics."""

from __future__ import annotations

import json
import uuid
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.templating import Jinja2Templates
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from pentad.apps.ads import reports
from pentad.apps.ads.actions.context import AdsContext
from pentad.apps.ads.permissions import ADS_USE
from pentad.core.auth.dependencies import db_session, request_actor
from pentad.core.auth.principal import Principal
from pentad.core.errors import AppError, BadRequest, NotFound
from pentad.core.platform import get_platform
from pentad.core.web.pages.kit import TEMPLATES_DIR, PageAccess, failure_context, render_page

templates = Jinja2Templates(directory=[Path(__file__).parent / "templates", TEMPLATES_DIR])
router = APIRouter(include_in_schema=False)

AdsUser = Annotated[Principal, Depends(PageAccess(ADS_USE))]
Session = Annotated[AsyncSession, Depends(db_session)]
Text = Annotated[str, Query(max_length=20)]


def _params(by: str, since: str, until: str) -> tuple[reports.By, date | None, date | None]:
    if by not in ("page", "source"):
        raise BadRequest("Break the report down by page or by source.", code="invalid_report")
    try:
        first = date.fromisoformat(since) if since else None
        last = date.fromisoformat(until) if until else None
    except ValueError:
        raise BadRequest("Give the days as YYYY-MM-DD.", code="invalid_range") from None
    return ("page" if by == "page" else "source"), first, last


def _context(request: Request, session: AsyncSession, principal: Principal) -> AdsContext:
    return AdsContext(session, get_platform(request), principal, request_actor(request, principal))


def _chart(report: reports.Report) -> str:
    """The daily series as JSON for the page's chart (read by static/report.js from a data attribute)."""
    return json.dumps(
        {
            "days": [day.day.isoformat() for day in report.days],
            "served": [day.served for day in report.days],
            "viewable": [day.viewable for day in report.days],
            "clicks": [day.clicks for day in report.days],
            "conversions": [day.conversions for day in report.days],
        }
    )


async def _page(
    request: Request, ads: AdsContext, scope: str, scope_id: uuid.UUID, by: str, since: str, until: str
) -> Response:
    context: dict[str, Any] = {"by": by, "since": since, "until": until}
    title = "Report"
    try:
        parsed = _params(by, since, until)
        if scope == "site":
            report = await reports.site_report(ads, scope_id, *parsed)
            title = (await ads.site(scope_id)).row.name
        else:
            report = await reports.campaign_report(ads, scope_id, *parsed)
        context |= {"report": report, "chart": _chart(report)}
    except NotFound:
        raise
    except AppError as exc:
        context |= {"report": None, "chart": "{}", **failure_context(exc)}
    back = f"/ads/sites/{scope_id}" if scope == "site" else f"/ads/campaigns/{scope_id}"
    return render_page(
        request, "ads_report.html", ads.principal, renderer=templates, scope=scope, scope_id=scope_id,
        title=title, back=back, base=f"/ads/{scope}s/{scope_id}/report", **context,
    )  # fmt: skip


@router.get("/ads/sites/{site_id}/report")
async def site_report_page(
    request: Request, site_id: uuid.UUID, principal: AdsUser, session: Session,
    by: Text = "page", since: Text = "", until: Text = "",
) -> Response:  # fmt: skip
    return await _page(request, _context(request, session, principal), "site", site_id, by, since, until)


@router.get("/ads/campaigns/{campaign_id}/report")
async def campaign_report_page(
    request: Request, campaign_id: uuid.UUID, principal: AdsUser, session: Session,
    by: Text = "page", since: Text = "", until: Text = "",
) -> Response:  # fmt: skip
    return await _page(
        request, _context(request, session, principal), "campaign", campaign_id, by, since, until
    )


@router.get("/ads/sites/{site_id}/report.csv")
async def site_report_csv(
    request: Request, site_id: uuid.UUID, principal: AdsUser, session: Session,
    by: Text = "page", since: Text = "", until: Text = "",
) -> Response:  # fmt: skip
    ads = _context(request, session, principal)
    return reports.csv_response(
        await reports.site_report(ads, site_id, *_params(by, since, until)), "ads-site"
    )


@router.get("/ads/campaigns/{campaign_id}/report.csv")
async def campaign_report_csv(
    request: Request, campaign_id: uuid.UUID, principal: AdsUser, session: Session,
    by: Text = "page", since: Text = "", until: Text = "",
) -> Response:  # fmt: skip
    ads = _context(request, session, principal)
    report = await reports.campaign_report(ads, campaign_id, *_params(by, since, until))
    return reports.csv_response(report, "ads-campaign")
