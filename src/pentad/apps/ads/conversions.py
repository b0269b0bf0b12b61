"""Conversions: analytics' goal completions attributed to the ads a visitor saw or clicked.

Analytics emits the domain event `analytics.goals_completed` once per flushed batch of events that
complete goals; ads subscribes (`ads.attribute_conversions`) without importing analytics: the payload is
re-read into this module's own copy of its shape (`GoalsCompleted`).

Attribution, per completion, on the site whose domain is `site_domain` and the visitor's daily id (the
core's visitor id of that domain and UTC day, the one the decision route recorded with each impression):

1. post-click: the latest click of an impression of a campaign that counts this goal (its
   `conversion_goals` name it), at most the campaign's `click_window` seconds before the completion;
2. else post-view: the latest viewable impression of such a campaign within its `view_window`;
3. else nothing. Both must be of the same UTC day (the visitor id rotates daily: nothing links two days).

A completion is stored once (unique on site, visitor, goal and time), so a redelivered event or a replayed
batch never counts twice; the conversion counts (with its revenue) in the stats bucket of the impression it
is attributed to, recomputed from the raw rows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final

from pydantic import BaseModel, Field
from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.ads.impressions import recompute_stats
from pentad.apps.ads.models import AdsCampaign, AdsClick, AdsConversion, AdsImpression, AdsSite
from pentad.core.context import JobContext
from pentad.core.db.base import uuid7
from pentad.core.db.inserts import insert_ignore
from pentad.core.events import Event, EventSubscriber

GOALS_COMPLETED: Final = "analytics.goals_completed"
ATTRIBUTE: Final = "ads.attribute_conversions"
DAY_MS: Final = 86_400_000


class Completion(BaseModel):
    """One goal completion, as analytics sends it."""

    goal_id: uuid.UUID
    goal_name: str = Field(max_length=200)
    visitor_id: int
    day: date
    ts: datetime
    path: str = ""
    source: str | None = None
    revenue_micros: int | None = None
    currency: str | None = None


class GoalsCompleted(BaseModel):
    """The payload of `analytics.goals_completed` (ads' copy of its shape; extra fields are ignored)."""

    site_domain: str
    completions: list[Completion]


@dataclass(frozen=True)
class Touch:
    """An impression of the visitor's that a completion may be attributed to."""

    impression_id: uuid.UUID
    campaign_id: uuid.UUID
    creative_id: uuid.UUID
    zone_id: uuid.UUID
    hour: int
    ts: int
    viewable_ts: int | None
    click_ts: int | None


@dataclass(frozen=True)
class Rule:
    """What a campaign counts: goal names and windows (seconds)."""

    goals: frozenset[str]
    click_window: int
    view_window: int


def _ms(at: datetime) -> int:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return int(at.timestamp() * 1000)


def _day_start(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def attribute(
    completion_ms: int, day: date, touches: list[Touch], rules: dict[uuid.UUID, Rule], goal: str
) -> tuple[Touch, str] | None:
    """The touch a completion at `completion_ms` goes to and its kind (`click` or `view`), or None."""
    start = _day_start(day)
    best_click: Touch | None = None
    best_view: Touch | None = None
    for touch in touches:
        rule = rules.get(touch.campaign_id)
        if rule is None or goal not in rule.goals or not start <= touch.ts < start + DAY_MS:
            continue
        click = touch.click_ts
        if (
            click is not None
            and 0 <= completion_ms - click <= rule.click_window * 1000
            and (best_click is None or click > (best_click.click_ts or 0))
        ):
            best_click = touch
        seen = touch.viewable_ts
        if (
            seen is not None
            and 0 <= completion_ms - seen <= rule.view_window * 1000
            and (best_view is None or seen > (best_view.viewable_ts or 0))
        ):
            best_view = touch
    if best_click is not None:
        return best_click, "click"
    if best_view is not None:
        return best_view, "view"
    return None


async def _rules(session: AsyncSession) -> dict[uuid.UUID, Rule]:
    rows = await session.execute(
        select(
            AdsCampaign.id, AdsCampaign.conversion_goals, AdsCampaign.click_window, AdsCampaign.view_window
        )
    )
    return {
        campaign_id: Rule(frozenset(goals), click_window, view_window)
        for campaign_id, goals, click_window, view_window in rows
        if goals
    }


async def _touches(
    session: AsyncSession,
    site_id: uuid.UUID,
    visitors: set[int],
    first: int,
    last: int,
    campaigns: set[uuid.UUID],
) -> dict[int, list[Touch]]:
    impression, click = AdsImpression, AdsClick
    rows = await session.execute(
        select(
            impression.id,
            impression.campaign_id,
            impression.creative_id,
            impression.zone_id,
            impression.hour,
            impression.ts,
            impression.viewable_ts,
            click.ts,
            impression.visitor_id,
        )
        .outerjoin(click, click.impression_id == impression.id)
        .where(
            and_(
                impression.site_id == site_id,
                impression.visitor_id.in_(sorted(visitors)),
                impression.ts >= first,
                impression.ts <= last,
                impression.campaign_id.in_(sorted(campaigns)),
            )
        )
    )
    found: dict[int, list[Touch]] = {}
    for impression_id, campaign_id, creative_id, zone_id, hour, ts, viewable_ts, click_ts, visitor in rows:
        if visitor is None or campaign_id is None:
            continue
        found.setdefault(visitor, []).append(
            Touch(impression_id, campaign_id, creative_id, zone_id, hour, ts, viewable_ts, click_ts)
        )
    return found


async def attribute_batch(session: AsyncSession, payload: GoalsCompleted) -> int:
    """Store the conversions of one event's completions; returns how many were attributed (including any
    already stored by an earlier delivery)."""
    site_id = await session.scalar(select(AdsSite.id).where(AdsSite.domain == payload.site_domain.lower()))
    if site_id is None or not payload.completions:
        return 0
    rules = await _rules(session)
    goals = {completion.goal_name for completion in payload.completions}
    campaigns = {campaign_id for campaign_id, rule in rules.items() if rule.goals & goals}
    if not campaigns:
        return 0
    starts = [_day_start(completion.day) for completion in payload.completions]
    ends = [_ms(completion.ts) for completion in payload.completions]
    touches = await _touches(
        session,
        site_id,
        {completion.visitor_id for completion in payload.completions},
        min(starts),
        max(ends),
        campaigns,
    )
    values: list[dict[str, Any]] = []
    for completion, at in zip(payload.completions, ends, strict=True):
        found = attribute(
            at, completion.day, touches.get(completion.visitor_id, []), rules, completion.goal_name
        )
        if found is None:
            continue
        touch, kind = found
        values.append(
            {
                "id": uuid7(), "site_id": site_id, "visitor_id": completion.visitor_id,
                "goal_id": completion.goal_id, "goal_name": completion.goal_name, "ts": at, "kind": kind,
                "impression_id": touch.impression_id, "campaign_id": touch.campaign_id,
                "creative_id": touch.creative_id, "zone_id": touch.zone_id, "hour": touch.hour,
                "revenue_micros": completion.revenue_micros,
                "currency": (completion.currency or "")[:3].upper() or None,
                "path": completion.path[:500] or None, "source": (completion.source or "")[:16] or None,
            }
        )  # fmt: skip
    if values:
        await session.execute(insert_ignore(session, AdsConversion), values)
        await recompute_stats(session, {(value["campaign_id"], value["hour"]) for value in values})
    return len(values)


async def attribute_conversions(context: JobContext, event: Event[Any]) -> None:
    raw = event.payload
    payload = GoalsCompleted.model_validate(
        raw.model_dump(mode="json") if isinstance(raw, BaseModel) else raw
    )
    async with context.platform.database.transaction() as session:
        await attribute_batch(session, payload)


SUBSCRIBERS: Final = (
    EventSubscriber(GOALS_COMPLETED, attribute_conversions, name=ATTRIBUTE, max_attempts=8, queue="ads"),
)
