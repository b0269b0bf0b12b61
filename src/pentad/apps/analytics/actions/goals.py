"""Goals and funnels of a site: owners add and remove them, viewers read them (audited)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.analytics import funnels, goals
from pentad.apps.analytics.access import access_site
from pentad.apps.analytics.models import AnalyticsFunnel, AnalyticsGoal, AnalyticsSite
from pentad.apps.analytics.permissions import SITE_MANAGE
from pentad.apps.analytics.schemas import FunnelCreate, GoalCreate
from pentad.core import audit
from pentad.core.audit import Actor
from pentad.core.auth.principal import Principal
from pentad.core.errors import AppError, NotFound
from pentad.core.platform import Platform


class GoalNotFound(NotFound):
    code = "goal_not_found"


class FunnelNotFound(NotFound):
    code = "funnel_not_found"


@dataclass
class GoalService:
    session: AsyncSession
    platform: Platform
    principal: Principal
    actor: Actor

    async def _site(self, site_id: uuid.UUID, *, manage: bool = False) -> AnalyticsSite:
        if manage:
            return (await access_site(self.session, self.platform, self.principal, site_id, SITE_MANAGE)).site
        return (await access_site(self.session, self.platform, self.principal, site_id)).site

    async def goals(self, site_id: uuid.UUID) -> list[AnalyticsGoal]:
        return await goals.list_goals(self.session, (await self._site(site_id)).id)

    async def create_goal(self, site_id: uuid.UUID, data: GoalCreate) -> AnalyticsGoal:
        site = await self._site(site_id, manage=True)
        count = await self.session.scalar(select(func.count()).where(AnalyticsGoal.site_id == site.id))
        if int(count or 0) >= goals.MAX_GOALS:
            raise AppError(f"A site has at most {goals.MAX_GOALS} goals.", status=409, code="too_many_goals")
        name = data.name or (data.event_name if data.kind == "event" else f"Visit {data.path}")
        goal = AnalyticsGoal(
            site_id=site.id,
            kind=data.kind,
            name=name,
            path_pattern=data.path,
            event_name=data.event_name,
            props={},
            currency=data.currency,
        )
        self.session.add(goal)
        await self.session.flush()
        audit.record(self.session, self.actor, "analytics.goal.create", resource_type="analytics.site",
                     resource_id=str(site.id), goal_id=str(goal.id), goal=goal.name)  # fmt: skip
        return goal

    async def delete_goal(self, site_id: uuid.UUID, goal_id: uuid.UUID) -> None:
        site = await self._site(site_id, manage=True)
        goal = await self.session.get(AnalyticsGoal, goal_id)
        if goal is None or goal.site_id != site.id:
            raise GoalNotFound("No such goal on this site.")
        await self.session.delete(goal)
        audit.record(self.session, self.actor, "analytics.goal.delete", resource_type="analytics.site",
                     resource_id=str(site.id), goal_id=str(goal_id))  # fmt: skip

    async def funnels(self, site_id: uuid.UUID) -> list[AnalyticsFunnel]:
        site = await self._site(site_id)
        query = select(AnalyticsFunnel).where(AnalyticsFunnel.site_id == site.id)
        return list((await self.session.scalars(query.order_by(AnalyticsFunnel.created_at))).all())

    async def funnel(self, site_id: uuid.UUID, funnel_id: uuid.UUID) -> tuple[AnalyticsSite, AnalyticsFunnel]:
        site = await self._site(site_id)
        funnel = await self.session.get(AnalyticsFunnel, funnel_id)
        if funnel is None or funnel.site_id != site.id:
            raise FunnelNotFound("No such funnel on this site.")
        return site, funnel

    async def create_funnel(self, site_id: uuid.UUID, data: FunnelCreate) -> AnalyticsFunnel:
        site = await self._site(site_id, manage=True)
        count = await self.session.scalar(select(func.count()).where(AnalyticsFunnel.site_id == site.id))
        if int(count or 0) >= funnels.MAX_FUNNELS:
            raise AppError(
                f"A site has at most {funnels.MAX_FUNNELS} funnels.", status=409, code="too_many_funnels"
            )
        wanted = {step.goal_id for step in data.steps if step.goal_id is not None}
        if wanted:
            found = await self.session.scalars(
                select(AnalyticsGoal.id).where(AnalyticsGoal.site_id == site.id, AnalyticsGoal.id.in_(wanted))
            )
            if set(found.all()) != wanted:
                raise funnels.FunnelInvalid("A step names a goal this site does not have.")
        funnel = AnalyticsFunnel(
            site_id=site.id,
            name=data.name,
            steps=[step.model_dump(mode="json", exclude_none=True) for step in data.steps],
            scope=data.scope,
        )
        self.session.add(funnel)
        await self.session.flush()
        audit.record(self.session, self.actor, "analytics.funnel.create", resource_type="analytics.site",
                     resource_id=str(site.id), funnel_id=str(funnel.id))  # fmt: skip
        return funnel

    async def delete_funnel(self, site_id: uuid.UUID, funnel_id: uuid.UUID) -> None:
        site = await self._site(site_id, manage=True)
        funnel = await self.session.get(AnalyticsFunnel, funnel_id)
        if funnel is None or funnel.site_id != site.id:
            raise FunnelNotFound("No such funnel on this site.")
        await self.session.delete(funnel)
        audit.record(self.session, self.actor, "analytics.funnel.delete", resource_type="analytics.site",
                     resource_id=str(site.id), funnel_id=str(funnel_id))  # fmt: skip
