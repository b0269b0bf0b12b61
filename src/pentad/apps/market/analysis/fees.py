"""Broker fee, relist fee and sales tax from a character's skills and standings.

The rules, and where each comes from:

- Broker fee at an NPC station (CCP support, "Broker Fee and Sales Tax",
  https://support.eveonline.com/hc/en-us/articles/203218962):
  ``base - 0.3 % x Broker Relations - 0.03 % x faction standing - 0.02 % x corporation standing``, never
  below the minimum rate (1 %). The standings are the character's *unmodified* standings towards the
  station owner's corporation and its faction (Connections/Diplomacy do not count); they run from -10 to
  +10, so bad standings raise the fee. The base (3 %) and the floor are settings (BROKER_FEE_BASE,
  BROKER_FEE_MIN_RATE) because CCP changes them with patches.
- Broker fee at a player (Upwell) structure: the owner's rate (STRUCTURE_BROKER_FEE or the station's own
  `broker_fee_override`); Broker Relations and NPC standings do not apply there (same CCP article).
- Relist (price change) fee (EVE University wiki, "Trading", after the 2020 Broker Relations update):
  ``(50 % - 5 % x Advanced Broker Relations) x broker rate x new order value
  + broker rate x max(0, new value - old value)``.
- Every broker or relist fee charged is at least 100 ISK (CCP article; BROKER_FEE_MIN_ISK).
- Sales tax (CCP article; the Accounting skill description): ``base x (1 - 11 % x Accounting)``, the base
  being SALES_TAX_BASE (7.5 % since 2024; it was 8 % in 2021, hence a setting). CCP names no minimum
  charge for the tax, so none is applied.

Rates are exact Decimals (no float drift in 0.0003 x standing); ISK amounts are rounded half-up to the
cent, the precision ESI reports wallet amounts in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal, Protocol

from pentad.apps.market.settings import MarketSettings

ACCOUNTING = "Accounting"
BROKER_RELATIONS = "Broker Relations"
ADVANCED_BROKER_RELATIONS = "Advanced Broker Relations"
SKILL_TYPE_IDS: Mapping[str, int] = {
    ACCOUNTING: 16622,
    BROKER_RELATIONS: 3446,
    ADVANCED_BROKER_RELATIONS: 16597,
}
"""The skills' type ids in the static data (repository.fee_skill_ids resolves them from an import too)."""

BROKER_RELATIONS_STEP = Decimal("0.003")
"""Broker rate removed per Broker Relations level (0.3 percentage points)."""
FACTION_STANDING_STEP = Decimal("0.0003")
"""Broker rate removed per point of standing towards the station owner's faction (0.03 points)."""
CORPORATION_STANDING_STEP = Decimal("0.0002")
"""Broker rate removed per point of standing towards the station owner's corporation (0.02 points)."""
ACCOUNTING_STEP = Decimal("0.11")
"""Share of the sales tax removed per Accounting level (11 %)."""
RELIST_BASE = Decimal("0.5")
RELIST_ABR_STEP = Decimal("0.05")
"""Relist fee: (RELIST_BASE - RELIST_ABR_STEP x Advanced Broker Relations) x broker rate x new value."""

CENT = Decimal("0.01")
StationKind = Literal["npc", "structure"]


def _decimal(value: float | int | Decimal) -> Decimal:
    """A float as the decimal it was written as (0.03, not 0.0299999...)."""
    return value if isinstance(value, Decimal) else Decimal(str(value))


def isk(value: Decimal) -> Decimal:
    """An ISK amount rounded half-up to the cent."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class FeeSkills:
    """The trained levels (0-5) of the skills the fees depend on."""

    accounting: int = 0
    broker_relations: int = 0
    advanced_broker_relations: int = 0

    def __post_init__(self) -> None:
        for name in ("accounting", "broker_relations", "advanced_broker_relations"):
            level = getattr(self, name)
            if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level <= 5:
                raise ValueError(f"{name} must be a skill level from 0 to 5, not {level!r}")

    @classmethod
    def from_levels(cls, levels: Mapping[int, int], ids: Mapping[str, int] | None = None) -> FeeSkills:
        """The fee skills out of a character's trained levels by skill type id (ESI /skills/
        `trained_skill_level`); skills not trained count as level 0. `ids`: the skill ids by name when
        they come from an imported SDE (repository.fee_skill_ids), else SKILL_TYPE_IDS."""
        ids = SKILL_TYPE_IDS if ids is None else ids

        def level(name: str) -> int:
            skill = ids.get(name)
            return int(levels.get(skill, 0)) if skill is not None else 0

        return cls(level(ACCOUNTING), level(BROKER_RELATIONS), level(ADVANCED_BROKER_RELATIONS))


@dataclass(frozen=True)
class OwnerStandings:
    """A character's unmodified standings (-10..+10) towards a station owner's faction and corporation."""

    faction: Decimal = Decimal(0)
    corporation: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        for name in ("faction", "corporation"):
            value = _decimal(getattr(self, name))
            if not value.is_finite() or not Decimal(-10) <= value <= Decimal(10):
                raise ValueError(f"{name} standing must lie between -10 and 10, not {value}")
            object.__setattr__(self, name, value)

    @classmethod
    def for_owner(
        cls, standings: Mapping[int, float], corporation_id: int | None, faction_id: int | None
    ) -> OwnerStandings:
        """The standings towards a station's owner out of the character's standings by `from_id` (ESI
        /standings/); no standing recorded is 0, an owner without faction gets 0 for it."""
        faction = standings.get(faction_id, 0.0) if faction_id is not None else 0.0
        corporation = standings.get(corporation_id, 0.0) if corporation_id is not None else 0.0
        return cls(_decimal(faction), _decimal(corporation))


@dataclass(frozen=True)
class FeeBases:
    """The patch-dependent bases of the formulas (market settings)."""

    broker_base: Decimal = Decimal("0.03")
    broker_min_rate: Decimal = Decimal("0.01")
    broker_min_isk: Decimal = Decimal("100")
    structure_broker: Decimal = Decimal("0.01")
    sales_tax_base: Decimal = Decimal("0.075")

    @classmethod
    def from_settings(cls, settings: MarketSettings) -> FeeBases:
        return cls(
            broker_base=_decimal(settings.broker_fee_base),
            broker_min_rate=_decimal(settings.broker_fee_min_rate),
            broker_min_isk=_decimal(settings.broker_fee_min_isk),
            structure_broker=_decimal(settings.structure_broker_fee),
            sales_tax_base=_decimal(settings.sales_tax_base),
        )


@dataclass(frozen=True)
class FeeRates:
    """What trading at one station costs one character: rates as fractions (0.0135 = 1.35 %), with the
    inputs they came from so a page can show them."""

    broker: Decimal
    """Broker fee rate for a new order."""
    sales_tax: Decimal
    """Sales tax rate on what is sold."""
    relist: Decimal
    """Relist fee rate on the new order value when an order's price changes."""
    min_isk: Decimal
    """Smallest broker or relist fee charged."""
    kind: StationKind
    floored: bool
    """True when the NPC broker rate hit the minimum rate."""
    skills: FeeSkills = field(default_factory=FeeSkills)
    standings: OwnerStandings = field(default_factory=OwnerStandings)

    def broker_fee(self, order_value: Decimal | int) -> Decimal:
        """The broker fee for placing an order worth `order_value` ISK (price x quantity)."""
        value = _checked_value(order_value)
        return max(self.min_isk, isk(self.broker * value))

    def sales_tax_on(self, proceeds: Decimal | int) -> Decimal:
        """The sales tax taken from `proceeds` ISK of sales."""
        return isk(self.sales_tax * _checked_value(proceeds))

    def relist_fee(self, old_value: Decimal | int, new_value: Decimal | int) -> Decimal:
        """The fee for changing an order's price, from the remaining order value before and after."""
        old, new = _checked_value(old_value), _checked_value(new_value)
        fee = self.relist * new + self.broker * max(Decimal(0), new - old)
        return max(self.min_isk, isk(fee))


def _checked_value(value: Decimal | int) -> Decimal:
    amount = _decimal(value)
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"an ISK value must be a finite amount of at least 0, not {value}")
    return amount


def sales_tax_rate(skills: FeeSkills, bases: FeeBases) -> Decimal:
    """``base x (1 - 0.11 x Accounting)``: 7.5 % at level 0, 3.375 % at level 5."""
    return bases.sales_tax_base * (1 - ACCOUNTING_STEP * skills.accounting)


def npc_broker_rate(skills: FeeSkills, standings: OwnerStandings, bases: FeeBases) -> tuple[Decimal, bool]:
    """``max(min rate, base - 0.003 x BR - 0.0003 x faction - 0.0002 x corporation)`` and whether the
    floor applied."""
    rate = (
        bases.broker_base
        - BROKER_RELATIONS_STEP * skills.broker_relations
        - FACTION_STANDING_STEP * standings.faction
        - CORPORATION_STANDING_STEP * standings.corporation
    )
    if rate < bases.broker_min_rate:
        return bases.broker_min_rate, True
    return rate, False


def relist_rate(skills: FeeSkills, broker: Decimal) -> Decimal:
    """``(0.5 - 0.05 x Advanced Broker Relations) x broker rate``."""
    return (RELIST_BASE - RELIST_ABR_STEP * skills.advanced_broker_relations) * broker


def fee_rates(
    skills: FeeSkills,
    standings: OwnerStandings | None = None,
    bases: FeeBases | None = None,
    *,
    kind: StationKind = "npc",
    broker_override: float | Decimal | None = None,
) -> FeeRates:
    """The fee rates of one character at one station.

    `kind="npc"`: the NPC formula from skills and standings towards the station owner. `kind="structure"`:
    the structure's rate (`broker_override`, else the STRUCTURE_BROKER_FEE base); skills other than
    Accounting and Advanced Broker Relations, and standings, do not apply. A `broker_override` at an NPC
    station (a user's correction) replaces the computed rate too."""
    standings = standings or OwnerStandings()
    bases = bases or FeeBases()
    floored = False
    if broker_override is not None:
        broker = _decimal(broker_override)
        if not broker.is_finite() or not Decimal(0) <= broker < 1:
            raise ValueError(f"a broker fee rate is a fraction from 0 to below 1, not {broker}")
    elif kind == "structure":
        broker = bases.structure_broker
    else:
        broker, floored = npc_broker_rate(skills, standings, bases)
    return FeeRates(
        broker=broker,
        sales_tax=sales_tax_rate(skills, bases),
        relist=relist_rate(skills, broker),
        min_isk=bases.broker_min_isk,
        kind=kind,
        floored=floored,
        skills=skills,
        standings=standings if kind == "npc" and broker_override is None else OwnerStandings(),
    )


class StationLike(Protocol):
    """What the fees need of a station (a `MarketStation` row fits)."""

    @property
    def kind(self) -> str: ...
    @property
    def owner_corp_id(self) -> int | None: ...
    @property
    def faction_id(self) -> int | None: ...
    @property
    def broker_fee_override(self) -> float | None: ...


def fee_rates_at(
    station: StationLike,
    skills: FeeSkills,
    standings: Mapping[int, float],
    bases: FeeBases | None = None,
) -> FeeRates:
    """The fee rates of a character at `station`: its kind (NPC station or structure), its broker fee
    override if one is recorded, and the character's standings (by `from_id`) towards its owner
    corporation and faction."""
    kind: StationKind = "structure" if station.kind == "structure" else "npc"
    owner = OwnerStandings.for_owner(standings, station.owner_corp_id, station.faction_id)
    return fee_rates(skills, owner, bases, kind=kind, broker_override=station.broker_fee_override)
