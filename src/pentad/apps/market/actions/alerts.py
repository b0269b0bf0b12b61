"""Alerts: a user's rules, evaluating them, and what fired.

Rules (`market_alert_rules`, at most MAX_RULES a user), by kind and `params`:

- `undercut {characters?: [link ids], types?: [type ids]}`: one of my open orders has a better price
  ahead of it at its station (actions/orders.py decides).
- `expiring {hours?}`: one of my open orders expires within `hours` (default EXPIRY_WARNING_HOURS).
- `price_cross {hub, type_id, side: sell|buy, direction: above|below, price}`: the hub's best ask (sell)
  or bid (buy) of the type is above/below `price`.
- `margin {hub, types: [type ids], min_margin, character?}`: buying at the hub's best bid and selling at
  its best ask leaves at least `min_margin` (0.1 = 10 %) after broker fees and sales tax — the character's
  own rates (its synced skills and standings) when `character` is given, else the base rates.

Evaluation computes the (subject, state) pairs that hold now for each rule and stores the new ones in
`market_alert_events` (unique per rule, subject and state): a new row is a firing; a pair that stopped
holding is deleted, which re-arms the rule for that subject. So one condition alerts once, not at every
ingest. Order rules are evaluated in a character sync's own transaction (ingest/character.py AFTER_SYNC);
right after a region's new book is committed (the `market.snapshot_stored` event, alert_tasks.py), the hub
rules of that region's hubs and the undercut/expiring rules of characters with open orders in the region
are evaluated on it; a new or changed hub rule is evaluated at once (`market.evaluate_hub_alerts`).
A firing publishes `alert.fired` on `market.user.{id}` (after the commit) and, for its mail and push
channels, queues `market.deliver_alert` (alert_tasks.py: quiet hours, hourly limit with a digest, mail,
Web Push). A rule's `cooldown` keeps it from firing again within that many seconds of its last firing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy import delete, func, select

from pentad.apps.market.actions.characters import OK, _user
from pentad.apps.market.actions.context import MarketContext
from pentad.apps.market.actions.orders import list_my_orders
from pentad.apps.market.actions.sync import character_fee_rates
from pentad.apps.market.analysis.fees import FeeBases, FeeSkills, fee_rates
from pentad.apps.market.exceptions import AlertRuleNotFound, BadAlertRule
from pentad.apps.market.ingest.character import rebuild_user_pool
from pentad.apps.market.models import (
    BOOK_STATS,
    MarketAlertEvent,
    MarketAlertRule,
    MarketCharacter,
    MarketCharOrder,
    MarketRegionState,
    MarketType,
    MarketUserPrefs,
)
from pentad.apps.market.settings import MarketSettings
from pentad.apps.market.topics import AlertFired, user_topic
from pentad.apps.market.trader_schemas import (
    AlertEventRead,
    AlertPrefs,
    AlertRuleIn,
    AlertRulePatch,
    AlertRuleRead,
    MyOrderRead,
)
from pentad.core.db.base import utcnow, uuid7
from pentad.core.db.partitions import insert_target
from pentad.core.jobs.queue import enqueue
from pentad.core.realtime.publish import publish

MAX_RULES = 50
MAX_TYPES = 50
DELIVER = "market.deliver_alert"
EVALUATE_HUB = "market.evaluate_hub_alerts"
ORDER_KINDS = ("undercut", "expiring")
HUB_KINDS = ("price_cross", "margin")


# rules -------------------------------------------------------------------------------------------------


def _int_list(value: Any, name: str, *, limit: int = MAX_TYPES) -> list[int]:
    if not isinstance(value, list) or len(value) > limit:
        raise BadAlertRule(f"{name} must be a list of at most {limit} ids.")
    try:
        found = [int(v) for v in value]
    except (TypeError, ValueError):
        raise BadAlertRule(f"{name} must hold ids (integers).") from None
    if any(v < 1 or v > 2**63 - 1 for v in found) or any(isinstance(v, bool) for v in value):
        raise BadAlertRule(f"{name} must hold positive ids.")
    return found


def _price(value: Any, name: str) -> str:
    try:
        price = Decimal(str(value))
    except InvalidOperation:
        raise BadAlertRule(f"{name} must be a number.") from None
    if isinstance(value, bool) or not price.is_finite() or not Decimal(0) < price < Decimal("1e15"):
        raise BadAlertRule(f"{name} must be a positive number of ISK below 1e15.")
    return str(price.quantize(Decimal("0.01")))


async def check_params(market: MarketContext, kind: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The rule's params, checked and normalised (unknown keys refused) — BadAlertRule (400) otherwise."""
    allowed = {
        "undercut": {"characters", "types"},
        "expiring": {"hours"},
        "price_cross": {"hub", "type_id", "side", "direction", "price"},
        "margin": {"hub", "types", "min_margin", "character"},
    }[kind]
    unknown = set(params) - allowed
    if unknown:
        raise BadAlertRule(f"Unknown parameter(s) for a {kind} rule: {', '.join(sorted(unknown))}.")
    out: dict[str, Any] = {}
    settings = market.settings
    if kind == "undercut":
        if "characters" in params:
            links = params["characters"]
            if not isinstance(links, list) or len(links) > 20:
                raise BadAlertRule("characters must be a list of your character link ids.")
            try:
                ids = [uuid.UUID(str(v)) for v in links]
            except ValueError:
                raise BadAlertRule("characters must be a list of your character link ids.") from None
            owned = set(
                await market.session.scalars(
                    select(MarketCharacter.id).where(
                        MarketCharacter.user_id == _user(market), MarketCharacter.id.in_(ids)
                    )
                )
            )
            if owned != set(ids):
                raise BadAlertRule("characters must be a list of your character link ids.")
            out["characters"] = [str(v) for v in ids]
        if "types" in params:
            out["types"] = _int_list(params["types"], "types")
    elif kind == "expiring":
        hours = params.get("hours", settings.expiry_warning_hours)
        if isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= 24 * 90:
            raise BadAlertRule("hours must be a whole number of hours from 1 to 2160.")
        out["hours"] = hours
    else:
        hub = params.get("hub")
        if not isinstance(hub, str) or settings.hub(hub) is None:
            keys = ", ".join(h.key for h in settings.hub_list)
            raise BadAlertRule(f"hub must be one of the trade hubs: {keys}.")
        out["hub"] = hub
        if kind == "price_cross":
            (type_id,) = _int_list([params.get("type_id")], "type_id") if params.get("type_id") else [0]
            if not type_id:
                raise BadAlertRule("type_id is required.")
            if params.get("side") not in ("sell", "buy"):
                raise BadAlertRule("side must be sell (best ask) or buy (best bid).")
            if params.get("direction") not in ("above", "below"):
                raise BadAlertRule("direction must be above or below.")
            out.update(
                type_id=type_id,
                side=params["side"],
                direction=params["direction"],
                price=_price(params.get("price"), "price"),
            )
        else:
            types = _int_list(params.get("types"), "types")
            if not types:
                raise BadAlertRule("types must name at least one item type.")
            margin = params.get("min_margin")
            if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 < margin <= 100:
                raise BadAlertRule("min_margin must be a fraction above 0 (0.1 = 10 %).")
            out.update(types=types, min_margin=float(margin))
            if params.get("character") is not None:
                try:
                    link = uuid.UUID(str(params["character"]))
                except ValueError:
                    raise BadAlertRule("character must be one of your character link ids.") from None
                owned_link = await market.session.scalar(
                    select(MarketCharacter.id).where(
                        MarketCharacter.id == link, MarketCharacter.user_id == _user(market)
                    )
                )
                if owned_link is None:
                    raise BadAlertRule("character must be one of your character link ids.")
                out["character"] = str(link)
    return out


def rule_read(rule: MarketAlertRule) -> AlertRuleRead:
    return AlertRuleRead(
        id=rule.id,
        kind=rule.kind,
        params=dict(rule.params or {}),
        channels=list(rule.channels or []),
        enabled=rule.enabled,
        cooldown=rule.cooldown,
        created_at=rule.created_at,
    )


async def list_rules(market: MarketContext) -> list[AlertRuleRead]:
    rules = await market.session.scalars(
        select(MarketAlertRule)
        .where(MarketAlertRule.user_id == _user(market))
        .order_by(MarketAlertRule.created_at)
    )
    return [rule_read(rule) for rule in rules]


async def _own_rule(market: MarketContext, rule_id: uuid.UUID) -> MarketAlertRule:
    rule = await market.session.scalar(
        select(MarketAlertRule).where(MarketAlertRule.id == rule_id, MarketAlertRule.user_id == _user(market))
    )
    if rule is None:
        raise AlertRuleNotFound()
    return rule


async def do_create_rule(market: MarketContext, data: AlertRuleIn) -> AlertRuleRead:
    user_id = _user(market)
    count = await market.session.scalar(
        select(func.count()).select_from(MarketAlertRule).where(MarketAlertRule.user_id == user_id)
    )
    if (count or 0) >= MAX_RULES:
        raise BadAlertRule(f"You have {MAX_RULES} alert rules already; delete one first.")
    params = await check_params(market, data.kind, data.params)
    rule = MarketAlertRule(
        id=uuid7(),
        user_id=user_id,
        kind=data.kind,
        params=params,
        channels=sorted(set(data.channels)),
        enabled=data.enabled,
        cooldown=data.cooldown,
    )
    market.session.add(rule)
    await market.session.flush()
    await _evaluate_soon(market, rule)
    return rule_read(rule)


async def _evaluate_soon(market: MarketContext, rule: MarketAlertRule) -> None:
    """A hub rule is evaluated on the current book right after its transaction commits (a condition that
    holds already need not wait for the next snapshot)."""
    if rule.kind not in HUB_KINDS or not rule.enabled:
        return
    hub = market.settings.hub(str((rule.params or {}).get("hub")))
    if hub is not None:
        payload = {"region_id": hub.region_id}
        await enqueue(market.session, EVALUATE_HUB, payload, dedupe_key=f"{EVALUATE_HUB}:{hub.region_id}")


async def do_update_rule(market: MarketContext, rule_id: uuid.UUID, data: AlertRulePatch) -> AlertRuleRead:
    rule = await _own_rule(market, rule_id)
    if data.params is not None:
        rule.params = await check_params(market, rule.kind, data.params)
        # New conditions: what held under the old ones is forgotten (and may fire again).
        await market.session.execute(delete(MarketAlertEvent).where(MarketAlertEvent.rule_id == rule.id))
    if data.channels is not None:
        rule.channels = sorted(set(data.channels))
    if data.enabled is not None:
        rule.enabled = data.enabled
    if data.cooldown is not None:
        rule.cooldown = data.cooldown
    await market.session.flush()
    await _evaluate_soon(market, rule)
    return rule_read(rule)


async def do_delete_rule(market: MarketContext, rule_id: uuid.UUID) -> None:
    rule = await _own_rule(market, rule_id)
    await market.session.execute(delete(MarketAlertEvent).where(MarketAlertEvent.rule_id == rule.id))
    await market.session.delete(rule)
    await market.session.flush()


async def list_events(market: MarketContext, *, limit: int = 100) -> list[AlertEventRead]:
    rows = await market.session.execute(
        select(MarketAlertEvent, MarketAlertRule.kind)
        .join(MarketAlertRule, MarketAlertRule.id == MarketAlertEvent.rule_id)
        .where(MarketAlertEvent.user_id == _user(market))
        .order_by(MarketAlertEvent.fired_at.desc())
        .limit(limit)
    )
    return [
        AlertEventRead(
            id=e.id,
            rule_id=e.rule_id,
            kind=kind,
            subject=e.subject_key,
            fired_at=e.fired_at,
            detail=e.detail,
            delivered=e.delivered,
        )
        for e, kind in rows
    ]


# preferences -------------------------------------------------------------------------------------------


def prefs_read(prefs: MarketUserPrefs | None) -> AlertPrefs:
    if prefs is None:
        return AlertPrefs()
    return AlertPrefs(
        timezone=prefs.timezone,
        quiet_start=prefs.quiet_start,
        quiet_end=prefs.quiet_end,
        alerts_per_hour=prefs.alerts_per_hour,
        pool_characters_for_pnl=prefs.pool_characters_for_pnl,
    )


async def get_prefs(market: MarketContext) -> AlertPrefs:
    return prefs_read(await market.session.get(MarketUserPrefs, _user(market)))


async def do_set_prefs(market: MarketContext, data: AlertPrefs) -> AlertPrefs:
    if data.timezone not in available_timezones():
        raise BadAlertRule(
            "timezone must be an IANA time zone name, e.g. Europe/Berlin.", code="bad_timezone"
        )
    if (data.quiet_start is None) != (data.quiet_end is None):
        raise BadAlertRule("quiet_start and quiet_end go together.", code="bad_quiet_hours")
    user_id = _user(market)
    prefs = await market.session.get(MarketUserPrefs, user_id)
    if prefs is None:
        prefs = MarketUserPrefs(user_id=user_id)
        market.session.add(prefs)
    prefs.timezone = data.timezone
    prefs.quiet_start = data.quiet_start
    prefs.quiet_end = data.quiet_end
    prefs.alerts_per_hour = data.alerts_per_hour
    pooling = data.pool_characters_for_pnl and not prefs.pool_characters_for_pnl
    prefs.pool_characters_for_pnl = data.pool_characters_for_pnl
    await market.session.flush()
    if pooling:
        await rebuild_user_pool(market.session, user_id)
        await market.session.flush()
    return prefs_read(prefs)


def quiet_left(prefs: MarketUserPrefs | None, now_utc: datetime) -> float:
    """Seconds until the user's quiet hours end (0: not in quiet hours)."""
    if prefs is None or prefs.quiet_start is None or prefs.quiet_end is None:
        return 0.0
    try:
        zone = ZoneInfo(prefs.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = now_utc.astimezone(zone)
    minute = local.hour * 60 + local.minute
    start, end = prefs.quiet_start, prefs.quiet_end
    inside = start <= minute < end if start <= end else (minute >= start or minute < end)
    if not inside or start == end:
        return 0.0
    minutes = (end - minute) % 1440
    return max(float(minutes * 60 - local.second), 1.0)


# evaluation --------------------------------------------------------------------------------------------


Holding = dict[str, tuple[str, dict[str, Any]]]
"""subject → (state, detail) for the pairs that hold now."""


async def apply(
    market: MarketContext, rule: MarketAlertRule, holding: Holding, *, scope_prefix: str | None = None
) -> list[MarketAlertEvent]:
    """Store the pairs that hold now for `rule` (new ones fire), delete those that stopped holding (within
    `scope_prefix` when only part of the rule's subjects were evaluated)."""
    session = market.session
    query = select(MarketAlertEvent).where(MarketAlertEvent.rule_id == rule.id)
    existing = list(await session.scalars(query))
    current = {(e.subject_key, e.state): e for e in existing}
    for event in existing:
        in_scope = scope_prefix is None or event.subject_key.startswith(scope_prefix)
        held = holding.get(event.subject_key)
        if in_scope and (held is None or held[0] != event.state):
            await session.delete(event)
    now = utcnow()
    last_fired = max((e.fired_at for e in existing), default=None)
    fired: list[MarketAlertEvent] = []
    for subject, (state, detail) in holding.items():
        if (subject, state) in current:
            continue
        if rule.cooldown and last_fired is not None and now - last_fired < timedelta(seconds=rule.cooldown):
            continue
        event = MarketAlertEvent(
            id=uuid7(),
            rule_id=rule.id,
            user_id=rule.user_id,
            subject_key=subject[:200],
            state=state,
            fired_at=now,
            detail=detail,
            delivered={},
        )
        session.add(event)
        fired.append(event)
    await session.flush()
    for event in fired:
        notify_alert_fired(market, rule, event)
        if set(rule.channels or []) & {"mail", "push"}:
            await enqueue(session, DELIVER, {"event": str(event.id)}, dedupe_key=f"{DELIVER}:{event.id}")
    return fired


def alert_title(kind: str, detail: Mapping[str, Any]) -> str:
    name = detail.get("type_name") or f"type {detail.get('type_id')}"
    if kind == "undercut":
        side = "outbid" if detail.get("is_buy") else "undercut"
        return f"{name}: your order at {detail.get('price')} is {side} (best {detail.get('best_competitor')})"
    if kind == "expiring":
        return f"{name}: your order at {detail.get('price')} expires {detail.get('expires_at')}"
    if kind == "price_cross":
        return (
            f"{name} at {detail.get('hub')}: best {'ask' if detail.get('side') == 'sell' else 'bid'} "
            f"{detail.get('value')} is {detail.get('direction')} {detail.get('price')}"
        )
    return (
        f"{name} at {detail.get('hub')}: margin {detail.get('margin')} "
        f"(bid {detail.get('bid')}, ask {detail.get('ask')})"
    )


def notify_alert_fired(market: MarketContext, rule: MarketAlertRule, event: MarketAlertEvent) -> None:
    detail = dict(event.detail or {})
    publish(
        market.session,
        user_topic(rule.user_id),
        AlertFired(
            id=event.id,
            rule_id=rule.id,
            kind=rule.kind,
            subject=event.subject_key,
            title=alert_title(rule.kind, detail),
            detail=detail,
            fired_at=event.fired_at,
        ),
    )


def _order_detail(order: MyOrderRead) -> dict[str, Any]:
    return {
        "character": str(order.character),
        "order_id": order.order_id,
        "type_id": order.type_id,
        "type_name": order.type_name,
        "location_id": order.location_id,
        "is_buy": order.is_buy,
        "price": str(order.price),
        "best_competitor": str(order.best_competitor) if order.best_competitor else None,
        "beaten_since_update": order.beaten_since_update,
        "expires_at": order.expires_at.isoformat(),
        "book_captured_at": order.book_captured_at.isoformat() if order.book_captured_at else None,
    }


async def evaluate_order_rules(market: MarketContext, character: MarketCharacter) -> int:
    """After `character`'s sync: the undercut and expiring rules of every user it is linked to, over that
    character's orders (subjects `order:<character id>:<order id>`)."""
    links = list(
        await market.session.scalars(
            select(MarketCharacter).where(
                MarketCharacter.character_id == character.character_id, MarketCharacter.status == OK
            )
        )
    )
    fired = 0
    for link in links:
        rules = list(
            await market.session.scalars(
                select(MarketAlertRule).where(
                    MarketAlertRule.user_id == link.user_id,
                    MarketAlertRule.enabled.is_(True),
                    MarketAlertRule.kind.in_(ORDER_KINDS),
                )
            )
        )
        if not rules:
            continue
        orders = await list_my_orders(market, link.id, user_id=link.user_id, limit=1000)
        now = utcnow()
        prefix = f"order:{character.character_id}:"
        for rule in rules:
            params = rule.params or {}
            holding: Holding = {}
            if (
                rule.kind == "undercut"
                and "characters" in params
                and str(link.id) not in params["characters"]
            ):
                continue
            for order in orders:
                if order.state != "open":
                    continue
                if "types" in params and order.type_id not in params["types"]:
                    continue
                subject = f"{prefix}{order.order_id}"
                if rule.kind == "undercut" and order.undercut:
                    holding[subject] = ("undercut", _order_detail(order))
                elif rule.kind == "expiring":
                    hours = int(params.get("hours", market.settings.expiry_warning_hours))
                    if order.expires_at - now <= timedelta(hours=hours):
                        holding[subject] = ("expiring", _order_detail(order))
            fired += len(await apply(market, rule, holding, scope_prefix=prefix))
    return fired


async def _hub_stats(
    market: MarketContext, region_id: int, station_id: int, type_ids: Iterable[int]
) -> tuple[Any, dict[int, tuple[Decimal | None, Decimal | None]]]:
    """(captured_at, type → (best bid, best ask)) of the hub's current snapshot."""
    state = await market.session.get(MarketRegionState, region_id)
    if state is None or state.current_snapshot_id is None or state.captured_at is None:
        return None, {}
    connection = await market.session.connection()
    table = insert_target(BOOK_STATS, connection.dialect.name, state.captured_at)
    rows = await market.session.execute(
        select(table.c.type_id, table.c.best_bid, table.c.best_ask).where(
            table.c.captured_at == state.captured_at,
            table.c.snapshot_id == state.current_snapshot_id,
            table.c.location_id == station_id,
            table.c.type_id.in_(sorted(set(type_ids))),
        )
    )
    return state.captured_at, {int(t): (bid, ask) for t, bid, ask in rows}


async def evaluate_region_order_rules(market: MarketContext, region_id: int) -> int:
    """After a region's new book: the order rules of every linked character with open orders in the
    region (an order is undercut by the book, not only by the character's own sync)."""
    character_ids = set(
        await market.session.scalars(
            select(MarketCharOrder.character_id)
            .where(MarketCharOrder.region_id == region_id, MarketCharOrder.state == "open")
            .distinct()
        )
    )
    fired = 0
    for character_id in sorted(character_ids):
        link = await market.session.scalar(
            select(MarketCharacter)
            .where(MarketCharacter.character_id == character_id, MarketCharacter.status == OK)
            .limit(1)
        )
        if link is not None:
            fired += await evaluate_order_rules(market, link)
    return fired


async def evaluate_hub_rules(market: MarketContext, region_id: int | None = None) -> int:
    """Every enabled price_cross and margin rule against its hub's current book (only the hubs in
    `region_id` when given)."""
    settings: MarketSettings = market.settings
    rules = [
        rule
        for rule in await market.session.scalars(
            select(MarketAlertRule).where(
                MarketAlertRule.enabled.is_(True), MarketAlertRule.kind.in_(HUB_KINDS)
            )
        )
        if region_id is None
        or (
            (hub := settings.hub(str((rule.params or {}).get("hub")))) is not None
            and hub.region_id == region_id
        )
    ]
    wanted: dict[str, set[int]] = {}
    for rule in rules:
        params = rule.params or {}
        types = [params["type_id"]] if rule.kind == "price_cross" else list(params.get("types", []))
        wanted.setdefault(str(params.get("hub")), set()).update(int(t) for t in types)
    books: dict[str, tuple[Any, dict[int, tuple[Decimal | None, Decimal | None]]]] = {}
    for key, hub_types in wanted.items():
        hub = settings.hub(key)
        if hub is not None:
            books[key] = await _hub_stats(market, hub.region_id, hub.station_id, hub_types)
    all_types = {t for types in wanted.values() for t in types}
    names = (
        dict(
            (
                await market.session.execute(
                    select(MarketType.id, MarketType.name).where(MarketType.id.in_(all_types))
                )
            ).all()
        )
        if all_types
        else {}
    )
    bases = FeeBases.from_settings(settings)
    fired = 0
    for rule in rules:
        params = rule.params or {}
        hub_key = str(params.get("hub"))
        captured_at, stats = books.get(hub_key, (None, {}))
        if captured_at is None:
            continue  # no book yet: nothing is known, nothing changes
        base = {"hub": hub_key, "book_captured_at": captured_at.isoformat()}
        holding: Holding = {}
        if rule.kind == "price_cross":
            type_id = int(params["type_id"])
            bid, ask = stats.get(type_id, (None, None))
            value = ask if params["side"] == "sell" else bid
            price = Decimal(str(params["price"]))
            if value is not None and (value > price if params["direction"] == "above" else value < price):
                holding[f"price:{hub_key}:{type_id}:{params['side']}"] = (
                    str(params["direction"]),
                    {
                        **base,
                        "type_id": type_id,
                        "type_name": names.get(type_id),
                        "side": params["side"],
                        "direction": params["direction"],
                        "price": str(price),
                        "value": str(value),
                    },
                )
        else:
            hub = settings.hub(hub_key)
            if params.get("character") and hub is not None:
                owner = await market.session.get(MarketCharacter, uuid.UUID(str(params["character"])))
                if owner is None:
                    continue
                rates, _synced = await character_fee_rates(market, owner.character_id, hub.station_id)
            else:
                rates = fee_rates(FeeSkills(), bases=bases)
            for type_id in params.get("types", []):
                bid, ask = stats.get(int(type_id), (None, None))
                if bid is None or ask is None or bid <= 0:
                    continue
                spend = bid * (1 + rates.broker)
                margin = (ask * (1 - rates.broker - rates.sales_tax) - spend) / spend
                if margin >= Decimal(str(params["min_margin"])):
                    holding[f"margin:{hub_key}:{type_id}"] = (
                        "open",
                        {
                            **base,
                            "type_id": int(type_id),
                            "type_name": names.get(int(type_id)),
                            "bid": str(bid),
                            "ask": str(ask),
                            "margin": str(margin.quantize(Decimal("0.0001"))),
                            "broker_rate": str(rates.broker),
                            "sales_tax_rate": str(rates.sales_tax),
                        },
                    )
        fired += len(await apply(market, rule, holding))
    return fired
