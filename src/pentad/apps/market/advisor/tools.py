"""The advisor's tools: what a model may ask of the user's market data, each answered by the same analysis
and actions the API uses (never by the model's own knowledge of prices).

A tool is a `ToolSpec`: a name, a description, a JSON schema for its input, and an async handler taking the
caller's `MarketContext` (a read-only transaction of its own) and the parsed input, answering a JSON-able
dict. Bad input or missing data is an answer too (`{"error": ...}`), so the model can say so.

Character tools (`my_orders`, `pnl`) answer from the synced character data (actions/orders.py,
actions/pnl.py), as the API does; with nothing synced they say so."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from pentad.apps.market import repository
from pentad.apps.market.actions import orders, pnl, scans
from pentad.apps.market.actions.context import MarketContext
from pentad.apps.market.analysis.depth import Side, walk_sorted
from pentad.apps.market.exceptions import NoMarketData, UnknownHub
from pentad.apps.market.schemas import HaulingRequest, StationScanRequest
from pentad.core.audit import Actor
from pentad.core.auth.principal import Principal
from pentad.core.context import AppContext

Handler = Callable[[MarketContext, dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    schema: dict[str, Any]
    handler: Handler


@dataclass
class ToolRecord:
    """One tool call of an answer: what was asked and what the data said."""

    name: str
    input: dict[str, Any]
    result: dict[str, Any]


def _obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required or [],
            "additionalProperties": False}  # fmt: skip


SKILLS = {
    "accounting": {"type": "integer", "minimum": 0, "maximum": 5, "description": "Accounting level."},
    "broker_relations": {"type": "integer", "minimum": 0, "maximum": 5},
}
HUB = {"type": "string", "description": "Trade hub key, e.g. jita, amarr, dodixie, rens, hek."}
TYPE = {"type": "string", "description": "Item name (or its start), e.g. Tritanium."}


async def _resolve_type(market: MarketContext, name: str) -> tuple[int, str] | None:
    text = str(name).strip()
    if text.isdigit():
        row = await repository.get_type(market.session, int(text))
        return (row.id, row.name) if row else None
    if len(text) < 2:
        return None
    found = await repository.find_types(market.session, text, limit=1)
    return (found[0].id, found[0].name) if found else None


def _age(captured_at: datetime) -> int:
    moment = captured_at if captured_at.tzinfo else captured_at.replace(tzinfo=UTC)
    return max(0, int((datetime.now(UTC) - moment).total_seconds()))


async def find_type(market: MarketContext, args: dict[str, Any]) -> dict[str, Any]:
    rows = await repository.find_types(market.session, str(args.get("name", "")).strip() or "--", limit=5)
    return {
        "types": [{"type_id": r.id, "name": r.name, "packaged_volume_m3": r.packaged_volume_m3} for r in rows]
    }


async def station_margins(market: MarketContext, args: dict[str, Any]) -> dict[str, Any]:
    request = StationScanRequest(
        accounting=int(args.get("accounting", 0)),
        broker_relations=int(args.get("broker_relations", 0)),
        min_daily_volume=float(args.get("min_daily_volume", 0)),
        limit=max(1, min(int(args.get("limit", 5)), 20)),
    )
    scan = await scans.get_station_scan(market, str(args.get("hub", "jita")), request)
    return {
        "hub": scan.hub, "book_age_seconds": _age(scan.captured_at),
        "broker_fee_rate": str(scan.rates.broker), "sales_tax_rate": str(scan.rates.sales_tax),
        "trades": [
            {"type": t.type_name, "buy_order_at_isk": str(t.buy_price),
             "sell_order_at_isk": str(t.sell_price),
             "units_per_day": str(t.units_per_day), "daily_profit_isk": str(t.daily_profit),
             "margin": str(t.margin), "daily_volume": str(t.daily_volume)}
            for t in scan.trades
        ],
    }  # fmt: skip


async def hauling_routes(market: MarketContext, args: dict[str, Any]) -> dict[str, Any]:
    request = HaulingRequest(
        hubs=[str(h) for h in args.get("hubs", [])],
        preference=args.get("preference", "secure"),
        cargo_m3=float(args.get("cargo_m3", 60_000)),
        collateral=Decimal(str(args.get("collateral_isk", 1_000_000_000))),
        accounting=int(args.get("accounting", 0)),
        limit=max(1, min(int(args.get("limit", 5)), 20)),
    )
    found = await scans.get_hauls(market, request)
    return {
        "preference": found.preference, "book_age_seconds": {k: _age(v) for k, v in found.books.items()},
        "hauls": [
            {"type": h.type_name, "from": h.source, "to": h.destination, "jumps": h.jumps, "units": h.units,
             "cost_isk": str(h.cost), "profit_isk": str(h.profit),
             "profit_per_jump_isk": str(h.profit_per_jump),
             "limited_by": h.limited_by}
            for h in found.hauls
        ],
    }  # fmt: skip


async def execution_price(market: MarketContext, args: dict[str, Any]) -> dict[str, Any]:
    hub = scans.check_hub(market, str(args.get("hub", "jita")))
    found = await _resolve_type(market, str(args.get("type", "")))
    if found is None:
        return {"error": f"no tradeable item named {args.get('type')!r}"}
    quantity = int(args.get("quantity", 1))
    if quantity < 1 or quantity > 10**12:
        return {"error": "quantity must be at least 1"}
    side: Side = "sell" if args.get("side") == "sell" else "buy"
    book = await repository.type_book(market.session, hub.region_id, hub.station_id, found[0])
    if book is None:
        raise NoMarketData(hub.key)
    captured_at, asks, bids = book
    fill = walk_sorted(asks if side == "buy" else bids, quantity, side)
    return {
        "hub": hub.key, "type": found[1], "side": side, "requested": quantity, "filled": fill.filled,
        "total_isk": str(fill.cost), "average_price_isk": str(fill.average) if fill.average else None,
        "worst_price_isk": str(fill.marginal) if fill.marginal else None,
        "orders_taken": fill.orders_consumed, "book_age_seconds": _age(captured_at),
    }  # fmt: skip


async def price_history(market: MarketContext, args: dict[str, Any]) -> dict[str, Any]:
    hub = scans.check_hub(market, str(args.get("hub", "jita")))
    found = await _resolve_type(market, str(args.get("type", "")))
    if found is None:
        return {"error": f"no tradeable item named {args.get('type')!r}"}
    days = max(1, min(int(args.get("days", 30)), 365))
    rows = await repository.price_history(
        market.session, hub.region_id, found[0], date.today() - timedelta(days=days)
    )
    return {
        "region_of_hub": hub.key, "type": found[1],
        "days": [{"date": r.date.isoformat(), "average_isk": str(r.average), "highest_isk": str(r.highest),
                  "lowest_isk": str(r.lowest), "volume": r.volume} for r in rows],
    }  # fmt: skip


async def my_orders(market: MarketContext, args: dict[str, Any]) -> dict[str, Any]:
    """The user's open orders, undercut ones first (actions/orders.py, the API's own answer)."""
    found = await orders.list_my_orders(market, limit=200)
    if not found:
        return {"available": False, "reason": "No linked character has synced orders yet."}
    found.sort(key=lambda o: (not o.undercut, o.expires_at))
    return {
        "open_orders": len(found),
        "undercut": sum(o.undercut for o in found),
        "orders": [
            {"type": o.type_name, "side": "buy" if o.is_buy else "sell", "price_isk": str(o.price),
             "best_competitor_isk": str(o.best_competitor) if o.best_competitor is not None else None,
             "undercut": o.undercut, "filled": round(o.filled, 3), "remaining": o.volume_remain,
             "expires_at": o.expires_at.isoformat(), "expiring": o.expiring}
            for o in found[:20]
        ],
    }  # fmt: skip


async def profit_and_loss(market: MarketContext, args: dict[str, Any]) -> dict[str, Any]:
    """Realised P&L per item over `days` (FIFO, actions/pnl.py, the API's own answer)."""
    days = max(1, min(int(args.get("days", 30)), 365))
    report = await pnl.get_pnl(market, days=days)
    if not report.items:
        return {"available": False, "reason": f"No sales recorded in the last {days} days."}
    items = sorted(report.items, key=lambda item: item.profit, reverse=True)
    return {
        "since": report.since.isoformat(), "until": report.until.isoformat(),
        "total_profit_isk": str(report.total.profit), "total_proceeds_isk": str(report.total.proceeds),
        "open_lots_cost_isk": str(report.open_lots_value),
        "items": [
            {"type": item.type_name, "sold": item.quantity_sold, "profit_isk": str(item.profit),
             "proceeds_isk": str(item.proceeds), "cost_isk": str(item.cost),
             "fees_and_tax_isk": str(item.sales_tax + item.broker_fees)}
            for item in items[:20]
        ],
    }  # fmt: skip


TOOLS: dict[str, ToolSpec] = {
    spec.name: spec
    for spec in (
        ToolSpec("find_type", "Find item types by the start of their name.",
                 _obj({"name": TYPE}, ["name"]), find_type),
        ToolSpec("station_margins",
                 "Best station trades at a hub now: where to place buy and sell orders and the expected "
                 "daily "
                 "profit after fees for the trader's skills.",
                 _obj({"hub": HUB, **SKILLS, "min_daily_volume": {"type": "number", "minimum": 0},
                       "limit": {"type": "integer", "minimum": 1, "maximum": 20}}, ["hub"]), station_margins),
        ToolSpec("hauling_routes",
                 "Best hauls between trade hubs now: units, cost, profit and profit per jump.",
                 _obj({"hubs": {"type": "array", "items": HUB},
                       "preference": {"type": "string", "enum": ["shortest", "secure", "safer"]},
                       "cargo_m3": {"type": "number", "exclusiveMinimum": 0},
                       "collateral_isk": {"type": "number", "minimum": 0}, "accounting": SKILLS["accounting"],
                       "limit": {"type": "integer", "minimum": 1, "maximum": 20}}), hauling_routes),
        ToolSpec("execution_price",
                 "What buying (taking sell orders) or selling (into buy orders) a quantity at a hub costs or "
                 "yields, walking the order book.",
                 _obj({"hub": HUB, "type": TYPE, "quantity": {"type": "integer", "minimum": 1},
                       "side": {"type": "string", "enum": ["buy", "sell"]}}, ["hub", "type", "quantity"]),
                 execution_price),
        ToolSpec("price_history", "Daily average, high, low and volume of an item in a hub's region.",
                 _obj({"hub": HUB, "type": TYPE, "days": {"type": "integer", "minimum": 1, "maximum": 365}},
                      ["hub", "type"]), price_history),
        ToolSpec("my_orders", "The user's characters' open market orders (undercut, expiry, fill progress).",
                 _obj({}), my_orders),
        ToolSpec("pnl", "The user's realised profit and loss per item (FIFO cost basis).",
                 _obj({"days": {"type": "integer", "minimum": 1, "maximum": 365}}), profit_and_loss),
    )
}  # fmt: skip


def register(spec: ToolSpec) -> None:
    """Add or replace a tool (the character-data part fills `my_orders` and `pnl` with its functions)."""
    TOOLS[spec.name] = spec


@dataclass
class ToolBox:
    """The tools as one user's answer calls them, each in a read-only transaction of its own; every call
    and its result are recorded (the grounding check and the stored message read them)."""

    platform: AppContext
    principal: Principal
    actor: Actor
    records: list[ToolRecord] = field(default_factory=list)

    @property
    def specs(self) -> list[ToolSpec]:
        return list(TOOLS.values())

    async def call(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        spec = TOOLS.get(name)
        if spec is None:
            result: dict[str, Any] = {"error": f"there is no tool {name!r}"}
        elif not isinstance(args, dict):
            result = {"error": "the tool input must be an object"}
        else:
            try:
                async with self.platform.database.transaction(writes=False) as session:
                    market = MarketContext(session, self.platform, self.principal, self.actor)
                    result = await spec.handler(market, args)
            except (UnknownHub, NoMarketData) as error:
                result = {"error": error.message}
            except (ValueError, TypeError) as error:
                result = {"error": f"bad input: {str(error)[:200]}"}
        self.records.append(ToolRecord(name, args if isinstance(args, dict) else {}, result))
        return result

    @staticmethod
    def encode(result: dict[str, Any]) -> str:
        return json.dumps(result, default=str, separators=(",", ":"))
