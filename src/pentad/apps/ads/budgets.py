"""Total budgets: a campaign stops serving once its spend reaches `budget_micros`.

Spend = viewable impressions x CPM / 1,000 or clicks x CPC (flat campaigns spend nothing per event). It is
counted twice:

- at serving, in the core cache (`cache.incr`, shared by every process when Redis is configured): the
  beacon and the click redirect add what they cost to the campaign's all-time counter, and the decision
  route leaves out a campaign whose counter reached its budget — at once, on every process sharing it;
- in ads_stats_hourly, recomputed from the raw rows (the truth).

The cron job `ads.budgets` (every minute) reconciles them: a counter below the stats (a restarted memory
cache, an evicted key) is raised to them; a campaign whose spend reached its budget gets `exhausted_at`
(the delivery snapshot drops it on every process) and emits the domain event `ads.budget_exhausted` once,
whose subscriber `ads.mail_budget_exhausted` mails the advertiser's owner (core mail). Changing the budget
clears `exhausted_at`.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from pydantic import BaseModel
from sqlalchemy import select

from pentad.apps.ads import repository
from pentad.apps.ads.delivery import reload_after_commit
from pentad.apps.ads.models import AdsAdvertiser, AdsCampaign
from pentad.core.auth.exceptions import UserNotFound
from pentad.core.auth.service import AuthService
from pentad.core.context import AppContext, JobContext
from pentad.core.db.base import utcnow
from pentad.core.events import DomainEvent, Event, EventSubscriber, emit
from pentad.core.mail import enqueue_mail
from pentad.core.platform import Platform

BUDGETS: Final = "ads.budgets"
EXHAUSTED: Final = "ads.budget_exhausted"
MAIL_EXHAUSTED: Final = "ads.mail_budget_exhausted"
TEMPLATE: Final = "ads_budget_exhausted"
TOTAL_TTL: Final = 400 * 86_400


def total_key(campaign_id: uuid.UUID) -> str:
    """The cache counter of a campaign's all-time spend, micros."""
    return f"ads:t:{campaign_id}:spend"


class BudgetExhausted(BaseModel):
    campaign_id: uuid.UUID
    advertiser_id: uuid.UUID
    campaign_name: str
    budget_micros: int
    spend_micros: int


BUDGET_EXHAUSTED = DomainEvent(
    EXHAUSTED, BudgetExhausted, "A campaign's spend reached its total budget; it stopped serving."
)


async def add_spend(context: AppContext, campaign_id: uuid.UUID, micros: int) -> int:
    """Count what serving just cost; returns the campaign's all-time spend as the cache knows it."""
    return await context.cache.incr(total_key(campaign_id), micros, TOTAL_TTL)


async def check_budgets(context: AppContext) -> list[uuid.UUID]:
    """Reconcile the spend counters with the stats and close the campaigns whose budget is spent; returns
    the campaigns closed now."""
    closed: list[uuid.UUID] = []
    async with context.database.transaction() as session:
        campaigns = list(
            await session.scalars(
                select(AdsCampaign).where(
                    AdsCampaign.budget_micros.is_not(None), AdsCampaign.exhausted_at.is_(None)
                )
            )
        )
        if not campaigns:
            return closed
        spent = await repository.campaign_spend(session, [campaign.id for campaign in campaigns])
        counted = await context.cache.get_many([total_key(campaign.id) for campaign in campaigns])
        for campaign, cached in zip(campaigns, counted, strict=True):
            stats = spent.get(campaign.id, 0)
            cache = int(cached or 0)
            if cache < stats:
                cache = await context.cache.incr(total_key(campaign.id), stats - cache, TOTAL_TTL)
            spend = max(stats, cache)
            assert campaign.budget_micros is not None
            if spend < campaign.budget_micros:
                continue
            campaign.exhausted_at = utcnow()
            closed.append(campaign.id)
            await emit(
                session,
                EXHAUSTED,
                BudgetExhausted(
                    campaign_id=campaign.id,
                    advertiser_id=campaign.advertiser_id,
                    campaign_name=campaign.name,
                    budget_micros=campaign.budget_micros,
                    spend_micros=spend,
                ),
            )
        if closed:
            reload_after_commit(session, context)
    return closed


async def budgets_job(context: JobContext, _payload: dict[str, Any]) -> None:
    await check_budgets(context.platform)


async def mail_budget_exhausted(context: JobContext, event: Event[Any]) -> None:
    """Tell the advertiser's owner (the account that created it) that the campaign stopped."""
    payload = BudgetExhausted.model_validate(event.payload.model_dump(mode="json"))
    platform = context.platform
    assert isinstance(platform, Platform)  # the running platform: the account service needs it
    async with platform.database.transaction() as session:
        owner_id = await session.scalar(
            select(AdsAdvertiser.owner_id).where(AdsAdvertiser.id == payload.advertiser_id)
        )
        if owner_id is None:
            return  # the advertiser is gone
        try:
            owner = await AuthService(session, platform).get_user(owner_id)
        except UserNotFound:
            return
        if not owner.email:
            return
        await enqueue_mail(
            session,
            platform.keyring,
            TEMPLATE,
            to=owner.email,
            name=owner.display_name,
            campaign=payload.campaign_name,
            budget=f"{payload.budget_micros / 1_000_000:,.2f}",
            spend=f"{payload.spend_micros / 1_000_000:,.2f}",
            link=f"{platform.base_url.rstrip('/')}/ads/campaigns/{payload.campaign_id}",
        )


SUBSCRIBERS: Final = (EventSubscriber(EXHAUSTED, mail_budget_exhausted, name=MAIL_EXHAUSTED, queue="ads"),)
