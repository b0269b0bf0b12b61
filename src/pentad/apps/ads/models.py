"""The ads app's tables: who buys (advertisers → campaigns → creatives), where it shows (sites → zones),
and which campaign runs in which zone (placements). Money is in micros (1/1,000,000 of the currency unit)
as integers. Impressions, clicks, conversions and stats come with serving.

Ownership: the account that created an advertiser or site (`owner_id`) holds its owner role; others hold
roles on it through core grants (resource types `ads.advertiser`, `ads.site`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pentad.core.db.base import Base, EncryptedText, IdMixin, TimestampMixin, utcnow, uuid7

PRICING_MODELS = ("cpm", "cpc", "flat")
PACING_MODES = ("even", "asap")
CAMPAIGN_STATUSES = ("active", "paused", "archived")
CREATIVE_KINDS = ("image", "text", "html5")
CONVERSION_KINDS = ("click", "view")
CREATIVE_STATUSES = ("active", "paused")
ZONE_MODES = ("direct", "gpt")


class AdsAdvertiser(IdMixin, TimestampMixin, Base):
    """Who buys: a brand or client. Its contact e-mail is encrypted at rest (core crypto)."""

    __tablename__ = "ads_advertisers"

    name: Mapped[str] = mapped_column(String(200))
    contact_email: Mapped[str | None] = mapped_column(EncryptedText, default=None)
    owner_id: Mapped[uuid.UUID] = mapped_column(index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AdsSite(IdMixin, TimestampMixin, Base):
    """A publisher's site; its timezone is the one targeting's hours and days are read in."""

    __tablename__ = "ads_sites"

    name: Mapped[str] = mapped_column(String(200))
    domain: Mapped[str] = mapped_column(String(253), unique=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    owner_id: Mapped[uuid.UUID] = mapped_column(index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AdsZone(IdMixin, TimestampMixin, Base):
    """A place for ads on a site's pages: its size, the pages it appears on, direct or GPT first."""

    __tablename__ = "ads_zones"

    site_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ads_sites.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    path_patterns: Mapped[list[str]] = mapped_column(JSON, default=list)
    mode: Mapped[str] = mapped_column(String(16), default="direct")
    gpt_ad_unit: Mapped[str | None] = mapped_column(String(300), default=None)
    house_creative_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    """Served when no campaign is; no foreign key (creatives come later in the chain): deleting the
    creative clears it."""
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AdsCampaign(IdMixin, TimestampMixin, Base):
    """What an advertiser buys: when, how much, how fast, for whom, and how it ranks against others."""

    __tablename__ = "ads_campaigns"

    advertiser_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("ads_advertisers.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="active")
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime | None] = mapped_column(default=None)
    pricing: Mapped[str] = mapped_column(String(8))
    rate_micros: Mapped[int] = mapped_column(BigInteger)
    budget_micros: Mapped[int | None] = mapped_column(BigInteger, default=None)
    daily_budget_micros: Mapped[int | None] = mapped_column(BigInteger, default=None)
    daily_impressions: Mapped[int | None] = mapped_column(BigInteger, default=None)
    daily_clicks: Mapped[int | None] = mapped_column(BigInteger, default=None)
    frequency_cap: Mapped[int | None] = mapped_column(Integer, default=None)
    pacing: Mapped[str] = mapped_column(String(8), default="even")
    priority: Mapped[int] = mapped_column(Integer, default=5)
    weight: Mapped[int] = mapped_column(Integer, default=1)
    targeting: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    conversion_goals: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    """Names of the analytics goals that count as its conversions; empty or null: none."""
    click_window: Mapped[int] = mapped_column(Integer, default=86_400)
    """Seconds after a click in which a goal completion counts as a post-click conversion."""
    view_window: Mapped[int] = mapped_column(Integer, default=3600)
    """Seconds after a viewable impression in which a completion counts as a post-view conversion."""
    exhausted_at: Mapped[datetime | None] = mapped_column(default=None)
    """When its total budget was found spent (it stops serving); cleared when the budget is changed."""
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AdsCreative(IdMixin, TimestampMixin, Base):
    """One ad of a campaign: an uploaded image or a text ad, and where a click goes."""

    __tablename__ = "ads_creatives"

    campaign_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("ads_campaigns.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="active")
    destination_url: Mapped[str] = mapped_column(String(2048))
    width: Mapped[int | None] = mapped_column(Integer, default=None)
    height: Mapped[int | None] = mapped_column(Integer, default=None)
    alt_text: Mapped[str] = mapped_column(String(300), default="")
    headline: Mapped[str] = mapped_column(String(200), default="")
    body: Mapped[str] = mapped_column(String(1000), default="")
    storage_key: Mapped[str | None] = mapped_column(String(300), default=None)
    content_type: Mapped[str | None] = mapped_column(String(100), default=None)
    byte_size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    variants: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AdsPlacement(TimestampMixin, Base):
    """A campaign running in a zone. Both sides agree: the campaign's manager and the zone's site's."""

    __tablename__ = "ads_placements"
    campaign_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("ads_campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    zone_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("ads_zones.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class AdsImpression(Base):
    """One ad served (its id is the impression token's id); `viewable_ts` is set once by the viewability
    beacon. Times are unix milliseconds, `hour` unix hours (the stats bucket). No IP or user agent: the
    visitor is the core's daily visitor id."""

    __tablename__ = "ads_impressions"
    __table_args__ = (Index("ix_ads_impressions_campaign_hour", "campaign_id", "hour"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    ts: Mapped[int] = mapped_column(BigInteger)
    hour: Mapped[int] = mapped_column(Integer)
    zone_id: Mapped[uuid.UUID]
    creative_id: Mapped[uuid.UUID]
    campaign_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    """None for a house creative."""
    site_id: Mapped[uuid.UUID]
    visitor_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    path: Mapped[str | None] = mapped_column(String(500), default=None)
    source: Mapped[str | None] = mapped_column(String(16), default=None)
    country: Mapped[str | None] = mapped_column(String(2), default=None)
    device: Mapped[str | None] = mapped_column(String(16), default=None)
    viewable_ts: Mapped[int | None] = mapped_column(BigInteger, default=None)


class AdsClick(Base):
    """One counted click: at most one per impression (the primary key)."""

    __tablename__ = "ads_clicks"

    impression_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    ts: Mapped[int] = mapped_column(BigInteger)
    zone_id: Mapped[uuid.UUID]
    creative_id: Mapped[uuid.UUID]
    campaign_id: Mapped[uuid.UUID | None] = mapped_column(default=None, index=True)


class AdsStatsHourly(Base):
    """Per campaign, creative, zone and hour (of the impression): recomputed from the raw rows whenever a
    flushed batch touches the bucket, so replays and duplicates never count twice."""

    __tablename__ = "ads_stats_hourly"

    campaign_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    hour: Mapped[int] = mapped_column(Integer, primary_key=True)
    creative_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    zone_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    served: Mapped[int] = mapped_column(BigInteger, default=0)
    viewable: Mapped[int] = mapped_column(BigInteger, default=0)
    clicks: Mapped[int] = mapped_column(BigInteger, default=0)
    spend_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    conversions: Mapped[int] = mapped_column(BigInteger, default=0)
    revenue_micros: Mapped[int] = mapped_column(BigInteger, default=0)


class AdsConversion(Base):
    """A goal completion (analytics' `analytics.goals_completed`) attributed to an impression: post-click
    (`click`) or post-view (`view`). One row per completion (the unique key), so a redelivered event never
    counts twice; it counts in the hour of the impression it is attributed to."""

    __tablename__ = "ads_conversions"
    __table_args__ = (
        UniqueConstraint("site_id", "visitor_id", "goal_id", "ts", name="uq_ads_conversions_completion"),
        Index("ix_ads_conversions_campaign_hour", "campaign_id", "hour"),
        Index("ix_ads_conversions_impression", "impression_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    site_id: Mapped[uuid.UUID]
    visitor_id: Mapped[int] = mapped_column(BigInteger)
    goal_id: Mapped[uuid.UUID]
    goal_name: Mapped[str] = mapped_column(String(200))
    ts: Mapped[int] = mapped_column(BigInteger)
    """Unix milliseconds of the completion."""
    kind: Mapped[str] = mapped_column(String(8))
    impression_id: Mapped[uuid.UUID]
    campaign_id: Mapped[uuid.UUID]
    creative_id: Mapped[uuid.UUID]
    zone_id: Mapped[uuid.UUID]
    hour: Mapped[int] = mapped_column(Integer)
    """The impression's hour (the stats bucket it counts in)."""
    revenue_micros: Mapped[int | None] = mapped_column(BigInteger, default=None)
    currency: Mapped[str | None] = mapped_column(String(3), default=None)
    path: Mapped[str | None] = mapped_column(String(500), default=None)
    """The page the completion happened on."""
    source: Mapped[str | None] = mapped_column(String(16), default=None)


class AdsZoneTraffic(Base):
    """Decision requests of a zone per unix hour (folded in from the cache counters by
    `ads.pacing_snapshot`); the last 7 days make the zone's traffic profile."""

    __tablename__ = "ads_zone_traffic"

    zone_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    hour: Mapped[int] = mapped_column(Integer, primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger)


class AdsTrafficProfile(Base):
    """A zone's share of a day's requests per local hour (24 weights summing to 1), for even pacing."""

    __tablename__ = "ads_traffic_profiles"

    zone_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    weights: Mapped[list[float]] = mapped_column(JSON)
    requests: Mapped[int] = mapped_column(BigInteger)
    """Requests the profile was made from."""
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
