"""Wallet profit and loss of the caller's characters: realised trades (FIFO cost basis, sales tax from the
journal, rebuilt at each sync by ingest/character.py) per item and per day, broker fees from the journal
(attributed to an item when the fee's context names one of the character's orders), and the cost of the
units still held."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import select

from pentad.apps.market.actions.context import MarketContext
from pentad.apps.market.actions.orders import own_characters
from pentad.apps.market.ingest.character import user_pool
from pentad.apps.market.models import (
    MarketCharOrder,
    MarketFifoLot,
    MarketRealized,
    MarketType,
    MarketUserPrefs,
    MarketWalletJournal,
)
from pentad.apps.market.trader_schemas import PnlItem, PnlPoint, PnlRead

ZERO = Decimal("0.00")
BROKER_REF = "brokers_fee"


def _item(type_id: int, name: str | None) -> PnlItem:
    return PnlItem(
        type_id=type_id,
        type_name=name,
        quantity_sold=0,
        unknown_cost_quantity=0,
        proceeds=ZERO,
        cost=ZERO,
        sales_tax=ZERO,
        broker_fees=ZERO,
        profit=ZERO,
    )


async def get_pnl(
    market: MarketContext,
    link_id: uuid.UUID | None = None,
    *,
    days: int = 30,
    type_id: int | None = None,
    until: date | None = None,
) -> PnlRead:
    """P&L of the caller's characters (or one) over the `days` days ending `until` (today, UTC)."""
    characters = await own_characters(market, link_id)
    ids = [c.character_id for c in characters]
    last = until or datetime.now(UTC).date()
    first = last - timedelta(days=days - 1)
    start = datetime.combine(first, time(), tzinfo=UTC)
    end = datetime.combine(last + timedelta(days=1), time(), tzinfo=UTC)
    items: dict[int, PnlItem] = {}
    daily: dict[date, Decimal] = defaultdict(lambda: ZERO)
    unattributed = ZERO
    open_value = ZERO
    if ids:
        pools = [str(i) for i in ids]
        prefs = await market.session.get(MarketUserPrefs, characters[0].user_id)
        if prefs is not None and prefs.pool_characters_for_pnl:
            pools = [user_pool(characters[0].user_id)]  # one FIFO over all the user's characters
        query = select(MarketRealized).where(
            MarketRealized.pool.in_(pools),
            MarketRealized.character_id.in_(ids),
            MarketRealized.date >= start,
            MarketRealized.date < end,
        )
        if type_id is not None:
            query = query.where(MarketRealized.type_id == type_id)
        for row in await market.session.scalars(query):
            item = items.setdefault(row.type_id, _item(row.type_id, None))
            item.quantity_sold += row.quantity
            item.unknown_cost_quantity += row.unknown_quantity
            item.proceeds += row.proceeds
            item.cost += row.cost
            item.sales_tax += row.tax
            daily[row.date.date()] += row.proceeds - row.cost - row.tax
        fees = await market.session.execute(
            select(
                MarketWalletJournal.date,
                MarketWalletJournal.amount,
                MarketWalletJournal.context_id,
                MarketWalletJournal.context_id_type,
                MarketWalletJournal.character_id,
            ).where(
                MarketWalletJournal.character_id.in_(ids),
                MarketWalletJournal.ref_type == BROKER_REF,
                MarketWalletJournal.date >= start,
                MarketWalletJournal.date < end,
            )
        )
        fee_rows = fees.all()
        order_ids = {int(r[2]) for r in fee_rows if r[2] is not None and r[3] == "market_order_id"}
        order_types = (
            dict(
                (
                    await market.session.execute(
                        select(MarketCharOrder.order_id, MarketCharOrder.type_id).where(
                            MarketCharOrder.character_id.in_(ids), MarketCharOrder.order_id.in_(order_ids)
                        )
                    )
                ).all()
            )
            if order_ids
            else {}
        )
        for moment, amount, context_id, context_type, _character in fee_rows:
            fee = abs(amount or ZERO)
            owner = (
                order_types.get(int(context_id)) if context_type == "market_order_id" and context_id else None
            )
            if owner is None:
                if type_id is None:
                    unattributed += fee
                    daily[moment.date()] -= fee
                continue
            if type_id is not None and owner != type_id:
                continue
            items.setdefault(owner, _item(owner, None)).broker_fees += fee
            daily[moment.date()] -= fee
        lots = select(MarketFifoLot.quantity_left, MarketFifoLot.unit_cost).where(
            MarketFifoLot.pool.in_(pools), MarketFifoLot.character_id.in_(ids)
        )
        if type_id is not None:
            lots = lots.where(MarketFifoLot.type_id == type_id)
        for quantity, unit_cost in await market.session.execute(lots):
            open_value += Decimal(unit_cost) * quantity
    if items:
        names = dict(
            (
                await market.session.execute(
                    select(MarketType.id, MarketType.name).where(MarketType.id.in_(list(items)))
                )
            ).all()
        )
        for item in items.values():
            item.type_name = names.get(item.type_id)
            item.profit = item.proceeds - item.cost - item.sales_tax - item.broker_fees
    total = _item(0, None)
    for item in items.values():
        for name in (
            "quantity_sold",
            "unknown_cost_quantity",
            "proceeds",
            "cost",
            "sales_tax",
            "broker_fees",
        ):
            setattr(total, name, getattr(total, name) + getattr(item, name))
    total.broker_fees += unattributed
    total.profit = total.proceeds - total.cost - total.sales_tax - total.broker_fees
    points = []
    running = ZERO
    day = first
    while day <= last:
        running += daily.get(day, ZERO)
        points.append(PnlPoint(day=day, profit=daily.get(day, ZERO), cumulative=running))
        day += timedelta(days=1)
    return PnlRead(
        since=first,
        until=last,
        items=sorted(items.values(), key=lambda i: (-i.profit, i.type_id)),
        total=total,
        unattributed_broker_fees=unattributed,
        daily=points,
        open_lots_value=open_value.quantize(Decimal("0.01")),
    )
