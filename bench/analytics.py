"""analytics, in-process on SQLite: the CPU one tracked event costs on the public ingest route (visitor
facts, validation, the durable spool append) beside the CPU of `GET /healthz` through the same stack and
client (the baseline every request pays), and the cost of the dashboard's top stats for today read
from the rollups beside the same figures computed from the raw events (the baseline the rollups replace).

    .venv/bin/python bench/analytics.py     # ~1 min; writes bench/results/analytics.{json,md}
    BENCH_ANALYTICS_EVENTS=5000 .venv/bin/python bench/analytics.py
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from pentad.app import create_app
from pentad.apps import enabled_apps
from pentad.apps.analytics import query
from pentad.apps.analytics.models import AnalyticsSite
from pentad.apps.analytics.tasks import run_rollups
from pentad.core import audit
from pentad.core.auth.service import AuthService
from pentad.core.config import Settings
from pentad.core.db.migrate import upgrade

RESULTS = Path(__file__).parent / "results"
EVENTS = int(os.environ.get("BENCH_ANALYTICS_EVENTS", "3000"))
QUERIES = int(os.environ.get("BENCH_ANALYTICS_QUERIES", "20"))
AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
)
REFERRERS = ("", "https://www.google.com/", "https://t.co/x", "https://news.example.org/a")


def _settings(data_dir: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=data_dir,
        database={"url": f"sqlite+aiosqlite:///{data_dir / 'pentad.db'}"},  # type: ignore[arg-type]
        log={"level": "WARNING"},  # type: ignore[arg-type]
        ratelimit={"enabled": False},  # type: ignore[arg-type]
        security={"trusted_proxies": ["127.0.0.1"]},  # type: ignore[arg-type]
        jobs={"in_process_worker": False},  # type: ignore[arg-type]
        analytics={"max_clock_skew": 86_400},  # type: ignore[arg-type]
        apps=["analytics"],
    )


def _cpu_us(started: float, count: int) -> float:
    return round((time.process_time() - started) / count * 1e6, 1)


async def measure(data_dir: Path) -> dict[str, Any]:
    settings = _settings(data_dir)
    await asyncio.to_thread(upgrade, settings.database.url, enabled_apps(settings))
    app = create_app(settings)
    platform = app.state.platform
    await platform.open_resources()
    async with platform.database.transaction() as session:
        service = AuthService(session, platform)
        owner = await service.create_user(
            email=f"owner-{uuid.uuid4().hex[:6]}@example.com", password="bench password long",
            actor=audit.SYSTEM, roles=["member"],
        )  # fmt: skip
        _, key = await service.create_api_key(
            owner, name="bench", scopes=["*"], expires_in_days=None, actor=audit.SYSTEM
        )
    rng = random.Random(7)
    now_ms = int(time.time() * 1000)
    figures: dict[str, Any] = {"events": EVENTS}
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        headers = {"Authorization": f"Bearer {key}"}
        created = await client.post("/api/analytics/sites", json={"domain": "shop.example"}, headers=headers)
        assert created.status_code == 201, created.text

        bodies = []
        for index in range(EVENTS):
            body = {
                "n": "pageview", "u": f"https://shop.example/p/{rng.randrange(200)}", "d": "shop.example",
                "r": rng.choice(REFERRERS), "ts": now_ms - rng.randrange(23 * 3600 * 1000),
            }  # fmt: skip
            address = f"{rng.randrange(1, 223)}.{rng.randrange(256)}.{rng.randrange(256)}.{index % 250 + 1}"
            bodies.append((json.dumps(body).encode(), address, rng.choice(AGENTS)))

        async def ingest(item: tuple[bytes, str, str]) -> None:
            content, address, agent = item
            answer = await client.post(
                "/api/analytics/event", content=content,
                headers={"Content-Type": "text/plain", "User-Agent": agent, "X-Forwarded-For": address},
            )  # fmt: skip
            if answer.status_code != 202:
                raise SystemExit(f"ingest answered {answer.status_code}: {answer.text[:200]}")

        for item in bodies[:50]:  # warm up: parsers, caches, spool
            await ingest(item)
        for _ in range(50):
            await client.get("/healthz")
        started = time.process_time()
        for _ in range(EVENTS):
            await client.get("/healthz")
        figures["healthz_cpu_us"] = _cpu_us(started, EVENTS)
        started, wall = time.process_time(), time.perf_counter()
        for item in bodies:
            await ingest(item)
        figures["ingest_cpu_us"] = _cpu_us(started, EVENTS)
        figures["ingest_wall_us"] = round((time.perf_counter() - wall) / EVENTS * 1e6, 1)

    await platform.ingest.flush()
    report = await run_rollups(platform)
    figures["rollup_report"] = str(report)
    async with platform.database.transaction() as session:
        site_key = (await session.execute(select(AnalyticsSite.key))).scalar_one()
        span = query.resolve_range("day", "UTC", now=datetime.now(UTC))
        timeout = 1800

        async def timed(label: str, work: Any) -> Any:
            result = await work()  # warm
            started, wall = time.process_time(), time.perf_counter()
            for _ in range(QUERIES):
                result = await work()
            figures[f"{label}_cpu_ms"] = round((time.process_time() - started) / QUERIES * 1e3, 2)
            figures[f"{label}_wall_ms"] = round((time.perf_counter() - wall) / QUERIES * 1e3, 2)
            return result

        planned = await timed(
            "totals_rollups",
            lambda: query.totals(session, site_key, span, timeout, query.Planning(now=datetime.now(UTC))),
        )
        raw = await timed("totals_raw", lambda: query.raw_totals(session, site_key, span, timeout))
        figures["pageviews_rollups"], figures["pageviews_raw"] = planned.pageviews, raw.pageviews
        if planned.pageviews != raw.pageviews:
            raise SystemExit(f"rollups count {planned.pageviews} pageviews, raw events {raw.pageviews}")
    await platform.close()
    return figures


def write(figures: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    figures = {"measured_at": stamp, "load_average": os.getloadavg()[0], **figures}
    (RESULTS / "analytics.json").write_text(json.dumps(figures, indent=2) + "\n")
    ingest_ratio = figures["ingest_cpu_us"] / figures["healthz_cpu_us"]
    query_ratio = figures["totals_rollups_cpu_ms"] / figures["totals_raw_cpu_ms"]
    lines = [
        "# analytics: ingest and top stats, in-process on SQLite",
        "",
        f"{stamp} · {figures['events']} events from varied addresses and agents over 23 h · load average "
        f"{figures['load_average']:.2f} · `.venv/bin/python bench/analytics.py`",
        "",
        "| what | CPU | wall | baseline (same run) | ratio |",
        "|---|---:|---:|---|---:|",
        f"| POST /api/analytics/event (202, durable) | {figures['ingest_cpu_us']} µs | "
        f"{figures['ingest_wall_us']} µs | GET /healthz {figures['healthz_cpu_us']} µs | "
        f"{ingest_ratio:.2f}x |",
        f"| top stats for today (UTC), from rollups | {figures['totals_rollups_cpu_ms']} ms | "
        f"{figures['totals_rollups_wall_ms']} ms | from raw events {figures['totals_raw_cpu_ms']} ms | "
        f"{query_ratio:.2f}x |",
        "",
        f"Pageviews counted: rollups {figures['pageviews_rollups']}, raw {figures['pageviews_raw']} "
        "(must match). "
        f"One core at the ingest route's CPU takes about {1e6 / figures['ingest_cpu_us']:.0f} events/s "
        "(the plan's aim: 2,000/s, i.e. <= 500 µs per event through the whole stack).",
    ]
    (RESULTS / "analytics.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        write(asyncio.run(measure(Path(directory))))


if __name__ == "__main__":
    main()
