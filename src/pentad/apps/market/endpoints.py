"""The market REST API (/api/market). This part: the static data every page starts from — item types,
the trade hubs, and (admins) the import status. Later parts add scans, hauling, orders, P&L here or in
their own routers (plan §2)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.market import repository
from pentad.apps.market.actions.context import MarketContext
from pentad.apps.market.actions.status import book_status
from pentad.apps.market.exceptions import UnknownType
from pentad.apps.market.models import MarketType
from pentad.apps.market.permissions import MARKET_ADMIN, MARKET_USE
from pentad.apps.market.schemas import HubRead, SdeStatus, TypeRead
from pentad.apps.market.settings import MarketSettings
from pentad.core.auth.dependencies import db_session, request_actor, require
from pentad.core.auth.principal import Principal
from pentad.core.errors import problem_responses
from pentad.core.platform import get_platform

router = APIRouter(
    prefix="/api/market",
    tags=["market"],
    responses=problem_responses(400, 401, 403, 404, 422, 429),
)

Session = Annotated[AsyncSession, Depends(db_session)]
Trader = Annotated[Principal, Depends(require(MARKET_USE))]
Admin = Annotated[Principal, Depends(require(MARKET_ADMIN))]


def _type(row: MarketType) -> TypeRead:
    return TypeRead(
        id=row.id,
        name=row.name,
        group_id=row.group_id,
        market_group_id=row.market_group_id,
        volume_m3=row.volume_m3,
        packaged_volume_m3=row.packaged_volume_m3,
    )


@router.get("/types", summary="Tradeable item types whose name starts with `q` (any case)")
async def find_types(
    session: Session,
    _principal: Trader,
    q: Annotated[str, Query(min_length=2, max_length=100, description="Start of the name.")],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[TypeRead]:
    name = q.strip()
    if len(name) < 2:
        return []
    return [_type(row) for row in await repository.find_types(session, name, limit=limit)]


@router.get("/types/{type_id}", summary="An item type")
async def get_type(
    session: Session,
    _principal: Trader,
    type_id: Annotated[int, Path(ge=1, le=2**63 - 1, description="EVE type id.")],
) -> TypeRead:
    row = await repository.get_type(session, type_id)
    if row is None:
        raise UnknownType(f"No item type {type_id} in the static data.")
    return _type(row)


@router.get(
    "/hubs",
    summary="The trade hubs with their station, system and region, and how fresh their market data is",
)
async def list_hubs(request: Request, session: Session, principal: Trader) -> list[HubRead]:
    hubs = get_platform(request).app_settings(MarketSettings).hub_list
    market = MarketContext(session, get_platform(request), principal, request_actor(request, principal))
    found = []
    for info in await repository.resolve_hubs(session, hubs):
        read = HubRead(
            key=info.hub.key, station_id=info.hub.station_id, region_id=info.hub.region_id, known=info.ok
        )
        if info.ok and info.station and info.system and info.region:
            read.station_name = info.station.name
            read.system_id = info.system.id
            read.system_name = info.system.name
            read.security = info.system.security
            read.security_display = round(info.system.security, 1)
            read.region_name = info.region.name
        read.book = await book_status(market, info.hub.region_id)
        found.append(read)
    return found


@router.get("/sde", summary="The last static data import and what the static tables hold (admins)")
async def sde_status(session: Session, _principal: Admin) -> SdeStatus:
    record = await repository.latest_import(session)
    counts = await repository.static_counts(session)
    if record is None:
        return SdeStatus(imported_at=None, build=None, source=None, counts=counts)
    return SdeStatus(imported_at=record.imported_at, build=record.build, source=record.source, counts=counts)
