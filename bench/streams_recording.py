"""streams recording: the database side of recording at one-second segments, in process on SQLite, each
figure beside a baseline of the same run (one committed transaction running `SELECT 1`).

A camera with a full day recorded (86,400 one-second segments, as the recorder indexes them):
- the recorder's tick: `reconcile_recordings` for 1 and for 64 live cameras (once a second per node), and
  `store_segments` of one segment (once a second per recording camera);
- the timeline of 24 hours (`GET /api/streams/cameras/{id}/recordings`, spans merged from every segment);
- a VOD playlist of 1 hour and of 4 hours (the longest), through the media route.

    .venv/bin/python bench/streams_recording.py
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, text

from pentad.app import create_app
from pentad.apps import enabled_apps
from pentad.apps.streams.actions import recording
from pentad.apps.streams.actions.publish import authorize_publish, start_session
from pentad.apps.streams.media.recorder import RecordedSegment, microseconds
from pentad.apps.streams.models import StreamsSegment
from pentad.core import audit
from pentad.core.auth.service import AuthService
from pentad.core.config import Settings
from pentad.core.db.migrate import upgrade

RESULTS = Path(__file__).parent / "results"
DAY = 86_400
CALLS = int(os.environ.get("BENCH_STREAMS_RECORDING_CALLS", "200"))


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


async def _timed(call: Callable[[], Awaitable[Any]], calls: int = CALLS) -> dict[str, float]:
    for _ in range(max(2, calls // 10)):  # warm-up
        await call()
    walls: list[float] = []
    cpu = time.process_time()
    for _ in range(calls):
        started = time.perf_counter()
        await call()
        walls.append(time.perf_counter() - started)
    cpu = time.process_time() - cpu
    walls.sort()
    return {
        "calls": calls,
        "p50_ms": statistics.median(walls) * 1000,
        "p95_ms": walls[max(0, int(len(walls) * 0.95) - 1)] * 1000,
        "cpu_ms": cpu / calls * 1000,
    }


def _segment_row(camera_id: uuid.UUID, recording_id: uuid.UUID, first_us: int, n: int) -> dict[str, Any]:
    start_us = first_us + n * 1_000_000
    return {
        "camera_id": camera_id,
        "recording_id": recording_id,
        "start_at": datetime.fromtimestamp(start_us / 1e6, UTC),
        "start_us": start_us,
        "duration_ms": 1000,
        "size_bytes": 300_000,
        "storage_key": f"recordings/{camera_id}/{recording_id}/{start_us}.ts",
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
            live: dict[uuid.UUID, uuid.UUID] = {}
            for number in range(64):
                made = await client.post(
                    "/api/streams/cameras",
                    json={"name": f"cam {number}", "visibility": "public", "recording_mode": "continuous"},
                    headers=auth,
                )
                camera_id = uuid.UUID(made.json()["id"])
                key = (await client.post(f"/api/streams/cameras/{camera_id}/keys", headers=auth)).json()[
                    "key"
                ]
                grant = await authorize_publish(platform, key)
                assert grant is not None
                live[camera_id] = await start_session(platform, grant, engine="builtin")
            current = await recording.reconcile_recordings(platform, live)
            assert len(current) == 64
            camera_id = next(iter(live))
            recording_id = current[camera_id]

            # A day of one-second segments for the first camera, bulk-inserted.
            day_start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
            first_us = microseconds(day_start)
            async with platform.database.transaction() as session:
                for chunk in range(0, DAY, 10_000):
                    await session.execute(
                        insert(StreamsSegment), [_segment_row(camera_id, recording_id, first_us, n)
                                                 for n in range(chunk, min(chunk + 10_000, DAY))]
                    )  # fmt: skip

            async def floor() -> None:
                async with platform.database.transaction() as session:
                    await session.execute(text("SELECT 1"))

            one = {camera_id: live[camera_id]}
            counter = iter(range(10**9))

            async def store_one() -> None:
                n = next(counter)
                start_us = first_us + (DAY + n) * 1_000_000
                segment = RecordedSegment(recording_id, start_us, 1000, 300_000, f"bench/{start_us}.ts")
                await recording.store_segments(platform, camera_id, [segment])

            def stamp(moment: datetime) -> str:
                return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

            day_end = day_start + timedelta(days=1)
            timeline = (
                f"/api/streams/cameras/{camera_id}/recordings?start={stamp(day_start)}&end={stamp(day_end)}"
            )
            middle = day_start + timedelta(hours=12)

            def vod(hours: int) -> str:
                end = middle + timedelta(hours=hours)
                return f"/streams/recordings/{camera_id}/vod.m3u8?start={stamp(middle)}&end={stamp(end)}"

            async def get(url: str) -> None:
                response = await client.get(url, headers=auth)
                assert response.status_code == 200, response.text

            check = (await client.get(timeline, headers=auth)).json()
            assert check["spans"][0]["segments"] == DAY, check["spans"]
            return {
                "baseline: one transaction, SELECT 1": await _timed(floor, 2000),
                "recorder tick: reconcile_recordings, 1 live camera": await _timed(
                    lambda: recording.reconcile_recordings(platform, one), 2000
                ),
                "recorder tick: reconcile_recordings, 64 live cameras": await _timed(
                    lambda: recording.reconcile_recordings(platform, live), 1000
                ),
                "store_segments, one segment": await _timed(store_one, 2000),
                "timeline of 24 h (86,400 segments)": await _timed(lambda: get(timeline), 20),
                "VOD playlist of 1 h (3,600 segments)": await _timed(lambda: get(vod(1)), 50),
                "VOD playlist of 4 h (14,400 segments)": await _timed(lambda: get(vod(4)), 20),
            }
    finally:
        await platform.close()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-streams-recording-") as work:
        figures = asyncio.run(measure(Path(work)))
    load = os.getloadavg()[0]
    when = datetime.now(UTC).isoformat(timespec="seconds")
    floor = figures["baseline: one transaction, SELECT 1"]
    lines = [
        "# streams recording: the database side at one-second segments, in-process on SQLite",
        "",
        f"{when} · load average {load:.2f} · `.venv/bin/python bench/streams_recording.py`",
        "",
        "| what | calls | p50 | p95 | CPU per call | CPU vs baseline |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, row in figures.items():
        cells = [
            str(row["calls"]),
            f"{row['p50_ms']:.2f} ms",
            f"{row['p95_ms']:.2f} ms",
            f"{row['cpu_ms']:.2f} ms",
            f"{row['cpu_ms'] / floor['cpu_ms']:.1f}x",
        ]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    lines += [
        "",
        "The recorder's database work per node and second is one reconcile (all live cameras at once) plus",
        "one store per recording camera; the timeline and VOD are per viewer request.",
    ]
    text_out = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    result = {"measured_at": when, "load_average": load, "figures": figures}
    (RESULTS / "streams_recording.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "streams_recording.md").write_text(text_out)
    sys.stdout.write(text_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
