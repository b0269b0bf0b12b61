"""A trader's own data (/api/market): character sync status and "sync now", fee rates from the
character's real skills and standings, my orders with undercut/expiry/fill, and P&L. The caller's own
characters only: another user's character is 404 `character_not_found`.

Thin: each route builds the caller's MarketContext and makes one action call."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.market.actions import orders, pnl, sync
from pentad.apps.market.actions.context import MarketContext
from pentad.apps.market.permissions import MARKET_USE
from pentad.apps.market.trader_schemas import FeesRead, MyOrderRead, PnlRead, SyncStatus
from pentad.core.auth.dependencies import db_session, request_actor, require_user
from pentad.core.auth.principal import Principal
from pentad.core.errors import problem_responses
from pentad.core.platform import get_platform

router = APIRouter(
    prefix="/api/market", tags=["market"], responses=problem_responses(400, 401, 403, 404, 409, 422, 429)
)

LinkId = Annotated[uuid.UUID, Path(description="The character link's id.")]
Session = Annotated[AsyncSession, Depends(db_session)]
Person = Annotated[Principal, Depends(require_user(MARKET_USE))]
CharacterFilter = Annotated[
    uuid.UUID | None, Query(description="One of your character links (default: all).")
]
Days = Annotated[int, Query(ge=1, le=366, description="Days back from `until`.")]


def _context(request: Request, session: AsyncSession, principal: Principal) -> MarketContext:
    return MarketContext(session, get_platform(request), principal, request_actor(request, principal))


@router.get("/characters/{link_id}/sync", summary="Where the character's ESI data stands")
async def get_sync(link_id: LinkId, request: Request, session: Session, principal: Person) -> SyncStatus:
    return await sync.get_sync_status(_context(request, session, principal), link_id)


@router.post(
    "/characters/{link_id}/sync",
    status_code=202,
    summary="Sync the character's orders, wallet, skills and standings from ESI now",
)
async def request_sync(link_id: LinkId, request: Request, session: Session, principal: Person) -> SyncStatus:
    return await sync.do_request_sync(_context(request, session, principal), link_id)


@router.get(
    "/characters/{link_id}/fees", summary="The character's broker fee, relist fee and sales tax at a station"
)
async def get_fees(
    link_id: LinkId,
    request: Request,
    session: Session,
    principal: Person,
    station_id: Annotated[int, Query(ge=1, le=2**63 - 1, description="NPC station or structure id.")],
) -> FeesRead:
    return await sync.get_fees(_context(request, session, principal), link_id, station_id)


@router.get("/orders", summary="Your characters' orders: undercut, expiry and fill against the current book")
async def list_orders(
    request: Request,
    session: Session,
    principal: Person,
    character: CharacterFilter = None,
    state: Annotated[Literal["open", "closed"], Query()] = "open",
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> list[MyOrderRead]:
    return await orders.list_my_orders(
        _context(request, session, principal), character, state=state, limit=limit
    )


@router.get("/pnl", summary="Realised profit (FIFO cost basis) per item, in total and per day")
async def get_pnl(
    request: Request,
    session: Session,
    principal: Person,
    character: CharacterFilter = None,
    days: Days = 30,
    until: Annotated[date | None, Query(description="Last day (UTC), default today.")] = None,
) -> PnlRead:
    return await pnl.get_pnl(_context(request, session, principal), character, days=days, until=until)


@router.get("/pnl/types/{type_id}", summary="Realised profit of one item over time")
async def get_type_pnl(
    request: Request,
    session: Session,
    principal: Person,
    type_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    character: CharacterFilter = None,
    days: Days = 30,
    until: Annotated[date | None, Query()] = None,
) -> PnlRead:
    return await pnl.get_pnl(
        _context(request, session, principal), character, days=days, type_id=type_id, until=until
    )
