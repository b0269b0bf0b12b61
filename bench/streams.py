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
from pentad.apps.streams.media.engines.nginx import NginxEngine
from pentad.apps.streams.settings import StreamsSettings
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
        figures = {
            "baseline: one transaction, SELECT 1": await _timed(floor),
            "authorize_publish, good key": await _timed(lambda: authorize_publish(platform, good)),
            "authorize_publish, unknown key": await _timed(lambda: authorize_publish(platform, unknown)),
            "authorize_publish, revoked key": await _timed(
                lambda: authorize_publish(platform, revoked["key"])
            ),
        }
        figures |= await _nginx_callbacks(platform, data_dir, good, unknown)
        return figures
    finally:
        await platform.close()


class _AuthorisingHost:
    """The nginx engine's host for the bench: the real authorisation (authorize_publish), no media (an
    accepted key would start the packager and the pull, two ffmpeg children: not what is measured)."""

    def __init__(self, platform: Any, root: Path) -> None:
        self.platform = platform
        self.root = root
        self.socket_dir = root
        self.processes: Any = None
        self.callback_secret: str | None = "bench-secret"

    async def open_stream(self, raw_key: str, *, engine: str, peer: str, drop: Any) -> None:
        await authorize_publish(self.platform, raw_key)

    async def close_stream(self, publication: Any, reason: str) -> None:
        return None


async def _nginx_callbacks(platform: Any, root: Path, good: str, unknown: str) -> dict[str, dict[str, float]]:
    """on_publish as nginx-rtmp calls it: a new loopback TCP connection, HTTP/1.0 POST of a form,
    `Connection: Close`, read to the end; against the engine's own callback server."""
    settings = StreamsSettings.model_validate(
        {"engine": "nginx", "nginx": {"manage": False, "callback_port": 0}}
    )
    host = _AuthorisingHost(platform, root)
    engine = NginxEngine(settings, host)  # type: ignore[arg-type]
    engine.secret = "bench-secret"
    server = await asyncio.start_server(engine._serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    def request(path: str, body: str) -> bytes:
        return (
            f"POST {path}?secret=bench-secret HTTP/1.0\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nConnection: Close\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}"
        ).encode()

    def form(call: str, key: str) -> str:
        return f"app=live&flashver=FMLE/3.0&tcurl=rtmp://127.0.0.1/live&addr=127.0.0.1&clientid=1&call={call}&name={key}&type=live"

    async def post(raw: bytes, expected: bytes) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw)
        answer = await reader.read()
        writer.close()
        assert answer.startswith(expected), answer[:40]

    floor = request("/on_update", form("update_play", "sbench"))
    publish_good = request("/on_publish", form("publish", good))
    publish_unknown = request("/on_publish", form("publish", unknown))
    try:
        return {
            "baseline: callback over HTTP answered without authorisation (on_update of a play)": await _timed(
                lambda: post(floor, b"HTTP/1.1 200")
            ),
            "on_publish over HTTP (nginx's call path), good key": await _timed(
                lambda: post(publish_good, b"HTTP/1.1 403")
            ),
            "on_publish over HTTP (nginx's call path), unknown key": await _timed(
                lambda: post(publish_unknown, b"HTTP/1.1 403")
            ),
        }
    finally:
        server.close()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-streams-") as work:
        figures = asyncio.run(measure(Path(work)))
    load = os.getloadavg()[0]
    when = datetime.now(UTC).isoformat(timespec="seconds")
    floor = figures["baseline: one transaction, SELECT 1"]
    lines = [
        "# streams: publish authorisation (in process, and nginx-rtmp's on_publish over HTTP), on SQLite",
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
        "Aim (issue 10): on_publish authorisation p99 <= 50 ms. The on_publish rows are the nginx-rtmp",
        "engine's callback server (media/engines/nginx.py) called as nginx calls it (a new loopback",
        "connection, HTTP/1.0 POST, read to the close), its host doing the real authorisation; an accepted",
        "key's answer would also start the stream's two ffmpeg children, which is left out (the good key",
        "is answered 403 here, after the same authorisation). The other media benchmarks (latency,",
        "capacity, WebRTC fan-out) come with their parts (docs/plans/streams.md §7).",
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
