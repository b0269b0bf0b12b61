"""Reports: an ads delivery broken down by page or by traffic source, joined with analytics.

Per page (the path the ad was shown on) or per source category (direct, search, social, email, paid,
referral: the core's classification of the visit), from the raw impressions, clicks and conversions of a
range of days:

- served, viewable, clicks, CTR (clicks / viewable), spend (CPM per 1,000 viewable, CPC per click: the
  advertiser's cost, the publisher's earnings), eCPM (spend x 1,000 / viewable), conversions (attributed
  to impressions on that page or source), conversion rate (conversions / clicks), conversion revenue;
- for a **site**, joined with its traffic from analytics through the core query interface
  (`analytics.page_traffic`, no import): pageviews, visitors and page RPM (spend x 1,000 / pageviews).
  When analytics is not enabled (or not installed) those columns are left out and `analytics` says why;
  the ads figures stay. A campaign's report (its advertiser's) has no analytics columns: a publisher's
  traffic is not the buyer's to read.

Days are the site's (site report) or UTC (campaign report), `until` inclusive, at most 366 of them. A
daily series of the same figures feeds the report page's chart.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from pentad.apps.ads.actions.campaigns import campaign_access
from pentad.apps.ads.actions.context import AdsContext
from pentad.apps.ads.impressions import spend_micros
from pentad.apps.ads.models import AdsCampaign, AdsClick, AdsConversion, AdsImpression
from pentad.apps.ads.permissions import REPORTS_READ
from pentad.core.context import AppContext
from pentad.core.errors import BadRequest
from pentad.core.queries import QueryUnavailable, UnknownQuery

By = Literal["page", "source"]
MAX_DAYS: Final = 366
MAX_ROWS: Final = 500
EARLIEST: Final = date(2000, 1, 1)
LATEST: Final = date(2200, 1, 1)
PAGE_TRAFFIC: Final = "analytics.page_traffic"


class ReportRow(BaseModel):
    key: str | None = Field(description="The page's path, or the source category (null: unknown).")
    served: int
    viewable: int
    clicks: int
    ctr: float = Field(description="clicks / viewable (0 without any).")
    spend_micros: int = Field(description="What it cost the advertisers: the publisher's earnings.")
    ecpm_micros: float = Field(description="spend x 1,000 / viewable (0 without any).")
    conversions: int
    conversion_rate: float = Field(description="conversions / clicks (0 without any).")
    conversion_revenue_micros: int
    pageviews: int | None = Field(None, description="Analytics: pageviews (site reports, analytics on).")
    visitors: int | None = Field(None, description="Analytics: visitors (daily unique, summed).")
    page_rpm_micros: float | None = Field(None, description="spend x 1,000 / pageviews.")


class ReportDay(BaseModel):
    day: date
    served: int
    viewable: int
    clicks: int
    spend_micros: int
    conversions: int


class Report(BaseModel):
    scope: Literal["site", "campaign"]
    id: uuid.UUID
    by: By
    since: date
    until: date
    timezone: str
    analytics: bool = Field(description="Whether the analytics columns are there.")
    analytics_note: str | None = Field(description="Why they are not, when they are not.")
    totals: ReportRow
    rows: list[ReportRow]
    days: list[ReportDay]


@dataclass
class _Sum:
    served: int = 0
    viewable: int = 0
    clicks: int = 0
    spend: int = 0
    conversions: int = 0
    revenue: int = 0
    traffic: tuple[int, int] | None = field(default=None)

    def add(self, other: _Sum) -> None:
        self.served += other.served
        self.viewable += other.viewable
        self.clicks += other.clicks
        self.spend += other.spend
        self.conversions += other.conversions
        self.revenue += other.revenue

    def row(self, key: str | None, *, joined: bool) -> ReportRow:
        values: dict[str, Any] = {
            "key": key,
            "served": self.served,
            "viewable": self.viewable,
            "clicks": self.clicks,
            "ctr": self.clicks / self.viewable if self.viewable else 0.0,
            "spend_micros": self.spend,
            "ecpm_micros": self.spend * 1000 / self.viewable if self.viewable else 0.0,
            "conversions": self.conversions,
            "conversion_rate": self.conversions / self.clicks if self.clicks else 0.0,
            "conversion_revenue_micros": self.revenue,
        }
        if joined:
            pageviews, visitors = self.traffic or (0, 0)
            values |= {
                "pageviews": pageviews,
                "visitors": visitors,
                "page_rpm_micros": self.spend * 1000 / pageviews if pageviews else 0.0,
            }
        return ReportRow(**values)


def resolve_days(since: date | None, until: date | None, timezone: str) -> tuple[date, date]:
    """The range asked for (default: the last 30 days up to today), checked."""
    today = datetime.now(ZoneInfo(timezone)).date()
    last = until or today
    first = since or (last - timedelta(days=29) if last > EARLIEST + timedelta(days=29) else EARLIEST)
    if first > last or (last - first).days >= MAX_DAYS or first < EARLIEST or last > LATEST:
        raise BadRequest(
            f"`since` must not come after `until`, at most {MAX_DAYS} days apart, between {EARLIEST} and "
            f"{LATEST}.",
            code="invalid_range",
        )
    return first, last


def _bounds(first: date, last: date, timezone: str) -> tuple[int, int]:
    zone = ZoneInfo(timezone)
    start = datetime(first.year, first.month, first.day, tzinfo=zone)
    end_day = last + timedelta(days=1)
    end = datetime(end_day.year, end_day.month, end_day.day, tzinfo=zone)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


async def _prices(session: AsyncSession, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, tuple[str, int]]:
    wanted = [campaign_id for campaign_id in set(ids) if campaign_id is not None]
    if not wanted:
        return {}
    rows = await session.execute(
        select(AdsCampaign.id, AdsCampaign.pricing, AdsCampaign.rate_micros).where(AdsCampaign.id.in_(wanted))
    )
    return {campaign_id: (pricing, rate) for campaign_id, pricing, rate in rows}


async def _delivery(
    session: AsyncSession, scope: ColumnElement[bool], start_ms: int, end_ms: int, by: By, timezone: str
) -> tuple[dict[str | None, _Sum], dict[date, _Sum]]:
    impression, click, conversion = AdsImpression, AdsClick, AdsConversion
    key = impression.path if by == "page" else impression.source
    in_range = (scope, impression.ts >= start_ms, impression.ts < end_ms)
    grouped = (
        await session.execute(
            select(
                key,
                impression.hour,
                impression.campaign_id,
                func.count(),
                func.count(impression.viewable_ts),
                func.count(click.impression_id),
            )
            .outerjoin(click, click.impression_id == impression.id)
            .where(*in_range)
            .group_by(key, impression.hour, impression.campaign_id)
        )
    ).all()
    prices = await _prices(session, (row[2] for row in grouped))
    zone = ZoneInfo(timezone)
    by_key: dict[str | None, _Sum] = {}
    by_day: dict[date, _Sum] = {}
    for value, hour, campaign_id, served, viewable, clicks in grouped:
        pricing, rate = prices.get(campaign_id, ("flat", 0)) if campaign_id is not None else ("flat", 0)
        part = _Sum(served, viewable, clicks, spend_micros(pricing, rate, viewable, clicks))
        by_key.setdefault(value, _Sum()).add(part)
        by_day.setdefault(datetime.fromtimestamp(hour * 3600, zone).date(), _Sum()).add(part)
    converted = await session.execute(
        select(key, impression.hour, func.count(), func.sum(func.coalesce(conversion.revenue_micros, 0)))
        .join(impression, impression.id == conversion.impression_id)
        .where(*in_range)
        .group_by(key, impression.hour)
    )
    for value, hour, count, revenue in converted:
        part = _Sum(conversions=int(count), revenue=int(revenue or 0))
        by_key.setdefault(value, _Sum()).add(part)
        by_day.setdefault(datetime.fromtimestamp(hour * 3600, zone).date(), _Sum()).add(part)
    return by_key, by_day


async def _traffic(
    context: AppContext, session: AsyncSession, domain: str, first: date, last: date, by: By
) -> tuple[dict[str | None, tuple[int, int]] | None, str | None]:
    """Analytics' pageviews and visitors per key, or None and why not."""
    try:
        answer = await context.query(
            session,
            PAGE_TRAFFIC,
            {
                "site_domain": domain,
                "since": first,
                "until": last,
                "by": "page" if by == "page" else "medium",
            },
        )
    except (QueryUnavailable, UnknownQuery):
        return None, "Analytics is not enabled on this server."
    if not answer["tracked"]:
        return None, f"Analytics does not track {domain}."
    if answer.get("unavailable"):
        return None, str(answer["unavailable"])
    return {row["key"]: (row["pageviews"], row["visitors"]) for row in answer["rows"]}, None


async def build_report(
    context: AppContext,
    session: AsyncSession,
    *,
    scope: Literal["site", "campaign"],
    scope_id: uuid.UUID,
    domain: str | None,
    timezone: str,
    by: By,
    since: date | None,
    until: date | None,
) -> Report:
    """The report of a site (`domain` given: joined with analytics) or of a campaign."""
    first, last = resolve_days(since, until, timezone)
    start_ms, end_ms = _bounds(first, last, timezone)
    condition = (
        AdsImpression.site_id == scope_id if scope == "site" else AdsImpression.campaign_id == scope_id
    )
    by_key, by_day = await _delivery(session, condition, start_ms, end_ms, by, timezone)
    traffic: dict[str | None, tuple[int, int]] | None = None
    note: str | None = "A campaign's report shows the ads' figures only."
    if domain is not None:
        traffic, note = await _traffic(context, session, domain, first, last, by)
    joined = traffic is not None
    totals = _Sum()
    for value, found in by_key.items():
        totals.add(found)
        if traffic is not None:
            found.traffic = traffic.get(value, (0, 0))
    if traffic is not None:
        totals.traffic = (sum(p for p, _ in traffic.values()), sum(v for _, v in traffic.values()))
    ordered = sorted(by_key.items(), key=lambda item: (-item[1].served, item[0] or ""))[:MAX_ROWS]
    days = []
    current = first
    while current <= last:
        found = by_day.get(current, _Sum())
        days.append(
            ReportDay(
                day=current, served=found.served, viewable=found.viewable, clicks=found.clicks,
                spend_micros=found.spend, conversions=found.conversions,
            )
        )  # fmt: skip
        current += timedelta(days=1)
    return Report(
        scope=scope, id=scope_id, by=by, since=first, until=last, timezone=timezone, analytics=joined,
        analytics_note=None if joined else note, totals=totals.row(None, joined=joined),
        rows=[found.row(value, joined=joined) for value, found in ordered], days=days,
    )  # fmt: skip


CSV_COLUMNS: Final = (
    "key", "served", "viewable", "clicks", "ctr", "spend_micros", "ecpm_micros", "conversions",
    "conversion_rate", "conversion_revenue_micros", "pageviews", "visitors", "page_rpm_micros",
)  # fmt: skip


def csv_lines(report: Report) -> list[list[str]]:
    """The report's rows as CSV cells, with a header (the analytics columns only when it has them)."""
    columns = [column for column in CSV_COLUMNS if report.analytics or column not in _ANALYTICS_COLUMNS]
    header = ["page" if report.by == "page" else "source", *columns[1:]]
    lines = [header]
    for row in report.rows:
        values = row.model_dump()
        lines.append(["" if values[column] is None else _cell(values[column]) for column in columns])
    return lines


_ANALYTICS_COLUMNS: Final = frozenset({"pageviews", "visitors", "page_rpm_micros"})


def _cell(value: object) -> str:
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text  # no formulas in a spreadsheet


async def site_report(
    ads: AdsContext, site_id: uuid.UUID, by: By, since: date | None, until: date | None
) -> Report:
    """A site's report for a caller who may read its reports (SiteNotFound otherwise)."""
    access = await ads.site(site_id)
    access.require(REPORTS_READ)
    site = access.row
    return await build_report(
        ads.platform, ads.session, scope="site", scope_id=site.id, domain=site.domain,
        timezone=site.timezone, by=by, since=since, until=until,
    )  # fmt: skip


async def campaign_report(
    ads: AdsContext, campaign_id: uuid.UUID, by: By, since: date | None, until: date | None
) -> Report:
    """A campaign's report for a caller who may read its advertiser's reports (CampaignNotFound otherwise)."""
    campaign, access = await campaign_access(ads, campaign_id)
    access.require(REPORTS_READ)
    return await build_report(
        ads.platform, ads.session, scope="campaign", scope_id=campaign.id, domain=None, timezone="UTC",
        by=by, since=since, until=until,
    )  # fmt: skip


def csv_response(report: Report, name: str) -> Response:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(csv_lines(report))
    filename = f"{name}-{report.by}-{report.since}-{report.until}.csv"
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )
