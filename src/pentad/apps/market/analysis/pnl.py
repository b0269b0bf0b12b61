"""Wallet profit and loss with a FIFO cost basis per item (pure: no database, no I/O).

A pool's market transactions are replayed in order (date, then transaction id): a buy adds a lot (its
units at its unit price); a sell consumes the oldest lots of the same type first. Each sell gives one
`Realized`: its matched units' proceeds and cost, the sales tax the journal charged for it
(`transaction_tax` entries carry the transaction id as `context_id`) prorated to the matched units, and
the units no lot covered (`unknown_quantity`: bought before the wallet history reaches back, or moved in
from elsewhere) — those are never counted as profit, their proceeds and tax are left out. Amounts are exact
Decimals rounded half-up to the cent (ESI reports ISK to the cent).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def isk(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Trade:
    """A market transaction as the wallet reports it."""

    transaction_id: int
    date: datetime
    type_id: int
    quantity: int
    unit_price: Decimal
    is_buy: bool
    character_id: int = 0


@dataclass
class Lot:
    """Units of one buy not sold yet."""

    type_id: int
    character_id: int
    transaction_id: int
    date: datetime
    quantity_left: int
    unit_cost: Decimal


@dataclass(frozen=True)
class Realized:
    """A sell matched against lots."""

    type_id: int
    character_id: int
    sell_transaction_id: int
    date: datetime
    quantity: int
    unknown_quantity: int
    proceeds: Decimal
    cost: Decimal
    tax: Decimal

    @property
    def profit(self) -> Decimal:
        return self.proceeds - self.cost - self.tax


@dataclass
class Ledger:
    lots: list[Lot] = field(default_factory=list)
    realized: list[Realized] = field(default_factory=list)


def fifo(trades: Iterable[Trade], taxes: Mapping[int, Decimal] | None = None) -> Ledger:
    """Replay `trades` (any order; sorted here by date and id). `taxes`: the tax charged per sell
    transaction id (positive ISK)."""
    taxes = taxes or {}
    open_lots: dict[int, deque[Lot]] = defaultdict(deque)
    realized: list[Realized] = []
    for trade in sorted(trades, key=lambda t: (t.date, t.transaction_id)):
        if trade.quantity <= 0:
            continue
        if trade.is_buy:
            open_lots[trade.type_id].append(
                Lot(
                    trade.type_id,
                    trade.character_id,
                    trade.transaction_id,
                    trade.date,
                    trade.quantity,
                    Decimal(trade.unit_price),
                )
            )
            continue
        lots = open_lots[trade.type_id]
        wanted = trade.quantity
        cost = Decimal(0)
        while wanted and lots:
            lot = lots[0]
            used = min(wanted, lot.quantity_left)
            cost += lot.unit_cost * used
            lot.quantity_left -= used
            wanted -= used
            if lot.quantity_left == 0:
                lots.popleft()
        matched = trade.quantity - wanted
        tax = Decimal(taxes.get(trade.transaction_id, Decimal(0)))
        realized.append(
            Realized(
                type_id=trade.type_id,
                character_id=trade.character_id,
                sell_transaction_id=trade.transaction_id,
                date=trade.date,
                quantity=matched,
                unknown_quantity=wanted,
                proceeds=isk(Decimal(trade.unit_price) * matched),
                cost=isk(cost),
                tax=isk(tax * matched / trade.quantity),
            )
        )
    return Ledger([lot for lots in open_lots.values() for lot in lots], realized)
