"""market: order-book ingest, station-trading scan and hauling search, each beside a baseline of the same run.

- ingest: a Jita-sized region book (BENCH_MARKET_PAGES pages of 1,000 orders, default 400) served by the fake
  ESI (tests/fakes/market/esi.py, its own process on loopback, the real headers) and stored by
  `ingest.refresh_region` end to end (the real EsiClient: concurrent pages, governor; parse, statistics, one
  snapshot transaction on SQLite). Baseline: the same pages fetched with plain httpx at the same concurrency
  and thrown away — what the network and the fake cost, with nothing parsed or stored.
- scan: `station_scan` over every type at Jita (BENCH_MARKET_TYPES types x 10 orders at each of the five
  hubs, stored as snapshots), BENCH_MARKET_RUNS runs. Baseline: reading the same station's current book
  (`repository.current_book`, the rows the scan needs) alone.
- hauling: `hauling_search` across the five hubs, cold (the hubs' ladders computed at ingest and stored
  with each snapshot, read back for every search: the first search after a new snapshot), cold without
  them (the ladders ranked by the database for every search: a snapshot stored without them, or another
  depth — measured with depth DEPTH + 1, which the stored ones do not match) and warm (the ladders of the
  current snapshots kept per process, analysis.hauling LadderCache: what the API does after the first
  search of a snapshot); baseline: reading the five hubs' books alone.

    .venv/bin/python bench/market.py
    BENCH_MARKET_PAGES=50 BENCH_MARKET_TYPES=2000 .venv/bin/python bench/market.py   # a quick look
    BENCH_MARKET_PARTS=analysis .venv/bin/python bench/market.py   # scan and hauling only (or: ingest)
    BENCH_MARKET_PARTS=hauling .venv/bin/python bench/market.py    # hauling only (or: scan)

The hauling search answers the best BENCH_MARKET_HAULS hauls (default 100, what the API answers by default);
every candidate pair and type is still priced. A run of only some parts keeps the other parts' figures
from bench/results/market.json.

Aims (issue 12): ingest <= 30 s end to end, scan p95 < 1 s, hauling p95 < 2 s.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from pentad.app import create_app
from pentad.apps import enabled_apps
from pentad.apps.market import repository, sde
from pentad.apps.market.analysis.fees import FeeSkills, fee_rates
from pentad.apps.market.analysis.hauling import (
    DEPTH,
    HaulLimits,
    LadderCache,
    hauling_search,
    hub_places,
    snapshot_ladders,
)
from pentad.apps.market.analysis.station import station_scan
from pentad.apps.market.esi.client import EsiClient, EsiConfig
from pentad.apps.market.esi.governor import Governor
from pentad.apps.market.ingest import orders as ingest
from pentad.apps.market.ingest import store
from pentad.apps.market.ingest.stats import Order, book_stats
from pentad.apps.market.models import MarketTypeVolume
from pentad.apps.market.settings import Hub
from pentad.core.config import Settings
from pentad.core.db.migrate import upgrade
from pentad.core.platform import Platform

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).parent.parent
PAGES = int(os.environ.get("BENCH_MARKET_PAGES", "400"))
TYPES = int(os.environ.get("BENCH_MARKET_TYPES", "5000"))
RUNS = int(os.environ.get("BENCH_MARKET_RUNS", "10"))
HAULS = int(os.environ.get("BENCH_MARKET_HAULS", "100"))
PARTS = set(os.environ.get("BENCH_MARKET_PARTS", "ingest,analysis").split(","))
CONCURRENCY = 16
JITA_REGION = 10000002
HUBS = [
    Hub("jita", 60003760, 10000002),
    Hub("amarr", 60008494, 10000043),
    Hub("dodixie", 60011866, 10000032),
    Hub("rens", 60004588, 10000030),
    Hub("hek", 60005686, 10000042),
]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _settings(data_dir: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=data_dir,
        database={"url": f"sqlite+aiosqlite:///{data_dir / 'pentad.db'}"},  # type: ignore[arg-type]
        log={"level": "WARNING"},  # type: ignore[arg-type]
        ratelimit={"enabled": False},  # type: ignore[arg-type]
        jobs={"in_process_worker": False},  # type: ignore[arg-type]
        apps=["market"],
    )


async def _platform(data_dir: Path) -> Platform:
    settings = _settings(data_dir)
    await asyncio.to_thread(upgrade, settings.database.url, enabled_apps(settings))
    platform: Platform = create_app(settings).state.platform
    await platform.open_resources()
    async with platform.database.transaction() as session:
        await sde.import_subset(session)
    return platform


def _pct(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


# ----------------------------------------------------------------------------- part: ingest


def _fake_esi() -> subprocess.Popen[bytes]:
    """The fake ESI on a free loopback port (it prints its URL), with the region's book generated."""
    command = [sys.executable, "-m", "tests.fakes.market.esi", "--port", "0", "--pages", str(PAGES)]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


async def _fetch_only(base_url: str) -> float:
    """The baseline: every page fetched at the same concurrency, nothing parsed or stored."""
    limit = asyncio.Semaphore(CONCURRENCY)
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:

        async def page(number: int) -> int:
            async with limit:
                answer = await client.get(f"/markets/{JITA_REGION}/orders/", params={"page": number})
                answer.raise_for_status()
                return len(answer.content)

        sizes = await asyncio.gather(*(page(number) for number in range(1, PAGES + 1)))
    assert sum(sizes) > 0
    return time.perf_counter() - started


async def _ingest(data_dir: Path) -> dict[str, Any]:
    fake = _fake_esi()
    try:
        assert fake.stdout is not None
        base_url = (await asyncio.to_thread(fake.stdout.readline)).decode().strip()
        if not base_url.startswith("http"):
            raise RuntimeError(f"the fake ESI did not start: {base_url!r}")
        platform = await _platform(data_dir)
        config = EsiConfig(
            base_url=base_url, contact="bench@pentad.test", compatibility_date=date(2025, 12, 16)
        )
        fetch_seconds = await _fetch_only(base_url)
        started = time.perf_counter()
        async with EsiClient(config, Governor()) as client:
            outcome = await ingest.refresh_region(platform, client, JITA_REGION, force=True)
        seconds = time.perf_counter() - started
        await platform.close()
        if outcome.status != "ok":
            raise RuntimeError(f"the refresh ended {outcome.status}")
        return {
            "pages": outcome.pages,
            "orders": outcome.rows,
            "ingest_seconds": round(seconds, 2),
            "fetch_only_seconds": round(fetch_seconds, 2),
            "orders_per_s": round(outcome.rows / seconds),
        }
    finally:
        fake.terminate()
        fake.wait(timeout=10)


# ----------------------------------------------------------------------------- parts: scan and hauling


async def _store_books(platform: Platform) -> int:
    rnd = random.Random(7)
    captured = datetime.now(UTC).replace(microsecond=0)
    async with platform.database.transaction() as session:
        places = await hub_places(session, HUBS)
    order_id = 0
    for hub in places:
        book: list[Order] = []
        for type_id in range(1, TYPES + 1):
            base = rnd.uniform(1, 1e6)
            for k in range(10):
                order_id += 1
                buy = k % 2 == 0
                price = round(base * (rnd.uniform(0.8, 1.0) if buy else rnd.uniform(1.0, 1.25)), 2)
                issued = captured - timedelta(minutes=rnd.randint(1, 60 * 24 * 30))
                remain = rnd.randint(1, 5000)
                where = rnd.choice(["station", "region", "5", "solarsystem"]) if buy else "region"
                book.append(Order(order_id, type_id, hub.station_id, hub.system_id, buy, price, remain,
                                  remain + rnd.randint(0, 500), 1, where, issued, 90, 1))  # fmt: skip
        async with platform.database.transaction() as session:
            ladders = await snapshot_ladders(session, HUBS, hub.region_id, book)
            await store.store_snapshot(
                session, region_id=hub.region_id, captured_at=captured, last_modified=None, expires_at=None,
                pages=1, etags={}, orders=book, stats=book_stats(book, captured), ladders=ladders,
            )  # fmt: skip
            if hub.key == "jita":
                for type_id in range(1, TYPES + 1, 2):
                    volume = rnd.uniform(0.1, 5000)
                    session.add(
                        MarketTypeVolume(
                            region_id=hub.region_id, type_id=type_id, avg_volume_7d=volume, avg_volume_30d=0.0
                        )
                    )
    return order_id


async def _timed(runs: int, work: Any) -> dict[str, float]:
    await work()  # warm: caches, the route graph
    walls = []
    for _ in range(runs):
        started = time.perf_counter()
        await work()
        walls.append(time.perf_counter() - started)
    return {"p50_s": round(statistics.median(walls), 3), "p95_s": round(_pct(walls, 0.95), 3)}


async def _analysis(data_dir: Path, parts: set[str]) -> dict[str, Any]:
    platform = await _platform(data_dir)
    started = time.perf_counter()
    stored = await _store_books(platform)
    log(f"  stored {stored} orders at five hubs in {time.perf_counter() - started:.0f} s")
    rates = fee_rates(FeeSkills(accounting=4, broker_relations=4))
    database = platform.database
    async with database.transaction(writes=False) as session:
        places = await hub_places(session, HUBS)
    jita = places[0]

    async def scan() -> None:
        async with database.transaction(writes=False) as session:
            await station_scan(session, jita.station_id, jita.region_id, rates)

    async def read_station() -> None:
        async with database.transaction(writes=False) as session:
            await repository.current_book(session, jita.region_id, [jita.station_id])

    async def haul() -> None:
        async with database.transaction(writes=False) as session:
            await hauling_search(session, places, rates, HaulLimits(60000, Decimal(10**9)), limit=HAULS)

    async def haul_ranked() -> None:
        async with database.transaction(writes=False) as session:
            await hauling_search(
                session, places, rates, HaulLimits(60000, Decimal(10**9)), limit=HAULS, depth=DEPTH + 1
            )

    ladders = LadderCache()

    async def haul_warm() -> None:
        async with database.transaction(writes=False) as session:
            await hauling_search(
                session, places, rates, HaulLimits(60000, Decimal(10**9)), limit=HAULS, cache=ladders
            )

    async def read_hubs() -> None:
        async with database.transaction(writes=False) as session:
            for place in places:
                await repository.current_book(session, place.region_id, [place.station_id], ranged_buys=True)

    result: dict[str, Any] = {"orders_per_hub": TYPES * 10, "hauls": HAULS, "types": TYPES}
    if "scan" in parts:
        result["scan"] = await _timed(RUNS, scan)
        result["read_station"] = await _timed(RUNS, read_station)
    if "hauling" in parts:
        result["hauling"] = await _timed(RUNS, haul)
        result["hauling_ranked"] = await _timed(RUNS, haul_ranked)
        result["hauling_warm"] = await _timed(RUNS, haul_warm)
        result["read_hubs"] = await _timed(RUNS, read_hubs)
    await platform.close()
    return result


# ----------------------------------------------------------------------------- results


def _when() -> dict[str, Any]:
    return {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average": round(os.getloadavg()[0], 2),
    }


def _ran(part: dict[str, Any] | None, what: str = "Measured") -> str:
    if not part or "at" not in part:
        return ""
    return f" {what} {part['at']}, load average {part['load_average']}."


def _x(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base else "-"


def markdown(result: dict[str, Any]) -> str:
    ingest_part, analysis = result["ingest"], result["analysis"]
    scan, station, haul, hubs = (analysis[k] for k in ("scan", "read_station", "hauling", "read_hubs"))
    warm = analysis.get("hauling_warm", {"p50_s": "-", "p95_s": 0})
    ranked = analysis.get("hauling_ranked", {"p50_s": "-", "p95_s": 0})
    return "\n".join([
        "# market: ingest, station scan, hauling",
        "",
        f"Last run {result['at']} (load average {result['load_average']}): "
        f"`BENCH_MARKET_PARTS={','.join(result['parts_run'])} .venv/bin/python bench/market.py` "
        "(parts not run keep their earlier figures; each section says when it was measured). "
        "SQLite, one process; the fake "
        "ESI in its own process on loopback. Every figure sits beside a baseline measured in the same run: "
        "read the ratios when the machine was busy.",
        "",
        f"## Order-book ingest ({ingest_part['pages']} pages, {ingest_part['orders']:,} orders)",
        "",
        "| | seconds | baseline: fetch only (httpx, same concurrency) | ratio |",
        "|---|---:|---:|---:|",
        f"| `refresh_region` end to end (fetch, parse, statistics, hub ladders, one snapshot transaction) | "
        f"{ingest_part['ingest_seconds']} | {ingest_part['fetch_only_seconds']} | "
        f"{_x(ingest_part['ingest_seconds'], ingest_part['fetch_only_seconds'])} |",
        "",
        f"{ingest_part['orders_per_s']:,} orders/s stored. Aim: <= 30 s (EVETrade refreshes every 5 min)."
        + _ran(ingest_part),
        "",
        f"## Station-trading scan and hauling ({analysis['types']:,} types, {analysis['orders_per_hub']:,} "
        "orders at each of five hubs)",
        "",
        "| | p50 | p95 | baseline | baseline p95 | ratio (p95) |",
        "|---|---:|---:|---|---:|---:|",
        f"| `station_scan`, every type at Jita | {scan['p50_s']} s | {scan['p95_s']} s | reading Jita's book "
        f"(`current_book`) | {station['p95_s']} s | {_x(scan['p95_s'], station['p95_s'])} |",
        f"| `hauling_search`, five hubs (best {analysis.get('hauls', 'all')}), cold: the ladders stored at "
        "ingest read back "
        f"| {haul['p50_s']} s | {haul['p95_s']} s | reading the five books | "
        f"{hubs['p95_s']} s | {_x(haul['p95_s'], hubs['p95_s'])} |",
        f"| `hauling_search`, five hubs, cold without stored ladders: ranked by the database "
        f"| {ranked['p50_s']} s | {ranked['p95_s']} s | reading the five books | "
        f"{hubs['p95_s']} s | {_x(ranked['p95_s'], hubs['p95_s'])} |",
        f"| `hauling_search`, five hubs, warm: ladders of the current snapshots kept (LadderCache) "
        f"| {warm['p50_s']} s | {warm['p95_s']} s | reading the five books | "
        f"{hubs['p95_s']} s | {_x(warm['p95_s'], hubs['p95_s'])} |",
        "",
        f"Each figure: {analysis.get('runs', RUNS)} runs after one warm-up. Cold is the first search after "
        "a new snapshot in a process; every later search of that snapshot is warm."
        + _ran(analysis.get("scan_run"), "Scan measured")
        + _ran(analysis.get("hauling_run"), "Hauling measured"),
        "",
        "Aims: scan p95 < 1 s, hauling p95 < 2 s. Prices are random, so nearly every type is profitable on "
        "every hub pair: hauling's worst case.",
        "",
    ])  # fmt: skip


def main() -> int:
    previous: dict[str, Any] = {}
    if (RESULTS / "market.json").exists():
        previous = json.loads((RESULTS / "market.json").read_text())
    with tempfile.TemporaryDirectory(prefix="bench-market-") as work:
        ingest_part = previous.get("ingest")
        if "ingest" in PARTS or ingest_part is None:
            log(f"bench/market.py: ingest of {PAGES} pages")
            ingest_dir = Path(work) / "ingest"
            ingest_dir.mkdir()
            ingest_part = asyncio.run(_ingest(ingest_dir)) | _when()
            log(f"  {ingest_part}")
        analysis = previous.get("analysis") or {}
        parts = {"scan", "hauling"} if "analysis" in PARTS or not analysis else PARTS & {"scan", "hauling"}
        if parts:
            log(f"bench/market.py: {', '.join(sorted(parts))} over {TYPES} types")
            analysis_dir = Path(work) / "analysis"
            analysis_dir.mkdir()
            fresh = asyncio.run(_analysis(analysis_dir, parts))
            stamps = {f"{part}_run": _when() for part in parts}
            analysis = {**analysis, **fresh, **stamps, "runs": RUNS}
            log(f"  {fresh}")
    result = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average": round(os.getloadavg()[0], 2),
        "parts_run": sorted(PARTS),
        "ingest": ingest_part,
        "analysis": analysis,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "market.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "market.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
