"""Depth-aware execution price: walk an order book to price a quantity (docs/plans/market.md §3).

Buying takes sell orders from the cheapest up; selling fills buy orders from the highest down. Orders at
the same price are taken in the order given (the caller passes them oldest first, as EVE fills them).
A buy order's `min_volume` is the smallest quantity one sale into it may have; an order whose remaining
volume is below its `min_volume` takes what remains (otherwise it could never be completed), so the walk
skips a buy order only while the quantity still to sell is below ``min(min_volume, volume_remain)``.
Sell orders have no minimum. Amounts are exact Decimals (prices carry cents, so price x units is exact);
the average price is rounded half-up to the cent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal, NamedTuple, Protocol

Side = Literal["buy", "sell"]
"""What the trader does: `buy` walks the sell orders, `sell` walks the buy orders."""

CENT = Decimal("0.01")


class OrderLike(Protocol):
    """An order of the book (a `MarketOrder` row fits, as does `BookOrder`)."""

    @property
    def order_id(self) -> int: ...
    @property
    def price(self) -> Decimal: ...
    @property
    def volume_remain(self) -> int: ...
    @property
    def min_volume(self) -> int: ...


class BookOrder(NamedTuple):
    """One order of a ladder (a named tuple: the hauling search builds one per order of five books)."""

    order_id: int
    price: Decimal
    volume_remain: int
    min_volume: int = 1


class Level(NamedTuple):
    """One order of a ladder with its price in whole cents (ISK prices carry two decimals): the hauling
    search sizes thousands of hauls in integer arithmetic and makes Decimals only for the ones it answers."""

    order_id: int
    cents: int
    volume_remain: int
    min_volume: int = 1

    @property
    def price(self) -> Decimal:
        return Decimal(self.cents).scaleb(-2)


@dataclass(frozen=True)
class Take:
    """Units taken from one order at its price."""

    order_id: int
    price: Decimal
    quantity: int


@dataclass(frozen=True)
class Fill:
    """The result of walking the book for `requested` units."""

    side: Side
    requested: int
    filled: int
    cost: Decimal
    """ISK paid (buy) or received before tax (sell) for the filled units."""
    average: Decimal | None
    """cost / filled, to the cent; None when nothing filled."""
    marginal: Decimal | None
    """Price of the last (worst) unit filled; None when nothing filled."""
    takes: tuple[Take, ...]
    """The orders consumed, best first."""
    skipped: tuple[int, ...]
    """Buy orders passed over because the quantity left was below their minimum volume."""

    @property
    def complete(self) -> bool:
        """Whether the book was deep enough for the whole quantity."""
        return self.filled == self.requested

    @property
    def short(self) -> int:
        """Units the book could not take."""
        return self.requested - self.filled

    @property
    def orders_consumed(self) -> int:
        return len(self.takes)


def _price(order: OrderLike) -> Decimal:
    price = order.price
    return price if isinstance(price, Decimal) else Decimal(str(price))


def walk(orders: Iterable[OrderLike], quantity: int, side: Side) -> Fill:
    """Price `quantity` units against `orders` (one side of one type's book at one place; the caller
    filters by type, location and, for buy orders, range). `side="buy"` expects sell orders, `"sell"` buy
    orders; orders with no volume left are ignored."""
    if side not in ("buy", "sell"):
        raise ValueError(f"side is 'buy' or 'sell', not {side!r}")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise ValueError(f"quantity must be a whole number of units of at least 1, not {quantity!r}")
    book = [(order, _price(order)) for order in orders if order.volume_remain > 0]
    # sorted() is stable: equal prices keep the caller's (time) order.
    book.sort(key=(lambda item: item[1]) if side == "buy" else (lambda item: -item[1]))
    return _walk(book, quantity, side)


def walk_sorted(orders: Iterable[BookOrder | Level], quantity: int, side: Side) -> Fill:
    """`walk` over a ladder already in walking order (cheapest first to buy, highest first to sell; equal
    prices oldest first) with Decimal prices: the same answer without sorting the book again (the hauling
    search walks the same ladders for many pairs of hubs)."""
    return _walk(((order, order.price) for order in orders), quantity, side)


def _walk(book: Iterable[tuple[OrderLike, Decimal]], quantity: int, side: Side) -> Fill:
    left = quantity
    cost = Decimal(0)
    takes: list[Take] = []
    skipped: list[int] = []
    for order, price in book:
        if left == 0:
            break
        remain = order.volume_remain
        if remain <= 0:
            continue
        if side == "sell" and left < min(order.min_volume, remain):
            skipped.append(order.order_id)
            continue
        units = min(left, remain)
        takes.append(Take(order.order_id, price, units))
        cost += price * units
        left -= units
    filled = quantity - left
    return Fill(
        side=side,
        requested=quantity,
        filled=filled,
        cost=cost,
        average=(cost / filled).quantize(CENT, rounding=ROUND_HALF_UP) if filled else None,
        marginal=takes[-1].price if takes else None,
        takes=tuple(takes),
        skipped=tuple(skipped),
    )
