"""streams: what exists of the app today (the control plane), each figure beside a baseline of the same run.

Publish authorisation is the one hot path the control plane has: every RTMP publish (and, with nginx-rtmp,
every on_publish callback) asks `authorize_publish(platform, key)`; the issue's aim is p99 <= 50 ms. In
process on SQLite: a good key (one transaction: look the hash up, read the camera, note last_used_at), an
unknown key and a revoked key (one read each), beside the floor — one committed transaction running
`SELECT 1` through the same database layer. Wall time per call, sequential, and CPU per call.

    .venv/bin/python bench/streams.py
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from pentad.app import create_app
from pentad.apps import enabled_apps
from pentad.apps.streams.actions.publish import authorize_publish
from pentad.core import audit
from pentad.core.auth.service import AuthService
from pentad.core.config import Settings
from pentad.core.db.migrate import upgrade

RESULTS = Path(__file__).parent / "results"
CALLS = int(os.environ.get("BENCH_STREAMS_CALLS", "2000"))


def _settings(data_dir: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=data_dir,
        database={"url": f"sqlite+aiosqlite:///{data_dir / 'pentad.db'}"},  # type: ignore[arg-type]
        log={"level": "WARNING"},  # type: ignore[arg-type]
        ratelimit={"enabled": False},  # type: ignore[arg-type]
        jobs={"in_process_worker": False},  # type: ignore[arg-type]
        apps=["streams"],
    )


async def _timed(call: Callable[[], Awaitable[Any]]) -> dict[str, float]:
    for _ in range(CALLS // 10):  # warm-up
        await call()
    walls: list[float] = []
    cpu = time.process_time()
    for _ in range(CALLS):
        started = time.perf_counter()
        await call()
        walls.append(time.perf_counter() - started)
    cpu = time.process_time() - cpu
    walls.sort()
    return {
        "p50_ms": statistics.median(walls) * 1000,
        "p99_ms": walls[int(len(walls) * 0.99) - 1] * 1000,
        "cpu_us": cpu / CALLS * 1e6,
    }


async def measure(data_dir: Path) -> dict[str, Any]:
    settings = _settings(data_dir)
    await asyncio.to_thread(upgrade, settings.database.url, enabled_apps(settings))
    app = create_app(settings)
    platform = app.state.platform
    await platform.open_resources()
    try:
        async with platform.database.transaction() as session:
            service = AuthService(session, platform)
            owner = await service.create_user(
                email="bench@example.com",
                password="bench password long",
                actor=audit.SYSTEM,
                roles=["member"],
            )
            _, api_key = await service.create_api_key(
                owner, name="bench", scopes=["*"], expires_in_days=None, actor=audit.SYSTEM
            )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            auth = {"Authorization": f"Bearer {api_key}"}
            camera = (await client.post("/api/streams/cameras", json={"name": "Door"}, headers=auth)).json()
            keys = f"/api/streams/cameras/{camera['id']}/keys"
            good = (await client.post(keys, headers=auth)).json()["key"]
            revoked = (await client.post(keys, headers=auth)).json()
            gone = await client.delete(f"{keys}/{revoked['id']}", headers=auth)
            assert gone.status_code == 204, gone.text
        assert await authorize_publish(platform, good) is not None
        assert await authorize_publish(platform, revoked["key"]) is None

        async def floor() -> None:
            async with platform.database.transaction() as session:
                await session.execute(text("SELECT 1"))

        unknown = "psk_" + "A" * 43
        return {
            "baseline: one transaction, SELECT 1": await _timed(floor),
            "authorize_publish, good key": await _timed(lambda: authorize_publish(platform, good)),
            "authorize_publish, unknown key": await _timed(lambda: authorize_publish(platform, unknown)),
            "authorize_publish, revoked key": await _timed(
                lambda: authorize_publish(platform, revoked["key"])
            ),
        }
    finally:
        await platform.close()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-streams-") as work:
        figures = asyncio.run(measure(Path(work)))
    load = os.getloadavg()[0]
    when = datetime.now(UTC).isoformat(timespec="seconds")
    floor = figures["baseline: one transaction, SELECT 1"]
    lines = [
        "# streams: publish authorisation (the control plane), in-process on SQLite",
        "",
        f"{when} · {CALLS} sequential calls each · load average {load:.2f} · "
        "`.venv/bin/python bench/streams.py`",
        "",
        "| what | p50 | p99 | CPU per call | CPU vs baseline |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in figures.items():
        ratio = row["cpu_us"] / floor["cpu_us"]
        cells = [
            f"{row['p50_ms']:.2f} ms",
            f"{row['p99_ms']:.2f} ms",
            f"{row['cpu_us']:.0f} µs",
            f"{ratio:.2f}x",
        ]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    lines += [
        "",
        "Aim (issue 10): on_publish authorisation p99 <= 50 ms. The media plane (RTMP, HLS, WebRTC,",
        "recording) is not built yet; its benchmarks (latency, capacity, WebRTC fan-out) come with it",
        "(docs/plans/streams.md §7).",
    ]
    text_out = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    result = {"measured_at": when, "load_average": load, "calls": CALLS, "figures": figures}
    (RESULTS / "streams.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "streams.md").write_text(text_out)
    sys.stdout.write(text_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
