"""A trader's pages: `/market/orders` (your characters with their sync status, a "sync now" button, and
your orders against the current book), `/market/pnl` (realised profit per item and a cumulative chart
drawn with uPlot from /static/vendor) and `/market/alerts` (rules, what fired, quiet hours; new alerts
arrive live over the hub). Forms run the same actions as the API (actions/*), with the session's CSRF
token."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.templating import Jinja2Templates
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from pentad.apps.market.actions import alerts, characters, orders, pnl, sync
from pentad.apps.market.actions.context import MarketContext
from pentad.apps.market.permissions import MARKET_USE
from pentad.apps.market.trader_schemas import AlertPrefs, AlertRuleIn
from pentad.core.auth.dependencies import db_session, request_actor
from pentad.core.auth.principal import Principal
from pentad.core.errors import AppError, BadRequest
from pentad.core.platform import get_platform
from pentad.core.web.pages.kit import (
    TEMPLATES_DIR,
    FormField,
    PageAccess,
    failure_context,
    parse_form,
    render_page,
    see_other,
)

templates = Jinja2Templates(directory=[Path(__file__).parent / "templates", TEMPLATES_DIR])


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else "-"


templates.env.filters["when"] = _when
router = APIRouter(include_in_schema=False)

Trader = Annotated[Principal, Depends(PageAccess(MARKET_USE))]
Session = Annotated[AsyncSession, Depends(db_session)]


def _context(request: Request, session: AsyncSession, principal: Principal) -> MarketContext:
    return MarketContext(session, get_platform(request), principal, request_actor(request, principal))


@router.get("/market/orders")
async def orders_page(request: Request, principal: Trader, session: Session) -> Response:
    return await _orders_page(request, _context(request, session, principal))


async def _orders_page(request: Request, market: MarketContext, **extra: Any) -> Response:
    linked = await characters.list_characters(market)
    statuses = {}
    for character in linked:
        statuses[character.id] = await sync.get_sync_status(market, character.id)
    found = await orders.list_my_orders(market)
    return render_page(
        request,
        "market_orders.html",
        market.principal,
        renderer=templates,
        characters=linked,
        statuses=statuses,
        orders=found,
        **extra,
    )


@router.post("/market/orders/sync")
async def sync_now(
    request: Request, principal: Trader, session: Session, character: FormField = ""
) -> Response:
    market = _context(request, session, principal)
    try:
        try:
            link_id = uuid.UUID(character)
        except ValueError:
            raise BadRequest("Choose one of your characters.", code="bad_character") from None
        await sync.do_request_sync(market, link_id)
    except AppError as exc:
        return await _orders_page(request, market, **failure_context(exc))
    return see_other("/market/orders")


@router.get("/market/pnl")
async def pnl_page(request: Request, principal: Trader, session: Session, days: str = "30") -> Response:
    market = _context(request, session, principal)
    window = int(days) if days.isdigit() and 1 <= int(days) <= 366 else 30
    report = await pnl.get_pnl(market, days=window)
    chart = json.dumps(
        {
            "days": [point.day.isoformat() for point in report.daily],
            "profit": [float(point.profit) for point in report.daily],
            "cumulative": [float(point.cumulative) for point in report.daily],
        }
    )
    return render_page(
        request, "market_pnl.html", principal, renderer=templates, report=report, chart=chart, days=window
    )


async def _alerts_page(request: Request, market: MarketContext, **extra: Any) -> Response:
    return render_page(
        request,
        "market_alerts.html",
        market.principal,
        renderer=templates,
        rules=await alerts.list_rules(market),
        events=await alerts.list_events(market, limit=50),
        prefs=await alerts.get_prefs(market),
        user_id=market.user_id,
        **extra,
    )


@router.get("/market/alerts")
async def alerts_page(request: Request, principal: Trader, session: Session) -> Response:
    return await _alerts_page(request, _context(request, session, principal))


@router.post("/market/alerts/rules")
async def create_rule(
    request: Request,
    principal: Trader,
    session: Session,
    kind: FormField = "",
    params: FormField = "{}",
    mail: FormField = "",
    push: FormField = "",
) -> Response:
    market = _context(request, session, principal)
    try:
        try:
            parsed = json.loads(params or "{}")
        except ValueError:
            raise BadRequest(
                'Parameters: give a JSON object, e.g. {"hours": 12}.', code="bad_alert_rule"
            ) from None
        channels = ["hub"] + (["mail"] if mail else []) + (["push"] if push else [])
        data = parse_form(AlertRuleIn, kind=kind, params=parsed, channels=channels)
        await alerts.do_create_rule(market, data)
    except AppError as exc:
        return await _alerts_page(
            request, market, form={"kind": kind, "params": params}, **failure_context(exc)
        )
    return see_other("/market/alerts")


@router.post("/market/alerts/rules/{rule_id}/delete")
async def delete_rule(request: Request, rule_id: uuid.UUID, principal: Trader, session: Session) -> Response:
    market = _context(request, session, principal)
    try:
        await alerts.do_delete_rule(market, rule_id)
    except AppError as exc:
        return await _alerts_page(request, market, **failure_context(exc))
    return see_other("/market/alerts")


@router.post("/market/alerts/prefs")
async def set_prefs(
    request: Request,
    principal: Trader,
    session: Session,
    timezone: FormField = "UTC",
    quiet_start: FormField = "",
    quiet_end: FormField = "",
    alerts_per_hour: FormField = "",
    pool_characters_for_pnl: FormField = "",
) -> Response:
    market = _context(request, session, principal)

    def minutes(value: str) -> int | None:
        if not value:
            return None
        hours, _, mins = value.partition(":")
        if not (hours.isdigit() and mins.isdigit()):
            raise BadRequest("Quiet hours: give times as HH:MM.", code="bad_quiet_hours")
        return int(hours) * 60 + int(mins)

    try:
        data = parse_form(
            AlertPrefs,
            timezone=timezone,
            quiet_start=minutes(quiet_start),
            quiet_end=minutes(quiet_end),
            alerts_per_hour=alerts_per_hour or None,
            pool_characters_for_pnl=bool(pool_characters_for_pnl),
        )
        await alerts.do_set_prefs(market, data)
    except AppError as exc:
        return await _alerts_page(request, market, **failure_context(exc))
    return see_other("/market/alerts")
