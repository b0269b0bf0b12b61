"""A character's ESI data as its owner sees it: where the sync stands, asking for one now, and the fee
rates its synced skills and standings give at a station."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select

from pentad.apps.market import repository
from pentad.apps.market.actions.characters import OK, get_own_character
from pentad.apps.market.actions.context import MarketContext
from pentad.apps.market.analysis.fees import FeeBases, FeeRates, FeeSkills, fee_rates_at
from pentad.apps.market.exceptions import CharacterNeedsReauth, UnknownStation
from pentad.apps.market.ingest import character as ingest
from pentad.apps.market.models import MarketCharacter, MarketSkill, MarketStanding
from pentad.apps.market.trader_schemas import FeesRead, SyncStatus


def _moment(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def sync_status(character: MarketCharacter, *, queued: bool = False) -> SyncStatus:
    last = character.last_sync or {}
    status = last.get("status") or "never"
    if character.status != OK:
        status = "needs_reauth"
    detail = last.get("detail")
    if status == "needs_reauth" and not detail:
        detail = "EVE SSO refused the character's token: link it again"
    return SyncStatus(
        character=character.id,
        character_id=character.character_id,
        status=status,
        detail=detail,
        synced_at=_moment(last.get("at")),
        attempted_at=_moment(last.get("attempted_at")),
        next_at=_moment(last.get("next_at")),
        queued=queued,
    )


async def get_sync_status(market: MarketContext, link_id: uuid.UUID) -> SyncStatus:
    return sync_status(await get_own_character(market, link_id))


async def do_request_sync(market: MarketContext, link_id: uuid.UUID) -> SyncStatus:
    """Queue a run now (one pending run per character); routes not past their Expires stay unasked."""
    character = await get_own_character(market, link_id)
    if character.status != OK:
        raise CharacterNeedsReauth()
    await ingest.queue_sync(market.session, character.id)
    return sync_status(character, queued=True)


async def character_fee_rates(
    market: MarketContext, character_id: int, station_id: int
) -> tuple[FeeRates, bool]:
    """The character's fee rates at `station_id` from its synced skills and standings (the analyses call
    this so fees come from the real character); True when skills were synced."""
    station = await repository.get_station(market.session, station_id)
    if station is None:
        raise UnknownStation()
    levels = {
        row.skill_id: row.level
        for row in await market.session.scalars(
            select(MarketSkill).where(MarketSkill.character_id == character_id)
        )
    }
    standings = {
        row.from_id: row.standing
        for row in await market.session.scalars(
            select(MarketStanding).where(MarketStanding.character_id == character_id)
        )
    }
    ids = await repository.fee_skill_ids(
        market.session, ["Accounting", "Broker Relations", "Advanced Broker Relations"]
    )
    skills = FeeSkills.from_levels(levels, ids or None)
    return fee_rates_at(station, skills, standings, FeeBases.from_settings(market.settings)), bool(levels)


async def get_fees(market: MarketContext, link_id: uuid.UUID, station_id: int) -> FeesRead:
    character = await get_own_character(market, link_id)
    rates, synced = await character_fee_rates(market, character.character_id, station_id)
    return FeesRead(
        character=character.id,
        station_id=station_id,
        kind=rates.kind,
        broker_rate=rates.broker,
        sales_tax_rate=rates.sales_tax,
        relist_rate=rates.relist,
        min_fee_isk=rates.min_isk,
        floored=rates.floored,
        accounting=rates.skills.accounting,
        broker_relations=rates.skills.broker_relations,
        advanced_broker_relations=rates.skills.advanced_broker_relations,
        faction_standing=rates.standings.faction,
        corporation_standing=rates.standings.corporation,
        skills_synced=synced,
    )
