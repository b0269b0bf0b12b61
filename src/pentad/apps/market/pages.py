"""The market's web pages (signed-in members with `market.use`): the dashboard (hubs and their books),
station trading (the scan as a table, a price history chart with volume in uPlot), hauling (the search as
a table) and the advisor chat (`market.advisor`; the answer streams from /api/market/advisor/ask/stream).
Tables are rendered on the server by the same actions as the API; the scripts in static/market.js only
draw the chart and run the chat."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from pentad.apps.market import repository
from pentad.apps.market.actions import scans
from pentad.apps.market.actions.context import MarketContext
from pentad.apps.market.actions.status import book_status, hub_statuses
from pentad.apps.market.permissions import MARKET_ADVISOR, MARKET_USE
from pentad.apps.market.schemas import HaulingRequest, StationScanRequest
from pentad.core.auth.dependencies import db_session, request_actor
from pentad.core.auth.principal import Principal
from pentad.core.errors import AppError
from pentad.core.platform import get_platform
from pentad.core.web.pages.kit import TEMPLATES_DIR, PageAccess, render_page

templates = Jinja2Templates(directory=[Path(__file__).parent / "templates", TEMPLATES_DIR])
router = APIRouter(include_in_schema=False)

Trader = Annotated[Principal, Depends(PageAccess(MARKET_USE))]
Asker = Annotated[Principal, Depends(PageAccess(MARKET_ADVISOR))]
Session = Annotated[AsyncSession, Depends(db_session)]


def _context(request: Request, session: AsyncSession, principal: Principal) -> MarketContext:
    return MarketContext(session, get_platform(request), principal, request_actor(request, principal))


def _query(request: Request) -> dict[str, str | list[str]]:
    found: dict[str, str | list[str]] = {}
    for key, value in request.query_params.multi_items():
        if value == "":
            continue
        if key == "hubs":
            found.setdefault("hubs", [])
            found["hubs"].append(value)  # type: ignore[union-attr]
        else:
            found[key] = value
    return found


@router.get("/market")
async def dashboard(request: Request, session: Session, principal: Trader) -> Response:
    market = _context(request, session, principal)
    hubs = []
    for info in await repository.resolve_hubs(session, market.settings.hub_list):
        version = await scans.book_version(market, info.hub.region_id)
        hubs.append({"info": info, "version": version})
    statuses = await hub_statuses(market, [hub.region_id for hub in market.settings.hub_list])
    return render_page(request, "market_dashboard.html", principal, renderer=templates, hubs=hubs,
                       can_ask=principal.has(MARKET_ADVISOR), statuses=statuses)  # fmt: skip


@router.get("/market/trading")
async def trading(request: Request, session: Session, principal: Trader) -> Response:
    market = _context(request, session, principal)
    query = _query(request)
    hub = str(query.pop("hub", market.settings.hub_list[0].key))
    scan, error = None, None
    try:
        scan = await scans.get_station_scan(market, hub, StationScanRequest.model_validate(query))
    except ValidationError as invalid:
        error = f"Check the form: {invalid.errors()[0]['msg']}"
    except AppError as failure:
        error = failure.message
    known = market.settings.hub(hub)
    statuses = [] if known is None else [await book_status(market, known.region_id)]
    return render_page(request, "market_trading.html", principal, renderer=templates, scan=scan, error=error,
                       hub=hub, hubs=market.settings.hub_list, form=query, statuses=statuses)  # fmt: skip


@router.get("/market/hauling")
async def hauling(request: Request, session: Session, principal: Trader) -> Response:
    market = _context(request, session, principal)
    query = _query(request)
    found, error = None, None
    try:
        found = await scans.get_hauls(market, HaulingRequest.model_validate(query))
    except ValidationError as invalid:
        error = f"Check the form: {invalid.errors()[0]['msg']}"
    except AppError as failure:
        error = failure.message
    statuses = await hub_statuses(market, [hub.region_id for hub in market.settings.hub_list])
    return render_page(request, "market_hauling.html", principal, renderer=templates, found=found,
                       error=error, hubs=market.settings.hub_list, form=query, statuses=statuses)  # fmt: skip


@router.get("/market/advisor")
async def advisor_page(request: Request, principal: Asker) -> Response:
    return render_page(request, "market_advisor.html", principal, renderer=templates)
