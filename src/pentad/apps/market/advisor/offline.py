"""The offline answer: when no AI provider can answer (none configured, all failing, all skipped), the
advisor still answers from the same tools, by keywords, with the figures quoted as the tools gave them.
It never guesses: what it cannot match it says, with what it can do."""

from __future__ import annotations

import re
from typing import Any

from pentad.apps.market.advisor.tools import ToolBox

HUB_WORDS = ("jita", "amarr", "dodixie", "rens", "hek")
NOTE = "(Offline answer: the AI advisor is unavailable right now, so this comes straight from the data.)"


def _hubs(question: str, known: list[str]) -> list[str]:
    words = re.findall(r"[a-z]+", question.lower())
    return [word for word in words if word in known]


def _type_name(question: str) -> str | None:
    """An item named in quotes, or after "of"/"for"/"buy"/"sell" + a number."""
    quoted = re.search(r"[\"“']([^\"”']{2,60})[\"”']", question)
    if quoted:
        return quoted.group(1).strip()
    after = re.search(
        r"(?:buy|sell|price of|price for|history of|history for)\s+(?:\d[\d,]*\s+)?"
        r"([A-Za-z][\w' -]{1,60}?)(?:\s+(?:at|in|from|on)\b|[?.!]|$)",
        question,
        re.IGNORECASE,
    )
    return after.group(1).strip() if after else None


def _quantity(question: str) -> int:
    match = re.search(r"\b(\d[\d,]*)\s*(k|m)?\b", question, re.IGNORECASE)
    if not match:
        return 1
    value = int(match.group(1).replace(",", ""))
    suffix = (match.group(2) or "").lower()
    return value * (1000 if suffix == "k" else 10**6 if suffix == "m" else 1)


async def answer(question: str, tools: ToolBox, hubs: list[str]) -> str:
    """A templated answer from the tools (recorded in `tools.records` like a model's calls); the caller
    adds `note(reason)` after the grounding check."""
    text = question.lower()
    named = _hubs(question, hubs)
    hub = named[0] if named else (hubs[0] if hubs else "jita")
    lines: list[str] = []
    if any(word in text for word in ("haul", "transport", "carry", "freight", "route", "courier")):
        result = await tools.call("hauling_routes", {"hubs": named if len(named) >= 2 else [], "limit": 5})
        lines.extend(_hauls(result))
    elif any(word in text for word in ("history", "trend", "last month", "past")) and _type_name(question):
        result = await tools.call("price_history", {"hub": hub, "type": _type_name(question), "days": 30})
        lines.extend(_history(result))
    elif any(word in text for word in ("cost", "price", "buy", "sell", "worth")) and _type_name(question):
        side = "sell" if re.search(r"\bsell", text) else "buy"
        args = {"hub": hub, "type": _type_name(question), "quantity": _quantity(question), "side": side}
        lines.extend(_execution(await tools.call("execution_price", args)))
    elif any(word in text for word in ("order", "undercut", "expir")):
        result = await tools.call("my_orders", {})
        lines.append(
            str(result.get("reason") or result.get("error") or "Your orders are listed on My orders.")
        )
    else:
        result = await tools.call("station_margins", {"hub": hub, "limit": 5})
        lines.extend(_margins(result))
    return "\n".join(lines)


def note(reason: str) -> str:
    return f"{NOTE} [{reason}]"


def _error(result: dict[str, Any]) -> list[str] | None:
    return [f"I could not read that: {result['error']}"] if "error" in result else None


def _margins(result: dict[str, Any]) -> list[str]:
    if (error := _error(result)) is not None:
        return error
    trades = result.get("trades", [])
    if not trades:
        return [f"No station trade at {result['hub']} pays after fees right now."]
    lines = [f"Best station trades at {result['hub']} (book {result['book_age_seconds']} s old):"]
    lines.extend(
        f"- {t['type']}: buy order at {t['buy_order_at_isk']} ISK, "
        f"sell order at {t['sell_order_at_isk']} ISK, "
        f"about {t['daily_profit_isk']} ISK a day"
        for t in trades
    )
    return lines


def _hauls(result: dict[str, Any]) -> list[str]:
    if (error := _error(result)) is not None:
        return error
    hauls = result.get("hauls", [])
    if not hauls:
        return ["No haul between the hubs pays after tax right now."]
    lines = ["Best hauls now:"]
    lines.extend(
        f"- {h['type']} from {h['from']} to {h['to']} ({h['jumps']} jumps): {h['units']} units for "
        f"{h['cost_isk']} ISK, profit {h['profit_isk']} ISK ({h['profit_per_jump_isk']} ISK a jump)"
        for h in hauls
    )
    return lines


def _execution(result: dict[str, Any]) -> list[str]:
    if (error := _error(result)) is not None:
        return error
    verb = "Buying" if result["side"] == "buy" else "Selling"
    if not result["filled"]:
        return [f"{verb} {result['type']} at {result['hub']}: the book has no orders for it."]
    short = "" if result["filled"] == result["requested"] else f" (only {result['filled']} available)"
    return [
        f"{verb} {result['filled']} {result['type']} at {result['hub']}{short}: {result['total_isk']} ISK in "
        f"total, {result['average_price_isk']} ISK on average, the last unit at {result['worst_price_isk']} "
        f"ISK (book {result['book_age_seconds']} s old)."
    ]


def _history(result: dict[str, Any]) -> list[str]:
    if (error := _error(result)) is not None:
        return error
    days = result.get("days", [])
    if not days:
        return [f"No market history of {result['type']} is stored for {result['region_of_hub']}'s region."]
    last = days[-1]
    return [
        f"{result['type']} around {result['region_of_hub']}: {len(days)} days of history; on {last['date']} "
        f"the average was {last['average_isk']} ISK (low {last['lowest_isk']}, high {last['highest_isk']}), "
        f"{last['volume']} units traded."
    ]
