"""Fees from skills and standings, every expectation computed by hand in the comments (formulas and sources
in analysis/fees.py)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from pentad.apps.market.analysis.fees import (
    FeeBases,
    FeeSkills,
    OwnerStandings,
    fee_rates,
    fee_rates_at,
)
from pentad.apps.market.settings import MarketSettings

D = Decimal
UNSKILLED = FeeSkills()
MAXED = FeeSkills(accounting=5, broker_relations=5, advanced_broker_relations=5)


def test_the_bases_come_from_the_market_settings() -> None:
    assert FeeBases.from_settings(MarketSettings()) == FeeBases(
        broker_base=D("0.03"),
        broker_min_rate=D("0.01"),
        broker_min_isk=D("100"),
        structure_broker=D("0.01"),
        sales_tax_base=D("0.075"),
    )
    custom = MarketSettings(sales_tax_base=0.08, broker_fee_base=0.05)
    assert FeeBases.from_settings(custom).sales_tax_base == D("0.08")  # 0.08 exactly, not 0.0800000001
    assert FeeBases.from_settings(custom).broker_base == D("0.05")


def test_an_unskilled_character_without_standings_pays_the_bases() -> None:
    rates = fee_rates(UNSKILLED)
    assert rates.broker == D("0.03")  # 3 % - 0.3 % x 0 - 0.03 % x 0 - 0.02 % x 0
    assert rates.sales_tax == D("0.075")  # 7.5 % x (1 - 0.11 x 0)
    assert rates.relist == D("0.015")  # (0.5 - 0.05 x 0) x 3 %
    assert not rates.floored
    # 1,000,000 ISK order: broker 3 % = 30,000.00; selling it: tax 7.5 % = 75,000.00
    assert rates.broker_fee(1_000_000) == D("30000.00")
    assert rates.sales_tax_on(1_000_000) == D("75000.00")


def test_level_five_skills_cut_broker_fee_tax_and_relist() -> None:
    rates = fee_rates(MAXED)
    assert rates.broker == D("0.015")  # 3 % - 0.3 % x 5 = 1.5 %
    assert rates.sales_tax == D("0.03375")  # 7.5 % x (1 - 0.11 x 5) = 7.5 % x 0.45 = 3.375 %
    assert rates.relist == D("0.00375")  # (0.5 - 0.05 x 5) x 1.5 % = 0.25 x 1.5 % = 0.375 %
    assert rates.broker_fee(1_000_000) == D("15000.00")
    assert rates.sales_tax_on(1_000_000) == D("33750.00")  # 1,000,000 x 0.03375
    # 2021's 8 % base (CCP: "reduced down to 3.6 % through Accounting"): 8 % x 0.45 = 3.6 %
    assert fee_rates(MAXED, bases=FeeBases(sales_tax_base=D("0.08"))).sales_tax == D("0.036")


def test_each_level_counts_on_its_own() -> None:
    rates = fee_rates(FeeSkills(accounting=3, broker_relations=2, advanced_broker_relations=1))
    assert rates.broker == D("0.024")  # 3 % - 0.3 % x 2 = 2.4 %
    assert rates.sales_tax == D("0.05025")  # 7.5 % x (1 - 0.33) = 7.5 % x 0.67 = 5.025 %
    assert rates.relist == D("0.0108")  # (0.5 - 0.05) x 2.4 % = 0.45 x 2.4 % = 1.08 %


def test_standings_towards_the_station_owner_lower_the_broker_fee() -> None:
    standings = OwnerStandings(faction=D("5"), corporation=D("7.5"))
    rates = fee_rates(MAXED, standings)
    # 3 % - 0.3 % x 5 - 0.03 % x 5 - 0.02 % x 7.5 = 3 % - 1.5 % - 0.15 % - 0.15 % = 1.2 %
    assert rates.broker == D("0.012")
    assert rates.broker_fee(1_000_000) == D("12000.00")
    assert rates.sales_tax == D("0.03375")  # standings do not touch the tax
    # CCP forum case (Jita, BR 5, Caldari State 2.26, Caldari Navy 5.12):
    # 3 % - 1.5 % - 0.03 % x 2.26 - 0.02 % x 5.12 = 1.5 % - 0.0678 % - 0.1024 % = 1.3298 %
    forum = fee_rates(FeeSkills(broker_relations=5), OwnerStandings(faction=D("2.26"), corporation=D("5.12")))
    assert forum.broker == D("0.013298")
    # 1,234,567.89 ISK x 1.3298 % = 16,417.28377... -> 16,417.28
    assert forum.broker_fee(D("1234567.89")) == D("16417.28")


def test_bad_standings_raise_the_broker_fee() -> None:
    rates = fee_rates(UNSKILLED, OwnerStandings(faction=D("-5"), corporation=D("-10")))
    assert rates.broker == D("0.0335")  # 3 % + 0.03 % x 5 + 0.02 % x 10 = 3 % + 0.15 % + 0.2 % = 3.35 %


def test_the_broker_rate_never_drops_below_the_floor() -> None:
    perfect = OwnerStandings(faction=D("10"), corporation=D("10"))
    exact = fee_rates(MAXED, perfect)
    assert exact.broker == D("0.010")  # 3 % - 1.5 % - 0.3 % - 0.2 % = 1 %: the floor itself, not below
    assert not exact.floored
    # An older 2.5 % base: 2.5 % - 1.5 % - 0.3 % - 0.2 % = 0.5 % -> floored to 1 %
    floored = fee_rates(MAXED, perfect, FeeBases(broker_base=D("0.025")))
    assert (floored.broker, floored.floored) == (D("0.01"), True)


def test_small_orders_pay_the_minimum_fee_but_tax_has_none() -> None:
    rates = fee_rates(MAXED)
    assert rates.broker_fee(5_000) == D("100")  # 5,000 x 1.5 % = 75 -> the 100 ISK minimum
    assert rates.broker_fee(10_000) == D("150.00")  # 10,000 x 1.5 % = 150
    assert rates.sales_tax_on(1_000) == D("33.75")  # 1,000 x 3.375 %, no minimum
    assert rates.sales_tax_on(D("0.10")) == D("0.00")  # 0.003375 -> rounds to 0.00
    # 123,456.78 x 1.5 % = 1,851.8517 -> 1,851.85
    assert rates.broker_fee(D("123456.78")) == D("1851.85")


def test_relist_fee_follows_the_advanced_broker_relations_formula() -> None:
    # EVE University's example: broker 3.88 %, ABR 4, 10,000 units re-priced 6.00 -> 7.00 ISK.
    rates = fee_rates(FeeSkills(advanced_broker_relations=4), broker_override=D("0.0388"))
    assert rates.relist == D("0.01164")  # (0.5 - 0.05 x 4) x 3.88 % = 0.3 x 3.88 % = 1.164 %
    # 1.164 % x 70,000 = 814.80, plus 3.88 % x (70,000 - 60,000) = 388.00 -> 1,202.80 (the wiki's
    # page adds the same two terms but prints 1,202.40)
    assert rates.relist_fee(60_000, 70_000) == D("1202.80")
    # Lowering the price: 1.164 % x 60,000 = 698.40 and no increase to pay
    assert rates.relist_fee(70_000, 60_000) == D("698.40")
    # A cheap order still pays 100 ISK: 0.375 % x 900 = 3.375 -> 100
    assert fee_rates(MAXED).relist_fee(1_000, 900) == D("100")


def test_structures_charge_their_own_rate_whatever_the_skills_and_standings() -> None:
    perfect = OwnerStandings(faction=D("10"), corporation=D("10"))
    rates = fee_rates(MAXED, perfect, kind="structure")
    assert rates.broker == D("0.01")  # STRUCTURE_BROKER_FEE; Broker Relations and standings ignored
    assert rates.sales_tax == D("0.03375")  # Accounting still applies
    assert rates.relist == D("0.0025")  # (0.5 - 0.25) x 1 %
    assert rates.standings == OwnerStandings()
    owner_rate = fee_rates(UNSKILLED, kind="structure", broker_override=0.005)
    assert owner_rate.broker == D("0.005")  # the structure's own 0.5 %
    assert owner_rate.relist == D("0.0025")  # 0.5 x 0.5 %


def test_skills_and_standings_come_from_esi_shaped_data() -> None:
    # /characters/{id}/skills: skill_id -> trained level (Accounting 16622, BR 3446, ABR 16597)
    assert FeeSkills.from_levels({16622: 5, 3446: 4, 3300: 5}) == FeeSkills(5, 4, 0)
    assert FeeSkills.from_levels({1: 3}, ids={"Accounting": 1}) == FeeSkills(accounting=3)
    # /characters/{id}/standings: from_id -> standing; Jita 4-4 is Caldari Navy (1000035), Caldari State
    standings = {500001: 2.26, 1000035: 5.12, 1000125: -3.0}
    assert OwnerStandings.for_owner(standings, 1000035, 500001) == OwnerStandings(D("2.26"), D("5.12"))
    assert OwnerStandings.for_owner(standings, 1000002, None) == OwnerStandings()  # nothing recorded: 0


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: FeeSkills(accounting=6), "accounting must be a skill level"),
        (lambda: FeeSkills(broker_relations=-1), "broker_relations must be a skill level"),
        (lambda: OwnerStandings(faction=D("10.01")), "faction standing must lie between"),
        (lambda: OwnerStandings(corporation=D("NaN")), "corporation standing must lie between"),
        (lambda: fee_rates(UNSKILLED, broker_override=1.5), "broker fee rate is a fraction"),
        (lambda: fee_rates(UNSKILLED).broker_fee(-1), "ISK value must be a finite amount"),
        (lambda: fee_rates(UNSKILLED).sales_tax_on(D("Infinity")), "ISK value must be a finite amount"),
    ],
)
def test_impossible_inputs_are_refused(build: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


class _Station:
    def __init__(self, kind: str, owner: int | None, faction: int | None, override: float | None) -> None:
        self.kind, self.owner_corp_id, self.faction_id, self.broker_fee_override = (
            kind,
            owner,
            faction,
            override,
        )


def test_rates_at_a_station_use_its_owner_and_kind() -> None:
    standings = {500001: 2.26, 1000035: 5.12, 500004: -2.0}
    jita = _Station("npc", 1000035, 500001, None)  # Caldari Navy, Caldari State
    assert fee_rates_at(jita, FeeSkills(broker_relations=5), standings).broker == D("0.013298")  # as above
    dodixie = _Station("npc", 1000120, 500004, None)  # Federation Navy, Gallente Federation (-2.0)
    # 3 % - 1.5 % + 0.03 % x 2 - 0.02 % x 0 = 1.56 %
    assert fee_rates_at(dodixie, FeeSkills(broker_relations=5), standings).broker == D("0.0156")
    keepstar = _Station("structure", 98000001, None, 0.02)
    at_structure = fee_rates_at(keepstar, MAXED, standings)
    assert (at_structure.kind, at_structure.broker) == ("structure", D("0.02"))
    unknown_rate = fee_rates_at(_Station("structure", None, None, None), MAXED, standings)
    assert unknown_rate.broker == D("0.01")  # STRUCTURE_BROKER_FEE
