"""FIFO P&L by hand: lots consumed oldest first, partial lots, several items, sells without a lot
(unknown cost, never profit), tax prorated to the matched units, input in any order."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from pentad.apps.market.analysis.pnl import Trade, fifo

pytestmark = pytest.mark.one_engine

D = Decimal


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 2, day, hour, tzinfo=UTC)


def test_sells_consume_the_oldest_lots_first() -> None:
    trades = [
        Trade(3, at(3), 34, 12, D("150"), False),
        Trade(1, at(1), 34, 10, D("100"), True),
        Trade(2, at(2), 34, 5, D("120"), True),
        Trade(4, at(4), 34, 2, D("160"), False),
    ]
    ledger = fifo(trades, {3: D("54"), 4: D("9.60")})
    first, second = ledger.realized
    # 12 @ 150 = 1800; cost 10 x 100 + 2 x 120 = 1240; tax 54; profit 506.
    assert (first.quantity, first.proceeds, first.cost, first.tax, first.profit) == (
        12, D("1800.00"), D("1240.00"), D("54.00"), D("506.00")
    )  # fmt: skip
    # 2 @ 160 = 320; cost 2 x 120 = 240; tax 9.60; profit 70.40.
    assert (second.quantity, second.cost, second.profit) == (2, D("240.00"), D("70.40"))
    (lot,) = ledger.lots
    assert (lot.transaction_id, lot.quantity_left, lot.unit_cost) == (2, 1, D("120"))


def test_units_sold_without_a_lot_are_unknown_cost_and_no_profit() -> None:
    ledger = fifo(
        [Trade(1, at(1), 35, 4, D("10.00"), True), Trade(2, at(2), 35, 10, D("12.50"), False)],
        {2: D("5.00")},
    )
    (sale,) = ledger.realized
    # 4 of 10 units matched: proceeds 4 x 12.50 = 50; cost 40; tax 5 x 4/10 = 2; profit 8.
    assert (sale.quantity, sale.unknown_quantity) == (4, 6)
    assert (sale.proceeds, sale.cost, sale.tax, sale.profit) == (D("50.00"), D("40.00"), D("2.00"), D("8.00"))
    assert ledger.lots == []


def test_items_are_matched_separately_and_ties_go_by_transaction_id() -> None:
    ledger = fifo(
        [
            Trade(2, at(1), 34, 5, D("2.00"), True),
            Trade(1, at(1), 34, 5, D("1.00"), True),
            Trade(3, at(1), 35, 5, D("100.00"), True),
            Trade(4, at(2), 34, 6, D("3.00"), False),
        ]
    )
    (sale,) = ledger.realized
    # same date: id 1 (5 @ 1.00) before id 2 (1 @ 2.00) -> cost 7; the Pyerite lot is untouched.
    assert (sale.type_id, sale.cost, sale.profit) == (34, D("7.00"), D("11.00"))
    assert sorted((lot.type_id, lot.quantity_left) for lot in ledger.lots) == [(34, 4), (35, 5)]


def test_cents_round_half_up() -> None:
    ledger = fifo(
        [Trade(1, at(1), 34, 3, D("0.01"), True), Trade(2, at(2), 34, 3, D("0.05"), False)], {2: D("0.01")}
    )
    (sale,) = ledger.realized
    assert (sale.proceeds, sale.cost, sale.tax) == (D("0.15"), D("0.03"), D("0.01"))
