"""analytics at the issue's scale, each figure beside a baseline measured in the same run. Four parts
(BENCH_ANALYTICS_PARTS, default all; a part not run keeps its previous figures in the results):

- `cpu`: in-process on SQLite, the CPU one tracked event costs on the public ingest route (visitor facts,
  validation, the durable spool append) beside `GET /healthz` through the same stack and client, and the
  top stats for today from the rollups beside the same figures from the raw events.
- `ingest`: over HTTP against a real `pentad serve` (one worker, SQLite, pinned to CPU 1, the load
  generator on CPU 0): accepted events/s at saturation (closed loop), then p50/p99 accept latency open loop
  at BENCH_INGEST_RATE (2,000) events/s; baseline `GET /healthz` under the same load generator, the
  same way. Afterwards the server is stopped and the stored rows are counted: stored must equal accepted.
- `dashboard`: BENCH_DASHBOARD_EVENTS (10,000,000) events over the last 30 days plus a tenth as many
  over the 335 days before, written once through the real flush (`flush_events`) and rollup
  (`run_rollups`) code and cached under bench/.cache/ (generation time recorded); then a real `pentad
  serve` and the dashboard's rolled-up requests as its page issues them (aggregate with the previous
  period, timeseries and drops in parallel, then the 17 breakdowns, the goal conversions, the custom
  property names and one property's values in parallel), for 30 days and 12 months; the first load after
  the server starts (cold cache) and BENCH_DASHBOARD_LOADS (30) more (warm), the open hour filled at the
  data set's hourly rate first when it has no events. Baseline: as many requests,
  in the same pattern, to `GET /healthz`: the HTTP stack's floor, so the ratio is what reading the data
  costs.
- `tick`: one rollup tick over the dashboard's data set (its last day's busiest hour made dirty again, then
  `run_rollups`), CPU and the event loop's longest stall, beside `compute_hours` of that hour alone.
- `size`: the tracker as served, gzip -9 and brotli, beside a pageview-only beacon script.
- `filtered`: in-process on SQLite, BENCH_FILTERED_EVENTS (1,000,000) events over the last 30 days
  (cached under bench/.cache/), a filtered dashboard load over 30 days — top stats, time series, the seven
  breakdowns and the goal conversions — for three kinds of filter (a visitor's fact, a page, a visit's
  source): answered by the database (pushdown.py: window functions and GROUP BYs) beside the baseline,
  the same answers from filters.py's Python engine (the range's events read into Python), which must
  agree. Wall and CPU per load (CPU is robust on a shared machine).

    BENCH_ANALYTICS_PARTS=dataset .venv/bin/python bench/analytics.py   # generate the data set only
    .venv/bin/python bench/analytics.py       # all parts at the issue's scale (generation: see results)
    BENCH_ANALYTICS_PARTS=ingest BENCH_SECONDS=3 .venv/bin/python bench/analytics.py
    BENCH_ANALYTICS_PARTS=dashboard BENCH_DASHBOARD_EVENTS=200000 .venv/bin/python bench/analytics.py
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import math
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qsl

import brotli
import httpx
from sqlalchemy import func, select

import chat
import realtime_fanout
from pentad.app import create_app
from pentad.apps import enabled_apps
from pentad.apps.analytics import export, filters, query, rollups
from pentad.apps.analytics.ingest import EVENTS, EventRow, flush_events
from pentad.apps.analytics.models import AnalyticsDirtyBucket, AnalyticsEvent, AnalyticsSite
from pentad.apps.analytics.settings import AnalyticsSettings
from pentad.apps.analytics.tasks import run_rollups
from pentad.apps.analytics.tracker import SOURCE, build
from pentad.core import audit
from pentad.core.auth.service import AuthService
from pentad.core.config import Settings
from pentad.core.db.migrate import upgrade
from pentad.core.ingest import FlushContext
from realtime_fanout import BenchmarkError, Process

# The server on CPU 1, the load from CPU 0 (issue 13's method); the shared helpers read these at call time.
realtime_fanout.SERVER_CPU = "1"
chat.CLIENT_CPU = "0"

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"
CACHE = BENCH_DIR / ".cache"
VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
DOMAIN = "shop.example"
EMAIL = "bench@example.com"
ALL_PARTS = ("cpu", "ingest", "dashboard", "tick", "size", "filtered")
EXTRA_PARTS = ("dataset",)
"""`dataset`: only generate the dashboard's data set into bench/.cache/ (a long job best run ahead)."""
PARTS = [part.strip() for part in os.environ.get("BENCH_ANALYTICS_PARTS", ",".join(ALL_PARTS)).split(",")]
EVENTS_CPU = int(os.environ.get("BENCH_ANALYTICS_EVENTS", "3000"))
QUERIES = int(os.environ.get("BENCH_ANALYTICS_QUERIES", "20"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
INGEST_RATE = float(os.environ.get("BENCH_INGEST_RATE", "2000"))
DASHBOARD_EVENTS = int(os.environ.get("BENCH_DASHBOARD_EVENTS", "10000000"))
DASHBOARD_LOADS = int(os.environ.get("BENCH_DASHBOARD_LOADS", "30"))
GENERATE_BATCH = 5000
FILTERED_EVENTS = int(os.environ.get("BENCH_FILTERED_EVENTS", "1000000"))
FILTERED_LOADS = int(os.environ.get("BENCH_FILTERED_LOADS", "3"))
FILTER_SETS = (("country:is:DE",), ("page:is:/p/1",), ("source:is:Google",))
HOUR_MS = 3_600_000
AIM = {
    "ingest_per_s": 2000,
    "ingest_p99_ms": 25.0,
    "dashboard_30d_p95_ms": 300.0,
    "dashboard_12mo_ms": 1000.0,
    "tracker_gzip_bytes": 1024,
}
AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
)
REFERRERS = ("", "https://www.google.com/", "https://t.co/x", "https://news.example.org/a", "")
PANELS = ("pages", "sources", "countries", "devices", "browsers", "os", "events")
"""The breakdowns of a filtered load (part `filtered`)."""
DASHBOARD_BREAKDOWNS = export.BREAKDOWN_PANELS
"""Every breakdown panel of the dashboard page (all rolled up)."""
GOALS = (
    {"kind": "event", "event_name": "Signup", "currency": "EUR"},
    {"kind": "pageview", "path": "/p/1*"},
    {"kind": "pageview", "path": "/p/42"},
)
"""The data sets' goals: a custom event with revenue, a page pattern, one page."""
"""The dashboard page's breakdown panels, in its order (analytics_dashboard.html)."""
PAGEVIEW_BEACON = (
    '(function(){fetch("https://pentad.example/api/analytics/event",{method:"POST",keepalive:true,'
    'headers:{"Content-Type":"text/plain"},body:JSON.stringify({n:"pageview",u:location.href,'
    "d:location.hostname,r:document.referrer||null})})})();"
)
"""The smallest script that reports a pageview: the floor the tracker's features sit on."""


def _terminate_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # every `finally` (which stops the servers) still runs


def log(message: str) -> None:
    print(message, flush=True)


# ----------------------------------------------------------------------------- shared set-up


def _settings(data_dir: Path, **extra: Any) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=data_dir,
        database={"url": f"sqlite+aiosqlite:///{data_dir / 'pentad.db'}"},  # type: ignore[arg-type]
        log={"level": "WARNING"},  # type: ignore[arg-type]
        ratelimit={"enabled": False},  # type: ignore[arg-type]
        security={"trusted_proxies": ["127.0.0.1"]},  # type: ignore[arg-type]
        jobs={"in_process_worker": False},  # type: ignore[arg-type]
        analytics={"max_clock_skew": 86_400, **extra},  # type: ignore[arg-type]
        apps=["analytics"],
    )


async def _owner_and_site(app: Any) -> tuple[str, str]:
    """An owner with an API key (returned) and the site DOMAIN (its id returned) with GOALS, in-process."""
    platform = app.state.platform
    async with platform.database.transaction() as session:
        service = AuthService(session, platform)
        owner = await service.create_user(
            email=EMAIL, password="bench password long", actor=audit.SYSTEM, roles=["member"]
        )
        _, key = await service.create_api_key(
            owner, name="bench", scopes=["*"], expires_in_days=None, actor=audit.SYSTEM
        )
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        created = await client.post(
            "/api/analytics/sites", json={"domain": DOMAIN}, headers={"Authorization": f"Bearer {key}"}
        )
        if created.status_code != 201:
            raise BenchmarkError(f"creating the site answered {created.status_code}: {created.text[:300]}")
        site_id = str(created.json()["id"])
        for goal in GOALS:
            made = await client.post(
                f"/api/analytics/sites/{site_id}/goals", json=goal, headers={"Authorization": f"Bearer {key}"}
            )
            if made.status_code != 201:
                raise BenchmarkError(f"adding a goal answered {made.status_code}: {made.text[:300]}")
    return key, site_id


def server_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = chat.pentad_env(data_dir, f"sqlite+aiosqlite:///{data_dir / 'pentad.db'}", apps="analytics")
    env["PENTAD_SECURITY__TRUSTED_PROXIES"] = "127.0.0.1"  # the load generator plays the visitors' proxy
    env.update(extra)
    return env


@contextlib.contextmanager
def serving(data_dir: Path, log_path: Path, env: dict[str, str]) -> Iterator[tuple[Process, int]]:
    """`pentad serve`, one worker, pinned to its CPU, until the block ends."""
    port = realtime_fanout.free_port()
    command = [str(VENV_BIN / "pentad"), "serve", "--host", HOST, "--port", str(port), "--workers", "1"]
    server = Process("pentad serve", command, log_path, env, data_dir, ready_path="/readyz")
    with realtime_fanout.running(server, ports=[port]):
        yield server, port


def _rng_address(rng: random.Random) -> str:
    return f"{rng.randrange(1, 223)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


# ----------------------------------------------------------------------------- part: cpu


def _cpu_us(started: float, count: int) -> float:
    return round((time.process_time() - started) / count * 1e6, 1)


async def _measure_cpu(data_dir: Path) -> dict[str, Any]:
    settings = _settings(data_dir)
    await asyncio.to_thread(upgrade, settings.database.url, enabled_apps(settings))
    app = create_app(settings)
    platform = app.state.platform
    await platform.open_resources()
    await _owner_and_site(app)
    rng = random.Random(7)
    now_ms = int(time.time() * 1000)
    figures: dict[str, Any] = {"events": EVENTS_CPU}
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        bodies = []
        for _ in range(EVENTS_CPU):
            body = {
                "n": "pageview", "u": f"https://{DOMAIN}/p/{rng.randrange(200)}", "d": DOMAIN,
                "r": rng.choice(REFERRERS), "ts": now_ms - rng.randrange(23 * 3600 * 1000),
            }  # fmt: skip
            bodies.append((json.dumps(body).encode(), _rng_address(rng), rng.choice(AGENTS)))

        async def ingest(item: tuple[bytes, str, str]) -> None:
            content, address, agent = item
            answer = await client.post(
                "/api/analytics/event", content=content,
                headers={"Content-Type": "text/plain", "User-Agent": agent, "X-Forwarded-For": address},
            )  # fmt: skip
            if answer.status_code != 202 or "pentad-dropped" in answer.headers:
                raise BenchmarkError(f"ingest answered {answer.status_code}: {answer.text[:200]}")

        for item in bodies[:50]:  # warm up: parsers, caches, spool
            await ingest(item)
        for _ in range(50):
            await client.get("/healthz")
        started = time.process_time()
        for _ in range(EVENTS_CPU):
            await client.get("/healthz")
        figures["healthz_cpu_us"] = _cpu_us(started, EVENTS_CPU)
        started, wall = time.process_time(), time.perf_counter()
        for item in bodies:
            await ingest(item)
        figures["ingest_cpu_us"] = _cpu_us(started, EVENTS_CPU)
        figures["ingest_wall_us"] = round((time.perf_counter() - wall) / EVENTS_CPU * 1e6, 1)

    await platform.ingest.flush()
    await run_rollups(platform)
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
            raise BenchmarkError(f"rollups count {planned.pageviews} pageviews, raw events {raw.pageviews}")
    await platform.close()
    return figures


def part_cpu(work_dir: Path) -> dict[str, Any]:
    data_dir = work_dir / "cpu"
    data_dir.mkdir()
    return asyncio.run(_measure_cpu(data_dir))


# ----------------------------------------------------------------------------- part: ingest


def _ingest_requests(count: int) -> list[dict[str, Any]]:
    """`count` request templates: pageviews (and a few custom events) from varied addresses, agents,
    pages and referrers, as a trusted proxy in front of Pentad would pass them on."""
    rng = random.Random(11)
    found = []
    for index in range(count):
        body: dict[str, Any] = {
            "n": "pageview" if index % 10 else "Signup",
            "u": f"https://{DOMAIN}/p/{rng.randrange(300)}?utm_source={rng.choice(['mail', 'ads', ''])}",
            "d": DOMAIN,
            "r": rng.choice(REFERRERS) or None,
        }
        if index % 10 == 0:
            body["p"] = {"plan": rng.choice(["free", "pro"])}
        headers = {"User-Agent": rng.choice(AGENTS), "X-Forwarded-For": _rng_address(rng)}
        request = chat.request("POST", "/api/analytics/event", None, json.dumps(body), label="event")
        found.append({**request, "headers": headers})
    return found


def _load(
    server: Process, port: int, requests: list[dict[str, Any]], expect: int, *, rate: float | None, count: int
) -> dict[str, Any]:
    warmup = max(200, count // 10)
    figures = chat.run_http(
        server, port, requests, expect=[expect], warmup=warmup, count=count, rate=rate, connections=64
    )
    figures["warmup"] = warmup
    return figures


def _summary(figures: dict[str, Any]) -> dict[str, Any]:
    keys = ("requests", "warmup", "ok", "failed", "statuses", "failures", "rate_target", "achieved_rate",
            "completed_per_s", "p50_ms", "p90_ms", "p99_ms", "max_ms", "server_cpu_pct",
            "server_cpu_ms_per_request", "server_capacity_per_s", "client_cpu_pct")  # fmt: skip
    return {key: figures.get(key) for key in keys}


def _stored_counts(database: Path) -> tuple[int, dict[str, int]]:
    with contextlib.closing(sqlite3.connect(database)) as connection:
        stored = connection.execute("SELECT count(*) FROM analytics_events").fetchone()[0]
        drops = dict(connection.execute("SELECT reason, sum(count) FROM analytics_drops GROUP BY reason"))
    return int(stored), {str(reason): int(count) for reason, count in drops.items()}


def part_ingest(work_dir: Path) -> dict[str, Any]:
    data_dir = work_dir / "ingest"
    data_dir.mkdir()
    settings = _settings(data_dir)

    async def prepare() -> None:
        await asyncio.to_thread(upgrade, settings.database.url, enabled_apps(settings))
        app = create_app(settings)
        await app.state.platform.open_resources()
        await _owner_and_site(app)
        await app.state.platform.close()

    asyncio.run(prepare())
    requests = _ingest_requests(2000)
    healthz = [chat.request("GET", "/healthz", None, label="healthz")]
    saturation_count = max(2000, int(SECONDS * 4000))
    rate_count = int(SECONDS * INGEST_RATE)
    figures: dict[str, Any] = {"seconds": SECONDS, "rate": INGEST_RATE, "pinned": realtime_fanout.can_pin()}
    # The web process serves requests only; a `pentad worker` beside it (on the load generator's CPU) runs
    # the rollups of what is stored, as a deployment that measures ingest per core runs them.
    env = server_env(data_dir, PENTAD_JOBS__IN_PROCESS_WORKER="false")
    worker_log = (work_dir / "ingest-worker.log").open("wb")
    worker = subprocess.Popen(
        realtime_fanout.pinned(chat.CLIENT_CPU, [str(VENV_BIN / "pentad"), "worker"]),
        env=env,
        cwd=data_dir,
        stdin=subprocess.DEVNULL,
        stdout=worker_log,
        stderr=subprocess.STDOUT,
    )
    try:
        figures |= _ingest_loads(data_dir, work_dir, env, requests, healthz, saturation_count, rate_count)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
        worker_log.close()
    accepted = sum(
        figures[name]["ok"] + figures[name]["warmup"] for name in ("ingest_saturation", "ingest_rate")
    )
    stored, drops = _stored_counts(data_dir / "pentad.db")
    figures |= {"accepted": accepted, "stored": stored, "drops": drops, "rolled_up": _rolled_up(data_dir)}
    if stored != accepted:
        log(f"  WARNING: {accepted} events accepted (202, warm-ups included), {stored} stored")
    return figures


def _rolled_up(data_dir: Path) -> int:
    """Pageviews and events in the hourly rollups (the worker's work, checked to have happened)."""
    with contextlib.closing(sqlite3.connect(data_dir / "pentad.db")) as connection:
        found = connection.execute(
            "SELECT COALESCE(SUM(pageviews + events), 0) FROM analytics_rollup_hourly WHERE dim = 0"
        ).fetchone()
    return int(found[0])


def _ingest_loads(
    data_dir: Path,
    work_dir: Path,
    env: dict[str, str],
    requests: list[Any],
    healthz: list[Any],
    saturation_count: int,
    rate_count: int,
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with serving(data_dir, work_dir / "ingest.log", env) as (server, port):
        log(f"  ingest: saturation, closed loop, 64 connections, {saturation_count} events")
        figures["ingest_saturation"] = _summary(
            _load(server, port, requests, 202, rate=None, count=saturation_count)
        )
        log(f"  healthz: saturation, {saturation_count} requests")
        figures["healthz_saturation"] = _summary(
            _load(server, port, healthz, 200, rate=None, count=saturation_count)
        )
        log(f"  ingest: open loop at {INGEST_RATE:.0f}/s for {SECONDS} s")
        figures["ingest_rate"] = _summary(
            _load(server, port, requests, 202, rate=INGEST_RATE, count=rate_count)
        )
        log(f"  healthz: open loop at {INGEST_RATE:.0f}/s for {SECONDS} s")
        figures["healthz_rate"] = _summary(
            _load(server, port, healthz, 200, rate=INGEST_RATE, count=rate_count)
        )
        server.stop()  # SIGTERM: the streams flush what they hold before the process ends
    return figures


# ----------------------------------------------------------------------------- part: dashboard

COUNTRIES = ("US", "DE", "FR", "GB", "IN", "BR", "JP", "CA", "NL", "ES", "IT", "PL", "SE", "AU", None)
DEVICES = (
    ("desktop", "Windows", "Chrome"),
    ("desktop", "Mac OS X", "Safari"),
    ("mobile", "iOS", "Mobile Safari"),
    ("mobile", "Android", "Chrome Mobile"),
    ("desktop", "Linux", "Firefox"),
    ("tablet", "iOS", "Mobile Safari"),
)
SOURCES = (
    (None, None, "direct"),
    ("google.com", "Google", "search"),
    ("t.co", "Twitter", "social"),
    ("news.example.org", "news.example.org", "referral"),
    ("bing.com", "Bing", "search"),
)


def _visits(rng: random.Random, start_ms: int, end_ms: int, events: int, visitors: int) -> Iterator[EventRow]:
    """About `events` rows in visits of 1 to 6 pageviews (a tenth with a custom event) from a pool of
    returning visitors, hour by hour over [start_ms, end_ms) with a daily swing (in time order, as they
    would arrive); each visit's events 10 to 120 s apart."""
    hours = max(1, (end_ms - start_ms) // HOUR_MS)
    weights = [1 + 0.6 * math.sin(2 * math.pi * (hour % 24) / 24) for hour in range(hours)]
    per_weight = events / sum(weights)
    known: dict[int, tuple[str, str, str, str | None]] = {}
    # copies of one row (pydantic's model_construct costs several times the copy's CPU)
    template = EventRow.model_construct(
        site_key=0, ts=0, visitor_id=0, hostname=DOMAIN, name="pageview", path="/", referrer_host=None,
        referrer_path=None, source=None, medium="direct", utm_source=None, utm_medium=None,
        utm_campaign=None, utm_content=None, utm_term=None, country=None, region=None, city=None,
        device=None, browser=None, browser_version="131", os=None, os_version=None, props=None,
        revenue_micros=None, currency=None,
    )  # fmt: skip
    carry = 0.0
    for hour, weight in enumerate(weights):
        quota = weight * per_weight + carry
        count = int(quota)
        carry = quota - count
        made = 0
        while made < count:
            visitor = rng.randrange(visitors)
            facts = known.get(visitor)
            if facts is None:  # a visitor keeps their country, device and browser
                vrng = random.Random(visitor)
                facts = known[visitor] = (*vrng.choice(DEVICES), vrng.choice(COUNTRIES))
            device, os_name, browser, country = facts
            referrer, source, medium = rng.choice(SOURCES)
            ts = start_ms + hour * HOUR_MS + rng.randrange(HOUR_MS)
            for step in range(min(rng.choice((1, 1, 1, 2, 2, 3, 4, 6)), count - made)):
                first = step == 0
                custom = not first and rng.random() < 0.1
                plan = rng.choice(("free", "pro")) if custom else None
                page = int(rng.paretovariate(1.2)) % 2000
                yield template.model_copy(update={
                    # the core's ids rotate at 00:00 UTC: a returning visitor has a new one each day
                    "visitor_id": visitor * 7919 + 1 + (min(ts, end_ms - 1) // 86_400_000) * 10**11,
                    "ts": min(ts, end_ms - 1),
                    "name": "Signup" if custom else "pageview", "path": f"/p/{page}",
                    "referrer_host": referrer if first else None,
                    "referrer_path": "/" if referrer and first else None,
                    "source": source if first else None, "medium": medium if first else "direct",
                    "country": country, "device": device, "browser": browser, "os": os_name,
                    "props": {"plan": plan} if custom else None,
                    "revenue_micros": 9_000_000 if plan == "pro" else None,
                    "currency": "EUR" if plan == "pro" else None,
                })  # fmt: skip
                made += 1
                ts += rng.randrange(10_000, 120_000)


async def _generate(data_dir: Path, events: int) -> dict[str, Any]:
    # Raw kept 400 days while generating, so a year of history is rolled up (as it would have been, day
    # by day, when it was fresh); the server that is measured runs with the default tiers.
    settings = _settings(data_dir, default_retention="raw=400d,hourly=2y")
    await asyncio.to_thread(upgrade, settings.database.url, enabled_apps(settings))
    app = create_app(settings)
    platform = app.state.platform
    await platform.open_resources()
    key, site_id = await _owner_and_site(app)
    async with platform.database.transaction() as session:
        site_key = (await session.execute(select(AnalyticsSite.key))).scalar_one()
    now_ms = int(time.time() * 1000)
    day = 86_400_000
    rng = random.Random(5)
    recent = _visits(rng, now_ms - 30 * day, now_ms, events, max(1000, events // 8))
    older = _visits(rng, now_ms - 365 * day, now_ms - 30 * day, events // 10, max(1000, events // 40))
    counted = {"recent": 0, "older": 0}
    started = time.perf_counter()
    written = 0
    batch: list[EventRow] = []
    for name, stream in (("older", older), ("recent", recent)):  # in time order
        for row in stream:
            counted[name] += 1
            row.site_key = site_key
            batch.append(row)
            if len(batch) == GENERATE_BATCH:
                async with platform.database.transaction() as session:
                    flush = FlushContext(session, platform, EVENTS, uuid.uuid4(), replay=False)
                    await flush_events(flush, batch)
                written += len(batch)
                batch = []
                if written % 500_000 == 0:
                    log(f"  generated {written} events in {time.perf_counter() - started:.0f} s")
    if batch:
        async with platform.database.transaction() as session:
            await flush_events(FlushContext(session, platform, EVENTS, uuid.uuid4(), replay=False), batch)
        written += len(batch)
    flushed = time.perf_counter() - started
    log(f"  {written} events flushed in {flushed:.0f} s; rolling up")
    started = time.perf_counter()
    report = await run_rollups(platform)
    rolled = time.perf_counter() - started
    await platform.close()
    return {
        "events": written, "recent_events": counted["recent"], "older_events": counted["older"],
        "flush_seconds": round(flushed, 1), "rollup_seconds": round(rolled, 1),
        "rollup_hours": report.hours, "rollup_days": report.days, "rollup_months": report.months,
        "flush_events_per_s": round(written / flushed), "api_key": key, "site_id": site_id,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }  # fmt: skip


def _dataset(events: int) -> tuple[Path, dict[str, Any]]:
    """The cached data set of `events` recent events (generated when missing): its folder and manifest."""
    folder = CACHE / f"analytics-dashboard-{events}"
    manifest = folder / "manifest.json"
    if manifest.exists():
        found: dict[str, Any] = json.loads(manifest.read_text())
        generated = datetime.fromisoformat(found["generated_at"])
        if datetime.now(UTC) - generated < timedelta(days=2):
            log(f"  using the data set generated at {found['generated_at']} ({folder})")
            return folder, found
        log("  the cached data set is older than two days (its last 30 days no longer match): generating")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    log(f"  generating {events} events over 30 days (+{events // 10} over the 335 days before) in {folder}")
    found = asyncio.run(_generate(folder, events))
    manifest.write_text(json.dumps(found, indent=2) + "\n")
    return folder, found


async def _page_loads(
    port: int, key: str, paths: list[str], loads: int, period: str
) -> tuple[float, list[float], dict[str, list[float]]]:
    """The dashboard's requests as its page issues them (`paths[:3]` in parallel, then the rest in
    parallel), `loads` + 1 times: (the first load's ms, every later load's ms, ms per path)."""
    per_path: dict[str, list[float]] = {path: [] for path in paths}
    whole: list[float] = []
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
    limits = httpx.Limits(max_connections=10, max_keepalive_connections=10)
    async with httpx.AsyncClient(
        base_url=f"http://{HOST}:{port}", headers=headers, limits=limits, timeout=60
    ) as client:

        async def one(path: str) -> None:
            started = time.perf_counter()
            url, _, query = path.partition("?")
            answer = await client.get(url, params={"period": period, **dict(parse_qsl(query))})
            per_path[path].append((time.perf_counter() - started) * 1000)
            if answer.status_code != 200:
                raise BenchmarkError(f"GET {path} answered {answer.status_code}: {answer.text[:300]}")

        for _ in range(loads + 1):
            started = time.perf_counter()
            await asyncio.gather(*(one(path) for path in paths[:3]))
            await asyncio.gather(*(one(path) for path in paths[3:]))
            whole.append((time.perf_counter() - started) * 1000)
    for values in per_path.values():
        del values[0]
    return whole[0], whole[1:], per_path


def _pcts(values: list[float]) -> dict[str, float | None]:
    found = chat.percentiles(values)
    return {key: found[key] for key in ("p50_ms", "p95_ms", "p99_ms", "max_ms")}


async def _live_hour(folder: Path, manifest: dict[str, Any]) -> int:
    """The open hour's events so far (written through the flush at the data set's hourly rate when the
    hour has none: a data set generated in an earlier hour has nothing there, a live site always has):
    the planner computes that hour from raw events for every question. How many it holds."""
    platform = create_app(_settings(folder)).state.platform
    await platform.open_resources()
    try:
        now_ms = int(time.time() * 1000)
        hour_start = now_ms // HOUR_MS * HOUR_MS
        async with platform.database.transaction(writes=False) as session:
            site_key = (await session.execute(select(AnalyticsSite.key))).scalar_one()
            have = await session.scalar(select(func.count()).where(AnalyticsEvent.ts >= hour_start))
        if have:
            return int(have)
        per_hour = manifest["recent_events"] // (30 * 24)
        stream = _visits(
            random.Random(hour_start),
            hour_start,
            hour_start + HOUR_MS,
            per_hour,
            manifest["recent_events"] // 8,
        )
        rows = [row for row in stream if row.ts < now_ms]
        for row in rows:
            row.site_key = site_key
        for start in range(0, len(rows), GENERATE_BATCH):
            async with platform.database.transaction() as session:
                flush = FlushContext(session, platform, EVENTS, uuid.uuid4(), replay=False)
                await flush_events(flush, rows[start : start + GENERATE_BATCH])
        return len(rows)
    finally:
        await platform.close()


def part_dashboard(work_dir: Path) -> dict[str, Any]:
    folder, manifest = _dataset(DASHBOARD_EVENTS)
    open_hour = asyncio.run(_live_hour(folder, manifest))
    site = manifest["site_id"]
    api = f"/api/analytics/sites/{site}"
    # as the page asks (static/dashboard.js): top stats with the previous period, then every breakdown
    paths = [f"{api}/stats/aggregate?compare=previous", f"{api}/stats/timeseries", f"{api}/drops"]
    paths += [
        f"{api}/stats/breakdown/{panel}?limit={100 if panel == 'countries' else 10}"
        for panel in DASHBOARD_BREAKDOWNS
    ]
    # the goals and properties panels, and a property's values (the panel's second level)
    paths += [f"{api}/stats/goals", f"{api}/stats/props", f"{api}/stats/props?key=plan"]
    figures: dict[str, Any] = {
        "generation": {k: v for k, v in manifest.items() if k not in ("api_key", "site_id")},
        "loads": DASHBOARD_LOADS,
        "open_hour_events": open_hour,
    }
    if realtime_fanout.can_pin():  # the client on the load CPU, as the other parts' load generator
        os.sched_setaffinity(0, {int(chat.CLIENT_CPU)})
    with serving(folder, work_dir / "dashboard.log", server_env(folder)) as (server, port):

        def loaded(targets: list[str], period: str) -> dict[str, Any]:
            """The loads, and the server's CPU per load (robust on a shared machine, unlike wall times)."""
            used = realtime_fanout.process_cpu_seconds(server.pid)
            first, loads, per_path = asyncio.run(
                _page_loads(port, manifest["api_key"], targets, DASHBOARD_LOADS, period)
            )
            cpu_ms = (realtime_fanout.process_cpu_seconds(server.pid) - used) / (DASHBOARD_LOADS + 1) * 1000
            return {
                "first_load_ms": round(first, 1),
                "load": _pcts(loads),
                "server_cpu_ms_per_load": round(cpu_ms, 1),
                "panels": {path.removeprefix(api + "/"): _pcts(values) for path, values in per_path.items()},
            }

        for period in ("30d", "12mo"):
            log(f"  dashboard: period {period}, {DASHBOARD_LOADS} loads after the first")
            figures[period] = loaded(paths, period)
        log("  baseline: the same request pattern to /healthz")
        figures["healthz"] = loaded(["/healthz"] * len(paths), "30d")
        del figures["healthz"]["panels"]
    return figures


# ----------------------------------------------------------------------------- part: filtered


async def _generate_filtered(data_dir: Path, events: int) -> dict[str, Any]:
    """`events` events over the last 30 days (no rollups: filtered answers read raw events), and goals."""
    settings = _settings(data_dir)
    await asyncio.to_thread(upgrade, settings.database.url, enabled_apps(settings))
    app = create_app(settings)
    platform = app.state.platform
    await platform.open_resources()
    _key, site_id = await _owner_and_site(app)
    async with platform.database.transaction() as session:
        site_key = (await session.execute(select(AnalyticsSite.key))).scalar_one()
    now_ms = int(time.time() * 1000)
    rng = random.Random(11)
    started = time.perf_counter()
    batch: list[EventRow] = []
    written = 0
    for row in _visits(rng, now_ms - 30 * 86_400_000, now_ms, events, max(1000, events // 8)):
        row.site_key = site_key
        batch.append(row)
        if len(batch) == GENERATE_BATCH:
            async with platform.database.transaction() as session:
                await flush_events(FlushContext(session, platform, EVENTS, uuid.uuid4(), replay=False), batch)
            written += len(batch)
            batch = []
    if batch:
        async with platform.database.transaction() as session:
            await flush_events(FlushContext(session, platform, EVENTS, uuid.uuid4(), replay=False), batch)
        written += len(batch)
    flushed = time.perf_counter() - started
    await platform.close()
    return {
        "events": written,
        "flush_seconds": round(flushed, 1),
        "site_id": site_id,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


async def _filtered_loads(data_dir: Path, site_id: str) -> dict[str, Any]:
    platform = create_app(_settings(data_dir)).state.platform
    await platform.open_resources()
    try:
        async with platform.database.transaction() as session:
            site = (
                await session.execute(select(AnalyticsSite).where(AnalyticsSite.id == uuid.UUID(site_id)))
            ).scalar_one()
            session.expunge(site)
        span = query.resolve_range("30d", "UTC")
        in_sql = query.options_for(platform, site)
        python = query.Options(in_sql.session_timeout, in_sql.default_tiers, in_sql.planning, pushdown=False)

        async def load(
            chosen: tuple[filters.Filter, ...], options: query.Options
        ) -> tuple[Any, dict[str, float]]:
            answers: list[Any] = []
            timings: dict[str, float] = {}
            async with platform.database.transaction(writes=False) as session:
                for name in ("aggregate", "timeseries", *PANELS, "goals"):
                    started = time.perf_counter()
                    if name == "aggregate":
                        answers.append(await query.site_totals(session, site, span, chosen, options))
                    elif name == "timeseries":
                        answers.append(await query.site_timeseries(session, site, span, chosen, options))
                    elif name == "goals":
                        answers.append(await query.site_goals(session, site, span, chosen, options))
                    else:
                        answers.append(await query.site_breakdown(session, site, span, name, chosen, options))
                    timings[name] = round((time.perf_counter() - started) * 1000, 1)
            return answers, timings

        figures: dict[str, Any] = {}
        for texts in FILTER_SETS:
            chosen = filters.parse_filters(texts)
            label = "&".join(texts)
            log(f"  filtered: {label}")
            cpu, wall = time.process_time(), time.perf_counter()
            expected, python_timings = await load(chosen, python)
            python_figures = {
                "wall_ms": round((time.perf_counter() - wall) * 1000, 1),
                "cpu_ms": round((time.process_time() - cpu) * 1000, 1),
                "slowest": max(python_timings.items(), key=lambda item: item[1]),
            }
            walls: list[float] = []
            cpus: list[float] = []
            sql_timings: dict[str, float] = {}
            for _ in range(FILTERED_LOADS):
                cpu, wall = time.process_time(), time.perf_counter()
                answers, sql_timings = await load(chosen, in_sql)
                walls.append((time.perf_counter() - wall) * 1000)
                cpus.append((time.process_time() - cpu) * 1000)
                if answers != expected:
                    raise BenchmarkError(f"filtered answers differ between SQL and Python for {label}")
            figures[label] = {
                "visits": expected[0].visits,
                "python": python_figures,
                "sql": {
                    "wall_ms": round(sorted(walls)[len(walls) // 2], 1),
                    "cpu_ms": round(sorted(cpus)[len(cpus) // 2], 1),
                    "slowest": max(sql_timings.items(), key=lambda item: item[1]),
                },
            }
        return figures
    finally:
        await platform.close()


def part_filtered(_work_dir: Path) -> dict[str, Any]:
    folder = CACHE / f"analytics-filtered-{FILTERED_EVENTS}"
    manifest_path = folder / "manifest.json"
    manifest: dict[str, Any] | None = None
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if datetime.now(UTC) - datetime.fromisoformat(manifest["generated_at"]) > timedelta(days=2):
            manifest = None
    if manifest is None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        log(f"  generating {FILTERED_EVENTS} events over 30 days in {folder}")
        manifest = asyncio.run(_generate_filtered(folder, FILTERED_EVENTS))
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    figures = asyncio.run(_filtered_loads(folder, manifest["site_id"]))
    return {"generation": {k: v for k, v in manifest.items() if k != "site_id"}, "sets": figures}


def _filtered_lines(filtered: dict[str, Any]) -> list[str]:
    gen = filtered["generation"]
    lines = [
        f"## Filtered dashboard over {gen['events']:,} events, 30 days ({filtered['measured_at']}"
        f"{_loadavg(filtered)})",
        "",
        "In-process on SQLite; one load = top stats, time series, the 7 breakdowns and the goal conversions, "
        f"with the filter. SQL: pushdown.py (median of {FILTERED_LOADS} loads); baseline: the same answers "
        "from filters.py's Python engine (the range's events read into Python), checked equal.",
        "",
        "| filter | visits kept | SQL wall | SQL CPU | slowest SQL panel | Python wall | Python CPU "
        "| speed-up (CPU) |",
        "|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for label, found in filtered["sets"].items():
        sql, python = found["sql"], found["python"]
        lines.append(
            f"| `{label}` | {found['visits']:,} | {sql['wall_ms']} ms | {sql['cpu_ms']} ms | "
            f"{sql['slowest'][0]} {sql['slowest'][1]} ms | {python['wall_ms']} ms | {python['cpu_ms']} ms | "
            f"{_x(python['cpu_ms'], sql['cpu_ms'])} |"
        )
    return [*lines, ""]


# ----------------------------------------------------------------------------- part: size


# ----------------------------------------------------------------------------- part: tick


async def _tick(folder: Path) -> dict[str, Any]:
    """One rollup tick over the dashboard's data set: the busiest hour of its last day made dirty again and
    drained by run_rollups (as the job does after new events), in-process, with the event loop's longest
    stall meanwhile. Baseline: compute_hours of that hour alone, the least a tick must do."""
    platform = create_app(_settings(folder)).state.platform
    await platform.open_resources()
    try:
        timeout = platform.app_settings(AnalyticsSettings).session_timeout
        async with platform.database.transaction(writes=False) as session:
            site_key, last_ts = (
                await session.execute(
                    select(AnalyticsEvent.site_key, func.max(AnalyticsEvent.ts)).group_by(
                        AnalyticsEvent.site_key
                    )
                )
            ).one()
            # the busiest hour of the last day (the last hours may hold only a few minutes of events)
            of_hour = func.floor(AnalyticsEvent.ts / HOUR_MS)
            hour = int(
                (
                    await session.execute(
                        select(of_hour)
                        .where(AnalyticsEvent.ts >= int(last_ts) - 24 * HOUR_MS)
                        .group_by(of_hour)
                        .order_by(func.count().desc())
                        .limit(1)
                    )
                ).scalar_one()
            )
            cpu = time.process_time()
            await rollups.compute_hours(session, site_key, {hour}, timeout)
            baseline_ms = (time.process_time() - cpu) * 1000
        async with platform.database.transaction() as session:
            session.add(AnalyticsDirtyBucket(site_key=site_key, hour=hour))
        stalls: list[float] = []
        ticking = True

        async def watch() -> None:
            last = time.perf_counter()
            while ticking:
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                stalls.append(now - last)
                last = now

        watcher = asyncio.create_task(watch())
        cpu, wall = time.process_time(), time.perf_counter()
        report = await run_rollups(platform)
        tick_cpu_ms, tick_wall_ms = (time.process_time() - cpu) * 1000, (time.perf_counter() - wall) * 1000
        ticking = False
        await watcher
    finally:
        await platform.close()
    return {
        "hours": report.hours, "days": report.days, "months": report.months,
        "tick_cpu_ms": round(tick_cpu_ms, 1), "tick_wall_ms": round(tick_wall_ms, 1),
        "baseline_cpu_ms": round(baseline_ms, 1), "max_stall_ms": round(max(stalls) * 1000, 1),
    }  # fmt: skip


def part_tick(_work_dir: Path) -> dict[str, Any]:
    folder, manifest = _dataset(DASHBOARD_EVENTS)
    return {"events": manifest["events"], **asyncio.run(_tick(folder))}


def _tick_lines(tick: dict[str, Any]) -> list[str]:
    return [
        f"## A rollup tick over {tick['events']:,} events ({tick['measured_at']}{_loadavg(tick)})",
        "",
        "The dashboard's data set; the busiest hour of its last day made dirty again and drained by "
        "`run_rollups`, in-process (what the `analytics.rollup` job does after new events). Baseline: "
        "`compute_hours` of that hour alone (the least a tick must do; also what the dashboard's first "
        "question after a new event costs when that hour is the open one).",
        "",
        "| | CPU | wall | event loop's longest stall |",
        "|---|---:|---:|---:|",
        f"| tick ({tick['hours']} hours, {tick['days']} days, {tick['months']} months recomputed) | "
        f"{tick['tick_cpu_ms']} ms | {tick['tick_wall_ms']} ms | {tick['max_stall_ms']} ms |",
        f"| baseline: the hour alone | {tick['baseline_cpu_ms']} ms | | |",
        f"| ratio | {_x(tick['tick_cpu_ms'], tick['baseline_cpu_ms'])} | | |",
        "",
    ]


def part_size(_work_dir: Path) -> dict[str, Any]:
    tracker = build(tuple(AnalyticsSettings().download_extensions))
    source = SOURCE.read_bytes()

    def sizes(body: bytes) -> dict[str, int]:
        return {
            "raw": len(body),
            "gzip": len(gzip.compress(body, 9, mtime=0)),
            "brotli": len(brotli.compress(body, quality=11)),
        }

    return {
        "tracker_source": sizes(source),
        "tracker": sizes(tracker.body),
        "served_gzip": len(tracker.gzipped),
        "pageview_beacon": sizes(PAGEVIEW_BEACON.encode()),
    }


# ----------------------------------------------------------------------------- results


def _loadavg(part: dict[str, Any]) -> str:
    found = part.get("load_average")
    return f", load average {found:.1f}" if found is not None else ""


def _x(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}x" if value and base else "-"


def _per_s(ms: float | None) -> str:
    return f"{1000 / ms:,.0f}/s" if ms else "-"


def _ingest_lines(ingest: dict[str, Any]) -> list[str]:
    sat, base_sat = ingest["ingest_saturation"], ingest["healthz_saturation"]
    at, base_at = ingest["ingest_rate"], ingest["healthz_rate"]
    cpu, base_cpu = sat["server_cpu_ms_per_request"], base_sat["server_cpu_ms_per_request"]
    done, base_done = sat["completed_per_s"], base_sat["completed_per_s"]
    same = "equal" if ingest["accepted"] == ingest["stored"] else "NOT EQUAL"
    return [
        f"## Ingest over HTTP ({ingest['measured_at']}{_loadavg(ingest)})",
        "",
        "`pentad serve` (one worker, SQLite, pinned to CPU 1; chat.py's load generator on CPU 0, with a "
        "`pentad worker` beside it that rolls up what is stored), events "
        "from 2,000 address/agent/page combinations through a trusted proxy (X-Forwarded-For). On a shared "
        "machine the pinned core is shared too: completed/s and latencies then measure the neighbours; the "
        "server's CPU per request (read from /proc) is the figure that carries over.",
        "",
        "| load | POST /api/analytics/event (202 = durable) | baseline GET /healthz | ratio |",
        "|---|---:|---:|---:|",
        f"| saturation (closed loop, 64 connections): completed/s | {done} | {base_done} | "
        f"{_x(done, base_done)} |",
        f"| server CPU per request at saturation | {cpu} ms | {base_cpu} ms | {_x(cpu, base_cpu)} |",
        f"| one core's capacity at that CPU (1 / CPU per request) | {_per_s(cpu)} | {_per_s(base_cpu)} | |",
        f"| open loop at {ingest['rate']:.0f}/s (achieved {at['achieved_rate']}/s): p50 | "
        f"{at['p50_ms']} ms | {base_at['p50_ms']} ms | {_x(at['p50_ms'], base_at['p50_ms'])} |",
        f"| p99 | {at['p99_ms']} ms | {base_at['p99_ms']} ms | {_x(at['p99_ms'], base_at['p99_ms'])} |",
        f"| max | {at['max_ms']} ms | {base_at['max_ms']} ms | |",
        f"| server CPU at that rate | {at['server_cpu_pct']} % | {base_at['server_cpu_pct']} % | |",
        f"| failed or unanswered | {sat['failed'] + at['failed']} | "
        f"{base_sat['failed'] + base_at['failed']} | |",
        "",
        f"Accepted (202, warm-ups included) {ingest['accepted']}, stored {ingest['stored']} ({same}), "
        f"{ingest.get('rolled_up', '-')} in the worker's rollups by the end; "
        f"drops {ingest['drops'] or 'none'}. Aim: >= {AIM['ingest_per_s']}/s with p99 < "
        f"{AIM['ingest_p99_ms']:.0f} ms (GoatCounter ~100/s).",
        "",
    ]


def _dashboard_lines(dashboard: dict[str, Any]) -> list[str]:
    gen = dashboard["generation"]
    lines = [
        f"## Dashboard over {gen['events']:,} events ({dashboard['measured_at']}{_loadavg(dashboard)})",
        "",
        f"{gen['recent_events']:,} events over the last 30 days and {gen['older_events']:,} over the 335 "
        f"days before, one site, written through `flush_events` ({gen['flush_seconds']} s, "
        f"{gen['flush_events_per_s']:,} events/s) and rolled up by `run_rollups` "
        f"({gen['rollup_seconds']} s: {gen['rollup_hours']} hours, {gen['rollup_days']} days, "
        f"{gen['rollup_months']} months), generated {gen['generated_at']}. A real `pentad serve` (SQLite, "
        f"one worker); one dashboard load = the page's {len(dashboard['30d']['panels'])} requests answered "
        "from rollups (top stats with the previous period, time series and data quality in parallel, then "
        f"the {len(DASHBOARD_BREAKDOWNS)} breakdowns, the goal conversions ({len(GOALS)} goals), the custom "
        f"property names and one property's values in parallel), each timed by the client. The open hour "
        f"holds {dashboard.get('open_hour_events', 0):,} events (written at the data set's hourly rate when "
        "it had none), computed from raw events once for the panels (no event arrives during the loads: "
        "the tick below is what a new one costs). Baseline: as "
        "many `GET /healthz` in the same pattern (the HTTP stack's floor: the ratio is what the data costs).",
        "",
        "| range | first load (cold) | load p50 | load p95 | slowest panel p95 | server CPU per load "
        "| baseline p95 | baseline CPU per load | ratio (p95) |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    base = dashboard["healthz"]["load"]["p95_ms"]
    base_cpu = dashboard["healthz"].get("server_cpu_ms_per_load")
    for period, title in (("30d", "30 days"), ("12mo", "12 months")):
        found = dashboard[period]
        load = found["load"]
        panel, worst = max(found["panels"].items(), key=lambda item: item[1]["p95_ms"] or 0)
        lines.append(
            f"| {title} | {found['first_load_ms']} ms | {load['p50_ms']} ms | {load['p95_ms']} ms | "
            f"{panel.rsplit('/', 1)[-1].split('?')[0]} {worst['p95_ms']} ms | "
            f"{found.get('server_cpu_ms_per_load')} ms | "
            f"{base} ms | {base_cpu} ms | {_x(load['p95_ms'], base)} |"
        )
    if round(gen["recent_events"], -3) < 10_000_000:  # the generator rounds a few events away
        lines += [
            "",
            f"This data set is smaller than the issue's 10 M events in 30 days (BENCH_DASHBOARD_EVENTS="
            f"{gen['recent_events'] + 1:,}); generate the full one on a quiet machine with "
            "`BENCH_ANALYTICS_PARTS=dataset .venv/bin/python bench/analytics.py` (bench/README.md).",
        ]
    lines += [
        "",
        f"Aim: 30 days p95 < {AIM['dashboard_30d_p95_ms']:.0f} ms, 365 days < "
        f"{AIM['dashboard_12mo_ms']:.0f} ms on SQLite (GoatCounter on SQLite: 19.4 s).",
        "",
    ]
    return lines


def _size_lines(size: dict[str, Any]) -> list[str]:
    lines = [
        f"## Tracker size ({size['measured_at']}{_loadavg(size)})",
        "",
        "| script | raw | gzip -9 | brotli 11 |",
        "|---|---:|---:|---:|",
    ]
    titles = {
        "tracker_source": "tracker.js source",
        "tracker": "tracker as served (minified)",
        "pageview_beacon": "baseline: a pageview-only beacon",
    }
    for key, title in titles.items():
        found = size[key]
        lines.append(f"| {title} | {found['raw']} B | {found['gzip']} B | {found['brotli']} B |")
    return [*lines, "", f"Aim: <= {AIM['tracker_gzip_bytes']} B gzipped (Plausible's < 1 KB).", ""]


def _cpu_lines(cpu: dict[str, Any]) -> list[str]:
    ingest, base = cpu["ingest_cpu_us"], cpu["healthz_cpu_us"]
    rollups, raw = cpu["totals_rollups_cpu_ms"], cpu["totals_raw_cpu_ms"]
    return [
        f"## In-process CPU ({cpu['measured_at']}{_loadavg(cpu)})",
        "",
        f"{cpu['events']} events from varied addresses and agents over 23 h, through httpx's ASGI "
        "transport (client and server CPU together, no sockets).",
        "",
        "| what | CPU | wall | baseline (same run) | ratio |",
        "|---|---:|---:|---|---:|",
        f"| POST /api/analytics/event (202, durable) | {ingest} µs | {cpu['ingest_wall_us']} µs | "
        f"GET /healthz {base} µs | {_x(ingest, base)} |",
        f"| top stats for today (UTC), from rollups | {rollups} ms | {cpu['totals_rollups_wall_ms']} ms | "
        f"from raw events {raw} ms | {_x(rollups, raw)} |",
        "",
        f"Pageviews: rollups {cpu['pageviews_rollups']}, raw {cpu['pageviews_raw']} (must match).",
        "",
    ]


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# analytics: ingest, dashboard, tracker",
        "",
        f"Last run {result['measured_at']} (load average {result.get('load_average', 0):.2f}) measured "
        f"{', '.join(result['parts_run'])}; each part says when it was measured. "
        "`.venv/bin/python bench/analytics.py`",
        "",
    ]
    render = {
        "ingest": _ingest_lines,
        "dashboard": _dashboard_lines,
        "tick": _tick_lines,
        "size": _size_lines,
        "cpu": _cpu_lines,
        "filtered": _filtered_lines,
    }
    for part, lines_of in render.items():
        if result.get(part):
            lines += lines_of(result[part])
    return "\n".join(lines)


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate_on_sigterm)
    unknown = set(PARTS) - {*ALL_PARTS, *EXTRA_PARTS}
    if unknown:
        log(f"bench/analytics.py: unknown parts {sorted(unknown)}; known: {', '.join(ALL_PARTS)}")
        return 2
    path = RESULTS / "analytics.json"
    result: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        result = json.loads(path.read_text())
    result = {key: value for key, value in result.items() if key in ALL_PARTS}
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    parts = {
        "cpu": part_cpu,
        "ingest": part_ingest,
        "dashboard": part_dashboard,
        "tick": part_tick,
        "size": part_size,
        "filtered": part_filtered,
    }
    if PARTS == ["dataset"]:
        _dataset(DASHBOARD_EVENTS)
        return 0
    try:
        with tempfile.TemporaryDirectory(prefix="bench-analytics-") as directory:
            for name in PARTS:
                log(f"== analytics: {name}")
                figures = parts[name](Path(directory))
                stamp_now = datetime.now(UTC).isoformat(timespec="seconds")
                result[name] = {"measured_at": stamp_now, "load_average": os.getloadavg()[0], **figures}
    except BenchmarkError as exc:
        log(f"bench/analytics.py: {exc}")
        return 1
    result = {
        "measured_at": stamp,
        "load_average": os.getloadavg()[0],
        "parts_run": PARTS,
        "aim": AIM,
        **result,
    }
    RESULTS.mkdir(exist_ok=True)
    text = markdown(result)
    for name, content in (
        ("analytics.json", json.dumps(result, indent=2) + "\n"),
        ("analytics.md", text + "\n"),
    ):
        temporary = RESULTS / f"{name}.tmp"
        temporary.write_text(content)
        temporary.replace(RESULTS / name)
    log(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
