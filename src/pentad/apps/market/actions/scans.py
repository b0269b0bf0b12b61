"""Station trading scans and hauling searches as users ask for them: the hub resolved, the fee rates from
the skills given, the answer cached for SCAN_CACHE_TTL seconds per book (the key names the region's current
snapshot, so a new book is never answered from an older one's cache). The advisor's tools call these too."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pentad.apps.market import repository
from pentad.apps.market.actions.context import MarketContext
from pentad.apps.market.actions.status import book_status, hub_statuses
from pentad.apps.market.analysis.fees import FeeBases, FeeRates, FeeSkills, OwnerStandings, fee_rates
from pentad.apps.market.analysis.hauling import LADDERS, HaulLimits, LadderCache, hauling_search, hub_places
from pentad.apps.market.analysis.routes import Preference
from pentad.apps.market.analysis.station import ScanFilters, station_scan
from pentad.apps.market.exceptions import NoMarketData, UnknownHub, UnknownType
from pentad.apps.market.models import MarketRegionState
from pentad.apps.market.schemas import (
    FeeRatesRead,
    HaulingRead,
    HaulingRequest,
    HaulRead,
    HistoryDayRead,
    HistoryRead,
    StationScanRead,
    StationScanRequest,
    StationTradeRead,
)
from pentad.apps.market.settings import Hub

SCAN_CACHE_TTL = 300
"""Seconds a scan or hauling answer is reused for the same book and the same question."""


@dataclass(frozen=True)
class BookVersion:
    region_id: int
    snapshot_id: int
    captured_at: datetime


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def check_hub(market: MarketContext, key: str) -> Hub:
    hub = market.settings.hub(key)
    if hub is None:
        raise UnknownHub(key)
    return hub


async def book_version(market: MarketContext, region_id: int) -> BookVersion | None:
    """Which snapshot of the region readers see now (None: none stored yet)."""
    state = await market.session.get(MarketRegionState, region_id)
    if state is None or state.current_snapshot_id is None or state.captured_at is None:
        return None
    return BookVersion(region_id, int(state.current_snapshot_id), _utc(state.captured_at))


def rates_for(market: MarketContext, skills: FeeSkills, faction: Decimal, corporation: Decimal) -> FeeRates:
    return fee_rates(
        skills,
        OwnerStandings(faction=faction, corporation=corporation),
        FeeBases.from_settings(market.settings),
    )


def _rates_read(rates: FeeRates) -> FeeRatesRead:
    return FeeRatesRead(broker=rates.broker, sales_tax=rates.sales_tax, relist=rates.relist)


def _key(kind: str, versions: list[BookVersion], question: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(question, sort_keys=True, default=str).encode()).hexdigest()[:32]
    books = ",".join(f"{v.region_id}:{v.snapshot_id}" for v in versions)
    return f"market:{kind}:{books}:{digest}"


async def get_station_scan(market: MarketContext, key: str, request: StationScanRequest) -> StationScanRead:
    """The station trading scan at hub `key` (cached per book and question)."""
    hub = check_hub(market, key)
    version = await book_version(market, hub.region_id)
    if version is None:
        raise NoMarketData(key)
    skills = FeeSkills(request.accounting, request.broker_relations, request.advanced_broker_relations)
    rates = rates_for(market, skills, request.faction_standing, request.corporation_standing)
    filters = ScanFilters(
        min_daily_volume=request.min_daily_volume,
        min_margin=request.min_margin,
        max_capital=request.max_capital,
        limit=request.limit,
    )

    async def load() -> dict[str, Any]:
        scan = await station_scan(market.session, hub.station_id, hub.region_id, rates, filters)
        if scan is None:
            raise NoMarketData(key)
        names = await repository.types_by_ids(market.session, [t.type_id for t in scan.trades])
        trades = [
            StationTradeRead(
                type_id=t.type_id, type_name=names[t.type_id].name if t.type_id in names else None,
                best_bid=t.best_bid, best_ask=t.best_ask, buy_price=t.buy_price, sell_price=t.sell_price,
                daily_volume=t.daily_volume, volume_source=t.volume_source, bid_count=t.bid_count,
                ask_count=t.ask_count, updates_last_hour=t.updates_last_hour, units_per_day=t.units_per_day,
                profit_per_unit=t.profit_per_unit, relists_per_day=t.relists_per_day,
                relist_cost_per_day=t.relist_cost_per_day, daily_profit=t.daily_profit, margin=t.margin,
                capital=t.capital,
            )
            for t in scan.trades
        ]  # fmt: skip
        return StationScanRead(
            hub=key, station_id=hub.station_id, region_id=hub.region_id, snapshot_id=scan.snapshot_id,
            captured_at=_utc(scan.captured_at), rates=_rates_read(rates), trades=trades,
        ).model_dump(mode="json")  # fmt: skip

    question = request.model_dump(mode="json") | {"hub": key}
    cached = await market.platform.cache.get_or_set(_key("scan", [version], question), SCAN_CACHE_TTL, load)
    answer = StationScanRead.model_validate(cached)
    answer.book_status = await book_status(market, hub.region_id)  # now, not when the answer was cached
    return answer


def _ladder_cache(market: MarketContext) -> LadderCache | None:
    """The process's hub ladders per snapshot; None where the app's resources are not open (an app
    built without its lifespan, as in tests): the search then reads the books itself."""
    try:
        return market.platform.resource(LADDERS)
    except LookupError:
        return None


async def get_hauls(market: MarketContext, request: HaulingRequest) -> HaulingRead:
    """The hauling search between the hubs asked for (all configured hubs by default; cached per books
    and question)."""
    hubs = [check_hub(market, key) for key in request.hubs] if request.hubs else market.settings.hub_list
    versions = [v for v in [await book_version(market, hub.region_id) for hub in hubs] if v is not None]
    if not versions:
        raise NoMarketData(",".join(hub.key for hub in hubs))
    skills = FeeSkills(request.accounting, request.broker_relations, request.advanced_broker_relations)
    rates = rates_for(market, skills, Decimal(0), Decimal(0))
    limits = HaulLimits(cargo_m3=request.cargo_m3, collateral=request.collateral)
    preference: Preference = request.preference

    async def load() -> dict[str, Any]:
        places = await hub_places(market.session, hubs)
        found = await hauling_search(
            market.session, places, rates, limits, preference=preference, limit=request.limit,
            cache=_ladder_cache(market),
        )  # fmt: skip
        names = await repository.types_by_ids(market.session, [h.type_id for h in found])
        hauls = [
            HaulRead(
                type_id=h.type_id, type_name=names[h.type_id].name if h.type_id in names else None,
                source=h.source, destination=h.destination, jumps=h.jumps,
                lowest_security=h.route.lowest_security, units=h.units, volume_m3=h.volume_m3,
                cost=h.cost, revenue=h.revenue, tax=h.tax, profit=h.profit, profit_per_jump=h.profit_per_jump,
                profit_per_m3=h.profit_per_m3, buy_average=h.buy_fill.average,
                sell_average=h.sell_fill.average, buy_orders=h.buy_fill.orders_consumed,
                sell_orders=h.sell_fill.orders_consumed, limited_by=h.limited_by,
            )
            for h in found
        ]  # fmt: skip
        return HaulingRead(
            hubs=[hub.key for hub in hubs], preference=preference, sales_tax=rates.sales_tax,
            books={str(v.region_id): _utc(v.captured_at) for v in versions}, hauls=hauls,
        ).model_dump(mode="json")  # fmt: skip

    question = request.model_dump(mode="json")
    cached = await market.platform.cache.get_or_set(_key("hauling", versions, question), SCAN_CACHE_TTL, load)
    answer = HaulingRead.model_validate(cached)
    answer.book_status = await hub_statuses(market, [hub.region_id for hub in hubs])
    return answer


async def get_history(market: MarketContext, key: str, type_id: int, days: int) -> HistoryRead:
    """A type's daily history in the hub's region over the last `days` days (the price chart's data)."""
    hub = check_hub(market, key)
    row = await repository.get_type(market.session, type_id)
    if row is None:
        raise UnknownType(f"No item type {type_id} in the static data.")
    since = datetime.now(UTC).date() - timedelta(days=days)
    rows = await repository.price_history(market.session, hub.region_id, type_id, since)
    return HistoryRead(
        hub=key, region_id=hub.region_id, type_id=type_id, type_name=row.name,
        days=[HistoryDayRead(date=r.date.isoformat(), average=r.average, highest=r.highest, lowest=r.lowest,
                             volume=r.volume, order_count=r.order_count) for r in rows],
    )  # fmt: skip
