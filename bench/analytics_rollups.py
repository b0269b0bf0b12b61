"""analytics rollups: events rolled up per second by the current `rollups.py` beside the same module at an
earlier git revision (the baseline), on copies of one generated data set, in the same run.

The set: BENCH_ROLLUP_EVENTS (100,000) events written through the real `flush_events` at the density of the
dashboard benchmark's 10 M set (10 M over 30 days: about 13,900 events an hour, a visitor pool of an eighth
of the events), over as many hours as that takes. Each copy is rolled up by `run_rollups` (hourly rows,
visits, days, months), alternately baseline, current, baseline, current; the four rollup tables must come
out identical (digests compared). Wall time and process CPU (the database thread included): on a shared
machine the CPU figure is the one that carries over.

BENCH_ROLLUP_BEFORE (default 7fc4aa3, the last revision before the rollups were reworked) names the
baseline; its `rollups.py` is read with `git show` and runs against the current models.

    .venv/bin/python bench/analytics_rollups.py
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from sqlalchemy import select

import analytics
from pentad.app import create_app
from pentad.apps import enabled_apps
from pentad.apps.analytics import rollups, tasks
from pentad.apps.analytics.ingest import EVENTS, EventRow, flush_events
from pentad.apps.analytics.models import AnalyticsSite
from pentad.core.db.migrate import upgrade
from pentad.core.ingest import FlushContext

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"
EVENTS_COUNT = int(os.environ.get("BENCH_ROLLUP_EVENTS", "100000"))
BEFORE = os.environ.get("BENCH_ROLLUP_BEFORE", "7fc4aa3")
PER_HOUR = 10_000_000 / (30 * 24)
TABLES = (
    "analytics_rollup_hourly",
    "analytics_rollup_daily",
    "analytics_rollup_monthly",
    "analytics_sessions",
)
RETENTION = "raw=400d,hourly=2y"


def _baseline_module() -> ModuleType:
    source = subprocess.run(
        ["git", "show", f"{BEFORE}:src/pentad/apps/analytics/rollups.py"],
        cwd=BENCH_DIR, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    path = Path(tempfile.mkdtemp(prefix="rollups-before-")) / "rollups_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("rollups_before", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["rollups_before"] = module
    spec.loader.exec_module(module)
    return module


async def _generate(folder: Path) -> float:
    """The set, flushed; returns the flush's events per second."""
    settings = analytics._settings(folder, default_retention=RETENTION)
    await asyncio.to_thread(upgrade, settings.database.url, enabled_apps(settings))
    app = create_app(settings)
    platform = app.state.platform
    await platform.open_resources()
    await analytics._owner_and_site(app)
    async with platform.database.transaction() as session:
        site_key = (await session.execute(select(AnalyticsSite.key))).scalar_one()
    end_ms = int(time.time() * 1000) // analytics.HOUR_MS * analytics.HOUR_MS
    start_ms = end_ms - round(EVENTS_COUNT / PER_HOUR * analytics.HOUR_MS)
    rows = list(
        analytics._visits(random.Random(5), start_ms, end_ms, EVENTS_COUNT, max(1000, EVENTS_COUNT // 8))
    )
    started = time.perf_counter()
    for index in range(0, len(rows), analytics.GENERATE_BATCH):
        batch: list[EventRow] = rows[index : index + analytics.GENERATE_BATCH]
        for row in batch:
            row.site_key = site_key
        async with platform.database.transaction() as session:
            await flush_events(FlushContext(session, platform, EVENTS, uuid.uuid4(), replay=False), batch)
    flushed = time.perf_counter() - started
    await platform.close()
    return len(rows) / flushed


async def _roll(folder: Path, module: ModuleType) -> tuple[float, float]:
    settings = analytics._settings(folder, default_retention=RETENTION)
    app = create_app(settings)
    platform = app.state.platform
    await platform.open_resources()
    tasks.rollups = module  # type: ignore[attr-defined]
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        await tasks.run_rollups(platform)
    finally:
        tasks.rollups = rollups  # type: ignore[attr-defined]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await platform.close()
    return wall, cpu


def _digests(database: Path) -> tuple[dict[str, str], int]:
    connection = sqlite3.connect(database)
    found: dict[str, str] = {}
    for table in TABLES:
        columns = ",".join(row[1] for row in connection.execute(f"PRAGMA table_info({table})"))
        digest = hashlib.sha256()
        for row in connection.execute(f"SELECT {columns} FROM {table} ORDER BY {columns}"):  # noqa: S608
            digest.update(repr(row).encode())
        found[table] = digest.hexdigest()[:16]
    events = int(connection.execute("SELECT count(*) FROM analytics_events").fetchone()[0])
    connection.close()
    return found, events


def main() -> int:
    before = _baseline_module()
    work = Path(tempfile.mkdtemp(prefix="bench-rollups-"))
    try:
        source = work / "source"
        source.mkdir()
        flush_per_s = asyncio.run(_generate(source))
        runs: list[dict[str, Any]] = []
        for label, module in (
            ("before", before),
            ("current", rollups),
            ("before", before),
            ("current", rollups),
        ):
            copy = work / f"copy-{len(runs)}"
            shutil.copytree(source, copy)
            wall, cpu = asyncio.run(_roll(copy, module))
            digests, events = _digests(copy / "pentad.db")
            runs.append({"code": label, "events": events, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                         "digests": digests})  # fmt: skip
            print(json.dumps(runs[-1]), flush=True)
            shutil.rmtree(copy)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    identical = all(run["digests"] == runs[0]["digests"] for run in runs)

    def best(label: str, key: str) -> float:
        return min(float(run[key]) for run in runs if run["code"] == label)

    events = int(runs[0]["events"])
    per_s = {
        f"{label}_events_per_s_{key}": round(events / best(label, f"{key}_s"))
        for label in ("before", "current")
        for key in ("cpu", "wall")
    }
    result: dict[str, Any] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average": round(os.getloadavg()[0], 2),
        "before_revision": BEFORE,
        "events": events,
        "flush_events_per_s": round(flush_per_s),
        "runs": runs,
        "identical": identical,
        **per_s,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "analytics_rollups.json").write_text(json.dumps(result, indent=2) + "\n")
    cpu_ratio = per_s["current_events_per_s_cpu"] / per_s["before_events_per_s_cpu"]
    wall_ratio = per_s["current_events_per_s_wall"] / per_s["before_events_per_s_wall"]
    lines = [
        "# analytics: rollup speed",
        "",
        f"Measured {result['measured_at']} (load average {result['load_average']}). "
        "`.venv/bin/python bench/analytics_rollups.py`",
        "",
        f"{events:,} events at the 10 M set's density (about 13,900 an hour), flushed through `flush_events` "
        f"({result['flush_events_per_s']:,} events/s), rolled up by `run_rollups` on copies of the same "
        f"database, alternately; best of two runs each. Baseline: `rollups.py` at {BEFORE}.",
        "",
        "| rollups.py | events/s (CPU) | events/s (wall) |",
        "|---|---:|---:|",
        f"| baseline ({BEFORE}) | {per_s['before_events_per_s_cpu']:,} "
        f"| {per_s['before_events_per_s_wall']:,} |",
        f"| current | {per_s['current_events_per_s_cpu']:,} | {per_s['current_events_per_s_wall']:,} |",
        f"| ratio | {cpu_ratio:.2f}x | {wall_ratio:.2f}x |",
        "",
        f"Rollup tables identical across the runs: {'yes' if identical else 'NO'}.",
        "",
    ]
    (RESULTS / "analytics_rollups.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
