"""Helpers of the analytics product tests (goals, funnels, filters, props, export, sharing): visits of
yesterday (inside every raw tier) built event by event, stored through the ingest flush."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from pentad.apps.analytics.ingest import EventRow
from tests.factories import Account

YESTERDAY = (datetime.now(UTC) - timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
DAY = YESTERDAY.date().isoformat()
RANGE = f"period=custom&from={DAY}&to={DAY}"


def visit(
    site_key: int, visitor: int, steps: list[tuple[str, str]], *, minute: int = 0, **facts: Any
) -> list[EventRow]:
    """One visit: (event name, path) steps a minute apart; the first carries `facts` of the source kind
    (source, referrer_host, utm_*) and every one the visitor's (country, device, ...), props per step via
    `props` (a list) and revenue via `revenue` (a list of (micros, currency) or None)."""
    props: list[dict[str, str] | None] = facts.pop("props", [None] * len(steps))
    revenue: list[tuple[int, str] | None] = facts.pop("revenue", [None] * len(steps))
    arrival = {
        k: facts.pop(k) for k in list(facts) if k in ("source", "referrer_host") or k.startswith("utm_")
    }
    rows = []
    start = int(YESTERDAY.timestamp() * 1000) + minute * 60_000
    for index, (name, path) in enumerate(steps):
        paid = revenue[index]
        rows.append(
            EventRow(
                site_key=site_key,
                ts=start + index * 60_000,
                visitor_id=visitor,
                name=name,
                hostname="shop.example",
                path=path,
                props=props[index],
                revenue_micros=paid[0] if paid else None,
                currency=paid[1] if paid else None,
                **(arrival if index == 0 else {}),
                **facts,
            )
        )
    return rows


async def add_goal(client: httpx.AsyncClient, owner: Account, site: dict[str, str], **body: Any) -> str:
    response = await client.post(f"/api/analytics/sites/{site['id']}/goals", json=body, headers=owner.headers)
    assert response.status_code == 201, response.text
    goal_id: str = response.json()["id"]
    return goal_id
