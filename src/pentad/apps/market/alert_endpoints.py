"""Alerts and Web Push (/api/market): the caller's alert rules, what fired, quiet hours and hourly limit,
and the browsers that receive pushes. The caller's own only: another user's rule is 404.

Thin: each route builds the caller's MarketContext and makes one action call."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.market.actions import alerts, push
from pentad.apps.market.actions.context import MarketContext
from pentad.apps.market.permissions import MARKET_USE
from pentad.apps.market.trader_schemas import (
    AlertEventRead,
    AlertPrefs,
    AlertRuleIn,
    AlertRulePatch,
    AlertRuleRead,
)
from pentad.core.auth.dependencies import db_session, request_actor, require_user
from pentad.core.auth.principal import Principal
from pentad.core.errors import problem_responses
from pentad.core.platform import get_platform
from pentad.core.push import PushSubscriptionCreate, VapidPublicKey

router = APIRouter(
    prefix="/api/market", tags=["market"], responses=problem_responses(400, 401, 403, 404, 422, 429)
)

Session = Annotated[AsyncSession, Depends(db_session)]
Person = Annotated[Principal, Depends(require_user(MARKET_USE))]
RuleId = Annotated[uuid.UUID, Path(description="The alert rule's id.")]


class PushSubscriptionRead(BaseModel):
    id: uuid.UUID
    created: bool


def _context(request: Request, session: AsyncSession, principal: Principal) -> MarketContext:
    return MarketContext(session, get_platform(request), principal, request_actor(request, principal))


@router.get("/alerts/rules", summary="Your alert rules")
async def list_rules(request: Request, session: Session, principal: Person) -> list[AlertRuleRead]:
    return await alerts.list_rules(_context(request, session, principal))


@router.post("/alerts/rules", status_code=201, summary="Add an alert rule")
async def create_rule(
    request: Request, session: Session, principal: Person, data: AlertRuleIn
) -> AlertRuleRead:
    return await alerts.do_create_rule(_context(request, session, principal), data)


@router.patch("/alerts/rules/{rule_id}", summary="Change an alert rule (new params re-arm it)")
async def update_rule(
    rule_id: RuleId, request: Request, session: Session, principal: Person, data: AlertRulePatch
) -> AlertRuleRead:
    return await alerts.do_update_rule(_context(request, session, principal), rule_id, data)


@router.delete("/alerts/rules/{rule_id}", status_code=204, summary="Delete an alert rule")
async def delete_rule(rule_id: RuleId, request: Request, session: Session, principal: Person) -> Response:
    await alerts.do_delete_rule(_context(request, session, principal), rule_id)
    return Response(status_code=204)


@router.get("/alerts/events", summary="Alerts that fired for you, newest first")
async def list_events(
    request: Request, session: Session, principal: Person, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[AlertEventRead]:
    return await alerts.list_events(_context(request, session, principal), limit=limit)


@router.get("/alerts/prefs", summary="Your alert delivery preferences")
async def get_prefs(request: Request, session: Session, principal: Person) -> AlertPrefs:
    return await alerts.get_prefs(_context(request, session, principal))


@router.put("/alerts/prefs", summary="Set your time zone, quiet hours and hourly alert limit")
async def set_prefs(request: Request, session: Session, principal: Person, data: AlertPrefs) -> AlertPrefs:
    return await alerts.do_set_prefs(_context(request, session, principal), data)


@router.get("/push/vapid-public-key", summary="The key browsers subscribe to market Web Push with")
async def vapid_key(request: Request, session: Session, principal: Person) -> VapidPublicKey:
    return await push.public_key(_context(request, session, principal))


@router.post(
    "/push/subscriptions",
    status_code=201,
    summary="Receive alerts on this browser (its PushSubscription)",
    responses={200: {"description": "Already subscribed: keys updated."}},
)
async def subscribe(
    request: Request, response: Response, session: Session, principal: Person, data: PushSubscriptionCreate
) -> PushSubscriptionRead:
    subscription_id, created = await push.do_subscribe(_context(request, session, principal), data)
    if not created:
        response.status_code = 200
    return PushSubscriptionRead(id=subscription_id, created=created)


@router.delete("/push/subscriptions/{subscription_id}", status_code=204, summary="Stop pushes to a browser")
async def unsubscribe(
    subscription_id: Annotated[uuid.UUID, Path()], request: Request, session: Session, principal: Person
) -> Response:
    await push.do_unsubscribe(_context(request, session, principal), subscription_id)
    return Response(status_code=204)
