"""The analytics app's tables.

Sites have a uuid7 id (API, grants) and a small integer `key` that the high-volume tables carry instead.
Raw events hold no IP address and no user-agent string: the visitor is a daily-rotating hashed id, the
agent only its parsed families. `version` is bumped on every change of a site, so every process's
SiteRegistry (registry.py) reloads it without a database read on the ingest path.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects.mysql import MEDIUMTEXT
from sqlalchemy.orm import Mapped, mapped_column

from pentad.core.db.base import Base, EncryptedText, IdMixin, TimestampMixin

AutoId = BigInteger().with_variant(Integer(), "sqlite")
"""A 64-bit autoincrement key (SQLite only autoincrements INTEGER PRIMARY KEY, itself 64-bit)."""


class AnalyticsSite(IdMixin, TimestampMixin, Base):
    """A tracked web site, named by its canonical domain (what the tracker sends as `d`)."""

    __tablename__ = "analytics_sites"

    key: Mapped[int] = mapped_column(Integer, unique=True)
    domain: Mapped[str] = mapped_column(String(253), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    hosts: Mapped[list[str]] = mapped_column(JSON, default=list)
    """Other host names whose pages may report to this site (the domain and its subdomains always may)."""
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    excluded_paths: Mapped[list[str]] = mapped_column(JSON, default=list)
    """Path patterns (`/admin/*`, `/preview`) whose events are dropped as `excluded_path`."""
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[uuid.UUID | None] = mapped_column(default=None)
    first_event_at: Mapped[datetime | None] = mapped_column(default=None)
    retention: Mapped[dict[str, str] | None] = mapped_column(JSON, default=None)
    """Retention tiers `{"raw": "60d", "hourly": "2y", ...}` (retention.py); None = the server default."""


class AnalyticsGoal(IdMixin, TimestampMixin, Base):
    """A conversion goal: a pageview of a path pattern (`kind` "pageview", `path_pattern` with `*`
    wildcards) or a custom event by name (`kind` "event", `event_name`); with `currency`, the revenue of
    the completing events in that currency counts (goals.py)."""

    __tablename__ = "analytics_goals"

    site_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("analytics_sites.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(120))
    path_pattern: Mapped[str | None] = mapped_column(String(2000), default=None)
    props: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    currency: Mapped[str | None] = mapped_column(String(3), default=None)
    event_name: Mapped[str | None] = mapped_column(String(120), default=None)


class AnalyticsFunnel(IdMixin, TimestampMixin, Base):
    """An ordered list of 2 to 8 steps (funnels.py), each a goal or a pageview path pattern."""

    __tablename__ = "analytics_funnels"

    site_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("analytics_sites.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(120))
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    """`[{"goal_id": "…"} | {"path": "/pricing*"}, …]`."""
    scope: Mapped[str] = mapped_column(String(8), default="visit")
    """`visit`: the steps within one visit; `day`: within one day of a visitor."""


class AnalyticsShare(IdMixin, TimestampMixin, Base):
    """A shared link to a site's read-only dashboard (sharing.py): public, or behind a password kept only
    as the core password hasher's hash. `slug` is the link's secret part."""

    __tablename__ = "analytics_shares"

    site_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("analytics_sites.id", ondelete="CASCADE"), index=True
    )
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(120), default="")
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    created_by: Mapped[uuid.UUID | None] = mapped_column(default=None)


_INDEXED_FACTS = ("country", "device", "browser", "os")


class AnalyticsEvent(Base):
    """One raw event: a pageview or a custom event, as stored by the `analytics.events` ingest stream."""

    __tablename__ = "analytics_events"
    __table_args__ = (
        Index("ix_analytics_events_site_key_ts", "site_key", "ts"),
        # a filter on a visitor's fact reads only its events (pushdown.py, filters.py)
        *(
            Index(f"ix_analytics_events_site_key_{fact}_ts", "site_key", fact, "ts")
            for fact in _INDEXED_FACTS
        ),
    )

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    site_key: Mapped[int] = mapped_column(Integer)
    ts: Mapped[int] = mapped_column(BigInteger)
    """Unix time, milliseconds."""
    visitor_id: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(120))
    hostname: Mapped[str] = mapped_column(String(253))
    path: Mapped[str] = mapped_column(String(2000))
    referrer_host: Mapped[str | None] = mapped_column(String(253), default=None)
    referrer_path: Mapped[str | None] = mapped_column(String(2000), default=None)
    source: Mapped[str | None] = mapped_column(String(100), default=None)
    medium: Mapped[str | None] = mapped_column(String(32), default=None)
    utm_source: Mapped[str | None] = mapped_column(String(200), default=None)
    utm_medium: Mapped[str | None] = mapped_column(String(200), default=None)
    utm_campaign: Mapped[str | None] = mapped_column(String(200), default=None)
    utm_content: Mapped[str | None] = mapped_column(String(200), default=None)
    utm_term: Mapped[str | None] = mapped_column(String(200), default=None)
    country: Mapped[str | None] = mapped_column(String(2), default=None)
    region: Mapped[str | None] = mapped_column(String(100), default=None)
    city: Mapped[str | None] = mapped_column(String(100), default=None)
    device: Mapped[str | None] = mapped_column(String(16), default=None)
    browser: Mapped[str | None] = mapped_column(String(64), default=None)
    browser_version: Mapped[str | None] = mapped_column(String(32), default=None)
    os: Mapped[str | None] = mapped_column(String(64), default=None)
    os_version: Mapped[str | None] = mapped_column(String(32), default=None)
    props: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    revenue_micros: Mapped[int | None] = mapped_column(BigInteger, default=None)
    currency: Mapped[str | None] = mapped_column(String(3), default=None)


class AnalyticsDrop(Base):
    """One refused or filtered event, by reason (bots, garbage, unknown sites): the data-quality counters."""

    __tablename__ = "analytics_drops"
    __table_args__ = (Index("ix_analytics_drops_site_key_minute", "site_key", "minute"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    site_key: Mapped[int | None] = mapped_column(Integer, default=None)
    minute: Mapped[int] = mapped_column(BigInteger)
    """Unix time // 60."""
    reason: Mapped[str] = mapped_column(String(32))
    count: Mapped[int] = mapped_column(Integer, default=1)


class AnalyticsDirtyBucket(Base):
    """An hour of a site that got events since its rollups were last computed (rollups: session 2)."""

    __tablename__ = "analytics_dirty_buckets"

    site_key: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    hour: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    """Unix time // 3600."""


class _Rollup:
    """One bucket of one dimension value: additive counts (exact) and a visitor sketch (hll.py).

    `bucket` is the unix hour (hourly), the site-local day as days since 1970-01-01 (daily) or the
    site-local month as year * 12 + month - 1 (monthly). `dim` 0 is the site's totals (value ""); other
    dims are rollups.DIMS and GOAL_DIMS. `value_hash` keys the row (a value is unbounded text, a property's
    name and value together, too long for an index on MariaDB); `value` None is the dimension's "(none)".
    Visits, bounces and duration count in the bucket their visit starts in; visitors, pageviews, events
    and revenue in the bucket of each event."""

    site_key: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    dim: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    value_hash: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    value: Mapped[str | None] = mapped_column(Text().with_variant(MEDIUMTEXT(), "mysql"), default=None)
    visitors: Mapped[int] = mapped_column(Integer, default=0)
    visits: Mapped[int] = mapped_column(Integer, default=0)
    pageviews: Mapped[int] = mapped_column(Integer, default=0)
    events: Mapped[int] = mapped_column(Integer, default=0)
    bounces: Mapped[int] = mapped_column(Integer, default=0)
    duration_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    revenue_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    visitors_sketch: Mapped[str] = mapped_column(Text)
    """hll.Sketch bytes, base64 (aiomysql cannot bind bytes in an executemany)."""
    imported: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """Imported history (ga4_import.py), not counted from Pentad's own events."""


class AnalyticsRollupHourly(_Rollup, Base):
    __tablename__ = "analytics_rollup_hourly"


class AnalyticsRollupDaily(_Rollup, Base):
    __tablename__ = "analytics_rollup_daily"


class AnalyticsRollupMonthly(_Rollup, Base):
    __tablename__ = "analytics_rollup_monthly"


class AnalyticsSession(Base):
    """One visit: a visitor's events with gaps of at most SESSION_TIMEOUT, with its first event's
    facts. `day` is the UTC day it starts in (days since 1970-01-01); rebuilt for the visitors of every
    recomputed hour."""

    __tablename__ = "analytics_sessions"

    site_key: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    day: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    visitor_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    start_ts: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    end_ts: Mapped[int] = mapped_column(BigInteger)
    pageviews: Mapped[int] = mapped_column(Integer)
    events: Mapped[int] = mapped_column(Integer)
    entry_path: Mapped[str] = mapped_column(String(2000))
    exit_path: Mapped[str] = mapped_column(String(2000))
    source: Mapped[str | None] = mapped_column(String(100), default=None)
    referrer_host: Mapped[str | None] = mapped_column(String(253), default=None)
    utm_source: Mapped[str | None] = mapped_column(String(200), default=None)
    utm_medium: Mapped[str | None] = mapped_column(String(200), default=None)
    utm_campaign: Mapped[str | None] = mapped_column(String(200), default=None)
    country: Mapped[str | None] = mapped_column(String(2), default=None)
    device: Mapped[str | None] = mapped_column(String(16), default=None)
    browser: Mapped[str | None] = mapped_column(String(64), default=None)
    os: Mapped[str | None] = mapped_column(String(64), default=None)


class AnalyticsRollupCursor(Base):
    """The one row (id 1) the `analytics.rollup` job locks while it drains; `epoch` grows with every run
    that changed rollups (the planner's cache key)."""

    __tablename__ = "analytics_rollup_cursor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    epoch: Mapped[int] = mapped_column(BigInteger, default=0)


class AnalyticsStatsKey(IdMixin, TimestampMixin, Base):
    """A read-only Stats API key (`pas_…`, keys.py) of one account, limited to some of its sites. Only
    a SHA-256 of its secret is stored."""

    __tablename__ = "analytics_stats_keys"

    user_id: Mapped[uuid.UUID] = mapped_column(index=True)
    name: Mapped[str] = mapped_column(String(100))
    hint: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64))
    site_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class AnalyticsGA4Link(TimestampMixin, Base):
    """A site's forwarding to a GA4 property through the Measurement Protocol (ga4.py); the API secret is
    encrypted with the key ring, bound to the row."""

    __tablename__ = "analytics_ga4_links"

    site_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("analytics_sites.id", ondelete="CASCADE"), primary_key=True
    )
    site_key: Mapped[int] = mapped_column(Integer, unique=True)
    measurement_id: Mapped[str] = mapped_column(String(32))
    api_secret: Mapped[str] = mapped_column(EncryptedText())
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    forwarded: Mapped[int] = mapped_column(BigInteger, default=0)
    dropped: Mapped[int] = mapped_column(BigInteger, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)


class AnalyticsReportSubscription(IdMixin, TimestampMixin, Base):
    """A weekly or monthly e-mail report of a site (reports.py) to an account with access, or to an address
    an owner added (encrypted; `email_digest` finds it again), which must confirm before it gets any."""

    __tablename__ = "analytics_report_subscriptions"
    __table_args__ = (
        UniqueConstraint("site_id", "period", "recipient_digest", name="uq_analytics_report_recipient"),
    )

    site_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("analytics_sites.id", ondelete="CASCADE"), index=True
    )
    period: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    email: Mapped[str | None] = mapped_column(EncryptedText(), default=None)
    recipient_digest: Mapped[str] = mapped_column(String(64))
    """The account's id, or a keyed digest of the address: one subscription per recipient and period."""
    confirmed_at: Mapped[datetime | None] = mapped_column(default=None)
    last_sent_period: Mapped[date | None] = mapped_column(Date, default=None)
    """First day of the last period mailed: a period is never mailed twice."""


class AnalyticsImport(IdMixin, TimestampMixin, Base):
    """One uploaded GA4 CSV export (ga4_import.py): the same file (by digest) is imported once per site."""

    __tablename__ = "analytics_imports"
    __table_args__ = (UniqueConstraint("site_id", "digest", name="uq_analytics_imports_site_digest"),)

    site_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("analytics_sites.id", ondelete="CASCADE"), index=True
    )
    digest: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(200))
    report: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    storage_key: Mapped[str | None] = mapped_column(String(300), default=None)
    job_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    rows: Mapped[int] = mapped_column(Integer, default=0)
    days: Mapped[int] = mapped_column(Integer, default=0)
    skipped_days: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(500), default=None)


__all__ = [
    "AnalyticsDirtyBucket",
    "AnalyticsDrop",
    "AnalyticsEvent",
    "AnalyticsFunnel",
    "AnalyticsGA4Link",
    "AnalyticsGoal",
    "AnalyticsImport",
    "AnalyticsReportSubscription",
    "AnalyticsRollupCursor",
    "AnalyticsRollupDaily",
    "AnalyticsRollupHourly",
    "AnalyticsRollupMonthly",
    "AnalyticsSession",
    "AnalyticsShare",
    "AnalyticsSite",
    "AnalyticsStatsKey",
]
