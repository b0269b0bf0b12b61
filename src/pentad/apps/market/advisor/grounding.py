"""The grounding check: every ISK figure an answer quotes must come from a tool result of that answer.

Figures are the numbers in the text with a decimal part or of at least 100 (jumps, skill levels, days and
counts below 100 pass unchecked), thousands separators allowed, with an optional k/m/b suffix. A figure
is grounded when some number in the tool results lies within 0.5 % of it (a model may round 415.62 to
415.6 or 1,234,567 to 1.23m)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

TOLERANCE = Decimal("0.005")
_FIGURE = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?\s*([kmb](?![a-z]))?", re.IGNORECASE)
_SCALE = {"k": Decimal(1000), "m": Decimal(10**6), "b": Decimal(10**9)}


def figures(text: str) -> list[Decimal]:
    """The numbers in `text` that the check applies to."""
    found = []
    for match in _FIGURE.finditer(text):
        whole, fraction, suffix = match.groups()
        value = Decimal(whole.replace(",", "") + (fraction or ""))
        if suffix:
            value *= _SCALE[suffix.lower()]
        if fraction or suffix or value >= 100:
            found.append(value)
    return found


def _numbers(value: Any) -> Iterable[Decimal]:
    if isinstance(value, bool):
        return
    if isinstance(value, int | float | Decimal):
        yield Decimal(str(value))
    elif isinstance(value, str):
        try:
            yield Decimal(value.replace(",", ""))
        except InvalidOperation:
            for match in _FIGURE.finditer(value):
                yield Decimal(match.group(1).replace(",", "") + (match.group(2) or ""))
    elif isinstance(value, dict):
        for item in value.values():
            yield from _numbers(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _numbers(item)


def ungrounded(text: str, results: Iterable[Any]) -> list[Decimal]:
    """The figures of `text` found in none of `results` (empty: the answer is grounded)."""
    known = [n for n in _numbers(list(results)) if n.is_finite()]
    missing = []
    for figure in figures(text):
        if not any(abs(figure - n) <= abs(n) * TOLERANCE for n in known if n != 0):
            missing.append(figure)
    return missing
