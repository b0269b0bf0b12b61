"""The analysis API: the station trading scan at a hub and the hauling search between hubs (plan §2).
Thin: each route builds the caller's MarketContext and makes one action call (actions/scans.py); answers
are cached for five minutes per order book and question."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.market.actions import scans
from pentad.apps.market.actions.context import MarketContext
from pentad.apps.market.permissions import MARKET_USE
from pentad.apps.market.schemas import (
    HaulingRead,
    HaulingRequest,
    HistoryRead,
    StationScanRead,
    StationScanRequest,
)
from pentad.core.auth.dependencies import db_session, request_actor, require
from pentad.core.auth.principal import Principal
from pentad.core.errors import problem_responses
from pentad.core.platform import get_platform
from pentad.core.policy import RateLimitClass, route_policy

SCAN_LIMIT = RateLimitClass("market_scan", "120/minute")

router = APIRouter(
    prefix="/api/market", tags=["market"], responses=problem_responses(400, 401, 403, 404, 409, 422, 429)
)

Session = Annotated[AsyncSession, Depends(db_session)]
Trader = Annotated[Principal, Depends(require(MARKET_USE))]
HubKey = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[a-z0-9_-]+$", description="Hub key.")]


def _context(request: Request, session: AsyncSession, principal: Principal) -> MarketContext:
    return MarketContext(session, get_platform(request), principal, request_actor(request, principal))


@router.get("/hubs/{hub}/station-trading", summary="Station trading: what to trade at a hub, best first")
@route_policy(rate_limit=SCAN_LIMIT)
async def station_trading(
    request: Request,
    session: Session,
    principal: Trader,
    hub: HubKey,
    query: Annotated[StationScanRequest, Query()],
) -> StationScanRead:
    """Every type with both sides at the hub's station, ranked by what it could earn a day after broker
    fees, sales tax and relists at the fee rates of the skills and standings given."""
    return await scans.get_station_scan(_context(request, session, principal), hub, query)


@router.get("/hauling", summary="Hauling: buy at one hub, sell at another, best profit per jump first")
@route_policy(rate_limit=SCAN_LIMIT)
async def hauling(
    request: Request,
    session: Session,
    principal: Trader,
    query: Annotated[HaulingRequest, Query()],
) -> HaulingRead:
    """Units worth moving between every ordered pair of the hubs (depth-aware prices on both books,
    capped by the cargo hold and the collateral), over the route preference given."""
    return await scans.get_hauls(_context(request, session, principal), query)


@router.get("/hubs/{hub}/history/{type_id}", summary="Daily price history of a type in a hub's region")
async def history(
    request: Request,
    session: Session,
    principal: Trader,
    hub: HubKey,
    type_id: Annotated[int, Path(ge=1, le=2**63 - 1, description="EVE type id.")],
    days: Annotated[int, Query(ge=1, le=400, description="How many days back.")] = 90,
) -> HistoryRead:
    """Average, highest and lowest price, volume and order count a day (ESI's market history)."""
    return await scans.get_history(_context(request, session, principal), hub, type_id, days)
