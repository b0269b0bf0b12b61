"""Queries analytics answers for other apps (core/queries.py): `analytics.page_traffic`.

The ads reports join their delivery per page and per traffic source with the site's traffic, without
importing analytics: `context.query(session, "analytics.page_traffic", {...})`.

- `by: "page"`: pageviews and visitors per path, from the rollups (every tier), the top `limit` paths by
  visitors (as the dashboard's pages panel);
- `by: "medium"`: pageviews and visitors per source category (direct, search, social, email, paid,
  referral: the core's classification, the one ads records with each impression), from the raw events
  (the database's, or the ClickHouse store's), so only within the site's raw retention.

Dates are whole days in the analytics site's time zone, `until` inclusive. A domain analytics does not
track answers `tracked: false` and no rows.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field, model_validator
from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.analytics import query
from pentad.apps.analytics.models import AnalyticsEvent, AnalyticsSite
from pentad.apps.analytics.store import external_store
from pentad.core.context import AppContext
from pentad.core.queries import QuerySpec


class PageTrafficIn(BaseModel):
    site_domain: str = Field(max_length=253)
    since: date
    until: date = Field(description="Inclusive.")
    by: Literal["page", "medium"] = "page"
    limit: int = Field(1000, ge=1, le=5000)

    @model_validator(mode="after")
    def _ordered(self) -> PageTrafficIn:
        if self.until < self.since or (self.until - self.since).days >= query.MAX_CUSTOM_DAYS:
            raise ValueError(f"since must not come after until, at most {query.MAX_CUSTOM_DAYS} days apart")
        return self


class TrafficRow(BaseModel):
    key: str | None = Field(description="The path, or the source category (null: unknown).")
    visitors: int
    pageviews: int


class PageTrafficOut(BaseModel):
    tracked: bool = Field(description="Whether analytics tracks the domain.")
    timezone: str | None
    rows: list[TrafficRow]
    unavailable: str | None = Field(None, description="Why these rows cannot be given (then none are).")


async def page_traffic(context: AppContext, session: AsyncSession, ask: PageTrafficIn) -> PageTrafficOut:
    site = await session.scalar(select(AnalyticsSite).where(AnalyticsSite.domain == ask.site_domain.lower()))
    if site is None:
        return PageTrafficOut(tracked=False, timezone=None, rows=[])
    span = query.resolve_range("custom", site.timezone, start=ask.since, end=ask.until)
    store = external_store(context)
    if ask.by == "page":
        options = query.options_for(context, site, store=store)
        found = await query.breakdown(
            session,
            site.key,
            span,
            "pages",
            limit=ask.limit,
            session_timeout=options.session_timeout,
            planning=options.planning,
        )
        rows = [TrafficRow(key=row.value, visitors=row.visitors, pageviews=row.pageviews) for row in found]
        return PageTrafficOut(tracked=True, timezone=site.timezone, rows=rows)
    if store is not None:
        found_media = await store.medium_traffic(site.key, span, ask.limit)
        rows = [TrafficRow(key=medium, visitors=v, pageviews=p) for medium, v, p in found_media]
        return PageTrafficOut(tracked=True, timezone=site.timezone, rows=rows)
    grouped = await session.execute(
        select(AnalyticsEvent.medium, func.count(distinct(AnalyticsEvent.visitor_id)), func.count())
        .where(
            AnalyticsEvent.site_key == site.key,
            AnalyticsEvent.ts >= span.start_ms,
            AnalyticsEvent.ts < span.end_ms,
            AnalyticsEvent.name == query.PAGEVIEW,
        )
        .group_by(AnalyticsEvent.medium)
        .order_by(func.count().desc())
        .limit(ask.limit)
    )
    rows = [TrafficRow(key=medium, visitors=int(v), pageviews=int(p)) for medium, v, p in grouped]
    return PageTrafficOut(tracked=True, timezone=site.timezone, rows=rows)


PAGE_TRAFFIC = QuerySpec("analytics.page_traffic", PageTrafficIn, PageTrafficOut, page_traffic)
QUERIES = [PAGE_TRAFFIC]
