"""The market app's SQL. This part: the static data (SDE) — replacing it on import, and the lookups the
rest of the app builds on (types, systems and their security, stations, the stargate graph, hubs, the fee
skills). Later parts add their own sections (snapshots, character data, alerts, advisor)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.market.models import (
    MarketConstellation,
    MarketGroup,
    MarketMarketGroup,
    MarketNpcCorporation,
    MarketRegion,
    MarketSdeImport,
    MarketStargate,
    MarketStation,
    MarketSystem,
    MarketType,
)
from pentad.apps.market.settings import Hub
from pentad.core.db.base import utcnow

if TYPE_CHECKING:
    from pentad.apps.market.sde import SdeData

BATCH = 5000
"""Rows per INSERT statement of an import (executemany in chunks keeps statements and memory bounded)."""

STATIC_TABLES: tuple[Any, ...] = (
    MarketRegion,
    MarketConstellation,
    MarketSystem,
    MarketStargate,
    MarketType,
    MarketGroup,
    MarketMarketGroup,
    MarketNpcCorporation,
)


# --- static data: import --------------------------------------------------------------------------------


async def _insert(session: AsyncSession, model: Any, rows: Sequence[dict[str, Any]]) -> None:
    for start in range(0, len(rows), BATCH):
        await session.execute(insert(model), list(rows[start : start + BATCH]))


async def replace_static(session: AsyncSession, data: SdeData, *, source: str) -> MarketSdeImport:
    """Replace every static table with `data` (NPC stations too; player structures stay) and record the
    import. Runs in the caller's transaction: readers see the old data until it commits."""
    for model in STATIC_TABLES:
        await session.execute(delete(model))
    await session.execute(delete(MarketStation).where(MarketStation.kind == "npc"))
    await _insert(session, MarketRegion, data.regions)
    await _insert(session, MarketConstellation, data.constellations)
    await _insert(session, MarketSystem, data.systems)
    await _insert(session, MarketStargate, data.stargates)
    await _insert(session, MarketGroup, data.groups)
    await _insert(session, MarketMarketGroup, data.market_groups)
    await _insert(session, MarketType, data.types)
    await _insert(session, MarketNpcCorporation, data.corporations)
    now = utcnow()
    await _insert(session, MarketStation, [{**row, "updated_at": now} for row in data.stations])
    record = MarketSdeImport(build=data.build, source=source[:500], imported_at=now, counts=data.counts())
    session.add(record)
    await session.flush()
    return record


# --- static data: status ----------------------------------------------------------------------------------


async def latest_import(session: AsyncSession) -> MarketSdeImport | None:
    found: MarketSdeImport | None = await session.scalar(
        select(MarketSdeImport).order_by(MarketSdeImport.imported_at.desc()).limit(1)
    )
    return found


async def static_counts(session: AsyncSession) -> dict[str, int]:
    """Rows in each static table now (stations: NPC stations and known structures)."""
    counts: dict[str, int] = {}
    for name, model in (
        ("regions", MarketRegion),
        ("constellations", MarketConstellation),
        ("systems", MarketSystem),
        ("stargates", MarketStargate),
        ("types", MarketType),
        ("groups", MarketGroup),
        ("market_groups", MarketMarketGroup),
        ("corporations", MarketNpcCorporation),
        ("stations", MarketStation),
    ):
        counts[name] = int(await session.scalar(select(func.count()).select_from(model)) or 0)
    return counts


# --- static data: lookups ---------------------------------------------------------------------------------


async def get_type(session: AsyncSession, type_id: int) -> MarketType | None:
    return await session.get(MarketType, type_id)


async def types_by_ids(session: AsyncSession, type_ids: Sequence[int]) -> dict[int, MarketType]:
    if not type_ids:
        return {}
    rows = await session.scalars(select(MarketType).where(MarketType.id.in_(set(type_ids))))
    return {row.id: row for row in rows}


def _like_prefix(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}%"


async def find_types(
    session: AsyncSession, prefix: str, *, limit: int = 20, on_market: bool = True
) -> list[MarketType]:
    """Types whose name starts with `prefix` (any case), shortest names first; `on_market`: only those
    with a market group (tradeable) and published."""
    query = select(MarketType).where(func.lower(MarketType.name).like(_like_prefix(prefix), escape="\\"))
    if on_market:
        query = query.where(MarketType.market_group_id.is_not(None), MarketType.published.is_(True))
    query = query.order_by(func.length(MarketType.name), MarketType.name).limit(limit)
    return list(await session.scalars(query))


async def get_system(session: AsyncSession, system_id: int) -> MarketSystem | None:
    return await session.get(MarketSystem, system_id)


async def find_system(session: AsyncSession, name: str) -> MarketSystem | None:
    """The solar system of that exact name (any case)."""
    found: MarketSystem | None = await session.scalar(
        select(MarketSystem).where(func.lower(MarketSystem.name) == name.lower()).limit(1)
    )
    return found


async def get_region(session: AsyncSession, region_id: int) -> MarketRegion | None:
    return await session.get(MarketRegion, region_id)


async def get_station(session: AsyncSession, station_id: int) -> MarketStation | None:
    return await session.get(MarketStation, station_id)


async def stations_by_ids(session: AsyncSession, station_ids: Sequence[int]) -> dict[int, MarketStation]:
    if not station_ids:
        return {}
    rows = await session.scalars(select(MarketStation).where(MarketStation.id.in_(set(station_ids))))
    return {row.id: row for row in rows}


async def get_corporation(session: AsyncSession, corporation_id: int) -> MarketNpcCorporation | None:
    return await session.get(MarketNpcCorporation, corporation_id)


async def system_securities(session: AsyncSession) -> dict[int, float]:
    """Every solar system's true security status."""
    rows = await session.execute(select(MarketSystem.id, MarketSystem.security))
    return {row[0]: row[1] for row in rows}


async def stargate_graph(session: AsyncSession) -> dict[int, list[int]]:
    """The stargate graph: each system's neighbours (sorted, each once)."""
    rows = await session.execute(select(MarketStargate.system_id, MarketStargate.dest_system_id))
    graph: dict[int, set[int]] = {}
    for system, destination in rows:
        graph.setdefault(system, set()).add(destination)
        graph.setdefault(destination, set())
    return {system: sorted(neighbours) for system, neighbours in graph.items()}


async def fee_skill_ids(session: AsyncSession, names: Sequence[str]) -> dict[str, int]:
    """Type ids of the skills `names` (the fee formulas' Accounting, Broker Relations, Advanced Broker
    Relations), looked up by exact name in the imported types; missing names are left out."""
    rows = await session.execute(
        select(MarketType.name, MarketType.id).where(MarketType.name.in_(list(names)))
    )
    found: dict[str, int] = {row[0]: row[1] for row in rows}
    return {name: found[name] for name in names if name in found}


@dataclass(frozen=True)
class HubInfo:
    """A configured hub as the static data knows it (None where the station, its system or its region is
    not in the imported data)."""

    hub: Hub
    station: MarketStation | None
    system: MarketSystem | None
    region: MarketRegion | None

    @property
    def ok(self) -> bool:
        return (
            self.station is not None
            and self.system is not None
            and self.region is not None
            and self.station.region_id == self.hub.region_id
        )


async def resolve_hubs(session: AsyncSession, hubs: Sequence[Hub]) -> list[HubInfo]:
    stations = await stations_by_ids(session, [hub.station_id for hub in hubs])
    infos = []
    for hub in hubs:
        station = stations.get(hub.station_id)
        system = await get_system(session, station.system_id) if station else None
        region = await get_region(session, hub.region_id)
        infos.append(HubInfo(hub, station, system, region))
    return infos
