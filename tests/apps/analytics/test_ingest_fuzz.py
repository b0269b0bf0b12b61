"""The ingest endpoint never answers 5xx, whatever a client sends: seeded random mutations of a valid
event (wrong types in every field, truncations, random bytes, huge and odd values) all get 202 or a
problem+json 4xx, and a 4xx stores nothing. Runs on SQLite only: it exercises parsing, not SQL."""

from __future__ import annotations

import json
import random
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from pentad.apps.analytics.models import AnalyticsEvent
from pentad.core.platform import Platform

EXAMPLES = 300
ODD_VALUES: list[Any] = [
    None, True, 0, -1, 2**63, 1.5e308, "", " ", "x" * 5000, "\u0000", "\ud7ff", "💥", [], {}, [1, "a"],
    {"a": {"b": [None]}}, "javascript:alert(1)", "http://", "https://shop.example", "//shop.example/x",
    "https://shop.example:99999/", "https://[::1/", "ftp://shop.example/", "https://shop.example/%ff",
]  # fmt: skip
FIELDS = ["n", "u", "d", "r", "p", "v", "w", "ts", "extra"]


def _valid() -> dict[str, Any]:
    return {
        "n": "pageview",
        "u": "https://shop.example/a?utm_source=x",
        "d": "shop.example",
        "r": "https://www.google.com/",
        "p": {"k": "v"},
        "v": {"amount": "1.50", "currency": "EUR"},
        "ts": int(time.time() * 1000) - 1000,
    }


def _mutation(rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    body = _valid()
    if kind == 5:  # odd URLs
        body["u"], body["r"] = rng.choice(ODD_VALUES[16:]), rng.choice(ODD_VALUES[16:])
    elif kind == 0:  # a field gets an odd value
        body[rng.choice(FIELDS)] = rng.choice(ODD_VALUES)
    elif kind == 1:  # nested odd values
        body["p"] = {rng.choice(["", "k", "x" * 3000]): rng.choice(ODD_VALUES)}
        body["v"] = rng.choice(
            [{"amount": rng.choice(ODD_VALUES), "currency": "EUR"}, rng.choice(ODD_VALUES)]
        )
    elif kind == 2:  # a truncated body
        raw = json.dumps(body).encode()
        return raw[: rng.randrange(len(raw))]
    elif kind == 3:  # random bytes
        return bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
    else:  # fields dropped
        for field in rng.sample(FIELDS[:8], rng.randrange(1, 4)):
            body.pop(field, None)
    return json.dumps(body, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")


async def test_no_body_gets_a_5xx(
    client: httpx.AsyncClient, platform: Platform, site: dict[str, str], database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("parsing, not SQL: SQLite is enough")
    rng = random.Random(20261204)
    refused = stored_expected = 0
    for _ in range(EXAMPLES):
        body = _mutation(rng)
        headers = {
            "Content-Type": "text/plain",
            "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
        }
        if rng.random() < 0.2:
            headers["Origin"] = str(rng.choice(ODD_VALUES[16:]))
        response = await client.post("/api/analytics/event", content=body, headers=headers)
        assert response.status_code < 500, (body[:200], response.text)
        if response.status_code == 202 and "pentad-dropped" not in response.headers:
            stored_expected += 1
        if response.status_code != 202:
            refused += 1
            assert 400 <= response.status_code < 500
            assert response.headers["content-type"].startswith("application/problem+json"), body[:200]
    assert refused > EXAMPLES // 3  # the mutations are mostly garbage
    await platform.ingest.flush()
    async with platform.database.transaction(writes=False) as session:
        stored = int(await session.scalar(select(func.count()).select_from(AnalyticsEvent)) or 0)
    assert stored == stored_expected > 0
