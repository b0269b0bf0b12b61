"""DeliverySnapshot: every zone with the creatives it may serve, compiled, in memory, so the decision route
reads no database.

Each process holds one snapshot (a per-process app resource, `DELIVERY_SNAPSHOT`). It loads the serving
setup once (active campaigns placed in each zone, their active creatives, targeting compiled in the
site's timezone), then checks a one-row signature of the ads tables (row counts and latest change times)
at most every PENTAD_ADS__SNAPSHOT_POLL seconds, in the background: the request that notices the interval
passed does not wait for it. A change committed in this process (`invalidate()`, hooked on the commit by
the actions) is seen at once.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.ads.decision import Candidate
from pentad.apps.ads.models import (
    AdsCampaign,
    AdsCreative,
    AdsPlacement,
    AdsSite,
    AdsTrafficProfile,
    AdsZone,
)
from pentad.apps.ads.pacing import FLAT_PROFILE, hour_starts, normalised
from pentad.apps.ads.settings import AdsSettings
from pentad.apps.ads.targeting import Predicate, Targeting, compile_targeting, glob_pattern
from pentad.core.context import AppContext, ResourceSpec
from pentad.core.db.hooks import on_commit
from pentad.core.snapshots import PolledSnapshot


@dataclass(frozen=True, slots=True)
class CreativeEntry:
    id: uuid.UUID
    campaign_id: uuid.UUID
    kind: str
    width: int | None
    height: int | None
    alt_text: str
    headline: str
    body: str
    storage_key: str | None
    variants: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    """Image variants (images.py) or HTML5 files (html5.py)."""


@dataclass(frozen=True, slots=True)
class CampaignEntry:
    id: uuid.UUID
    starts_at: datetime
    ends_at: datetime | None
    pricing: str
    rate_micros: int
    budget_micros: int | None
    daily_budget_micros: int | None
    daily_impressions: int | None
    daily_clicks: int | None
    frequency_cap: int | None
    pacing: str
    priority: int
    weight: int
    targeting: Predicate
    creatives: tuple[CreativeEntry, ...]
    targets_all: bool = False
    """Its targeting sets nothing (so `targeting` is not called)."""
    # Precomputed once per snapshot load, so a decision formats no uuid and tests no setting it need not:
    daily_prefix: str = field(init=False, repr=False, compare=False)
    """`ads:d:<id>:`, the day's counters (serving.daily_key) are this + day + `:imp|clk|spend`."""
    frequency_prefix: str = field(init=False, repr=False, compare=False)
    """`ads:f:<id>:`, the visitor's day counter (serving.frequency_key) is this + UTC day + `:` + visitor."""
    minute_prefix: str = field(init=False, repr=False, compare=False)
    """`ads:m:<id>:`, its eligible requests of a unix minute (serving.minute_key) are this + minute."""
    total_key: str = field(init=False, repr=False, compare=False)
    """Its all-time spend counter (budgets.total_key)."""
    paced_per_minute: bool = field(init=False, repr=False, compare=False)
    """Even pacing that needs last minute's eligible requests (the daily budget is in spend or
    impressions): only such a campaign counts them."""
    counted: bool = field(init=False, repr=False, compare=False)
    """Any counter to read before serving it (a daily limit, a frequency cap, a total budget; so every
    `paced_per_minute` campaign)."""
    candidate: Candidate = field(init=False, repr=False, compare=False)
    """Its selection candidate when nothing holds it back (serve probability 1, its first creative: the
    creative is drawn among `creatives` once the campaign is selected)."""

    def __post_init__(self) -> None:
        key = str(self.id)
        daily = (
            self.daily_budget_micros is not None
            or self.daily_impressions is not None
            or self.daily_clicks is not None
        )
        per_impression = self.daily_budget_micros is not None and self.pricing == "cpm"
        per_impression = per_impression or (
            self.daily_budget_micros is None and self.daily_impressions is not None
        )
        paced = self.pacing != "asap" and per_impression
        values = {
            "daily_prefix": f"ads:d:{key}:",
            "frequency_prefix": f"ads:f:{key}:",
            "minute_prefix": f"ads:m:{key}:",
            "total_key": f"ads:t:{key}:spend",  # budgets.total_key (which imports this module)
            "paced_per_minute": paced,
            "counted": daily or self.frequency_cap is not None or self.budget_micros is not None,
            "candidate": Candidate(
                self.creatives[0].id if self.creatives else self.id, self.id, self.priority, self.weight, 1.0
            ),
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def runs_at(self, at: datetime) -> bool:
        return self.starts_at <= at and (self.ends_at is None or at < self.ends_at)


@dataclass(frozen=True, slots=True)
class ZoneEntry:
    id: uuid.UUID
    site_id: uuid.UUID
    domain: str
    timezone: str
    width: int
    height: int
    mode: str
    gpt_ad_unit: str | None
    pages: re.Pattern[str] | None
    house: CreativeEntry | None
    campaigns: tuple[CampaignEntry, ...]
    profile: tuple[float, ...] = FLAT_PROFILE
    """Its hourly traffic profile (local hours) for even pacing; flat until ads.pacing_snapshot wrote one."""
    tzinfo: ZoneInfo = field(init=False, repr=False, compare=False)
    requests_prefix: str = field(init=False, repr=False, compare=False)
    """`ads:zr:<id>:`, its decision requests of a unix hour (serving.zone_requests_key) are this + hour."""

    campaign_of: dict[uuid.UUID, CampaignEntry] = field(init=False, repr=False, compare=False)
    """Creative id → the campaign serving it here (the beacon's look-up)."""

    shares: tuple[float, ...] = field(init=False, repr=False, compare=False)
    """`profile` normalised, and the share of the day gone by at each hour's start (pacing.hour_starts)."""
    hour_starts: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tzinfo", ZoneInfo(self.timezone))
        object.__setattr__(self, "shares", normalised(self.profile))
        object.__setattr__(self, "hour_starts", hour_starts(self.shares))
        campaign_of = {creative.id: entry for entry in self.campaigns for creative in entry.creatives}
        object.__setattr__(self, "campaign_of", campaign_of)
        object.__setattr__(self, "requests_prefix", f"ads:zr:{self.id}:")

    def shows_on(self, path: str) -> bool:
        return self.pages is None or self.pages.fullmatch(path) is not None

    def allows_host(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return host == self.domain or host.endswith("." + self.domain)


def fits(creative: CreativeEntry, width: int, height: int) -> bool:
    """Text ads fit any zone; an image fits when it is no larger than the zone or has its shape (a 2x
    image of a 300x250 zone)."""
    if creative.width is None or creative.height is None:
        return True
    if creative.width <= width and creative.height <= height:
        return True
    return abs(creative.width * height - creative.height * width) <= 0.02 * width * creative.height


def _creative(row: AdsCreative) -> CreativeEntry:
    return CreativeEntry(
        row.id, row.campaign_id, row.kind, row.width, row.height, row.alt_text, row.headline, row.body,
        row.storage_key, row.variants or {},
    )  # fmt: skip


def _pages(patterns: list[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{glob_pattern(pattern).pattern})" for pattern in patterns))


EVERYONE = Targeting()


async def load_zones(session: AsyncSession) -> dict[uuid.UUID, ZoneEntry]:
    """The whole serving setup, as the decision route needs it."""
    sites = {site.id: site for site in await session.scalars(select(AdsSite))}
    zones = list(await session.scalars(select(AdsZone)))
    campaigns = {row.id: row for row in await session.scalars(select(AdsCampaign))}
    creatives = list(await session.scalars(select(AdsCreative)))
    by_id = {row.id: row for row in creatives}
    active: dict[uuid.UUID, list[AdsCreative]] = {}
    for row in creatives:
        if row.status == "active":
            active.setdefault(row.campaign_id, []).append(row)
    placed: dict[uuid.UUID, list[uuid.UUID]] = {}
    for campaign_id, zone_id in await session.execute(select(AdsPlacement.campaign_id, AdsPlacement.zone_id)):
        placed.setdefault(zone_id, []).append(campaign_id)
    profiles = {
        zone_id: normalised(weights)
        for zone_id, weights in await session.execute(
            select(AdsTrafficProfile.zone_id, AdsTrafficProfile.weights)
        )
    }
    compiled: dict[tuple[str, str], Predicate] = {}
    found: dict[uuid.UUID, ZoneEntry] = {}
    for zone in zones:
        site = sites[zone.site_id]
        entries = []
        for campaign_id in placed.get(zone.id, []):
            campaign = campaigns[campaign_id]
            fitting = tuple(
                _creative(row)
                for row in active.get(campaign_id, [])
                if fits(_creative(row), zone.width, zone.height)
            )
            if campaign.status != "active" or campaign.exhausted_at is not None or not fitting:
                continue
            targeting = Targeting.model_validate(campaign.targeting)
            key = (targeting.model_dump_json(), site.timezone)  # one predicate per distinct targeting
            if key not in compiled:
                compiled[key] = compile_targeting(targeting, site.timezone)
            entries.append(
                CampaignEntry(
                    id=campaign.id,
                    starts_at=campaign.starts_at,
                    ends_at=campaign.ends_at,
                    pricing=campaign.pricing,
                    rate_micros=campaign.rate_micros,
                    budget_micros=campaign.budget_micros,
                    daily_budget_micros=campaign.daily_budget_micros,
                    daily_impressions=campaign.daily_impressions,
                    daily_clicks=campaign.daily_clicks,
                    frequency_cap=campaign.frequency_cap,
                    pacing=campaign.pacing,
                    priority=campaign.priority,
                    weight=campaign.weight,
                    targeting=compiled[key],
                    creatives=fitting,
                    targets_all=targeting == EVERYONE,
                )
            )
        house = by_id.get(zone.house_creative_id) if zone.house_creative_id is not None else None
        found[zone.id] = ZoneEntry(
            id=zone.id, site_id=site.id, domain=site.domain, timezone=site.timezone, width=zone.width,
            height=zone.height, mode=zone.mode, gpt_ad_unit=zone.gpt_ad_unit,
            pages=_pages(zone.path_patterns),
            house=_creative(house) if house is not None and house.status == "active" else None,
            campaigns=tuple(entries), profile=profiles.get(zone.id, FLAT_PROFILE),
        )  # fmt: skip
    return found


async def read_signature(session: AsyncSession) -> tuple[Any, ...]:
    """Row counts and latest change of every table the snapshot reads: any change moves it."""
    columns: list[Any] = []
    for model, changed in (
        (AdsSite, AdsSite.updated_at),
        (AdsZone, AdsZone.updated_at),
        (AdsCampaign, AdsCampaign.updated_at),
        (AdsCreative, AdsCreative.updated_at),
        (AdsPlacement, AdsPlacement.created_at),
        (AdsTrafficProfile, AdsTrafficProfile.updated_at),
    ):
        columns.append(select(func.count()).select_from(model).scalar_subquery())
        columns.append(select(func.max(changed)).scalar_subquery())
    return tuple((await session.execute(select(*columns))).one())


class DeliverySnapshot(PolledSnapshot[dict[uuid.UUID, ZoneEntry]]):
    """Zone id → ZoneEntry for this process."""

    name = "ads.delivery"

    def __init__(self, context: AppContext, poll: float) -> None:
        super().__init__(context, poll, {})

    async def read_signature(self, session: AsyncSession) -> tuple[Any, ...]:
        return await read_signature(session)

    async def load(self, session: AsyncSession) -> dict[uuid.UUID, ZoneEntry]:
        return await load_zones(session)

    async def zone(self, zone_id: uuid.UUID) -> ZoneEntry | None:
        return (await self.current()).get(zone_id)


async def open_snapshot(context: AppContext) -> DeliverySnapshot:
    return DeliverySnapshot(context, context.app_settings(AdsSettings).snapshot_poll)


async def close_snapshot(snapshot: DeliverySnapshot) -> None:
    await snapshot.close()


DELIVERY_SNAPSHOT: ResourceSpec[DeliverySnapshot] = ResourceSpec(
    "ads.delivery", open_snapshot, close_snapshot
)
"""This process's snapshot (AppSpec.resources): `context.resource(DELIVERY_SNAPSHOT)`."""


def delivery_snapshot(context: AppContext) -> DeliverySnapshot:
    return context.resource(DELIVERY_SNAPSHOT)


def reload_after_commit(session: AsyncSession, context: AppContext) -> None:
    """A write to the ads setup in this session: this process serves it as soon as it commits (others
    within SNAPSHOT_POLL)."""
    snapshot = delivery_snapshot(context)

    async def changed() -> None:
        snapshot.invalidate()

    on_commit(session, changed)
