"""Where an HTTP request's time goes: the ASGI app called in-process (no sockets, no HTTP parsing), so the
figures isolate framework and middleware cost per request. Same run, same loop, one core:

- bare Starlette route, FastAPI with one router and with eleven (FastAPI 0.165 walks included routers),
- Pentad's full stack: GET /healthz (middleware only; also with a browser's Accept-Encoding, its answer too
  small to compress) and an authenticated GET /api/me (API key, served from the principal cache after the
  first request).

Writes bench/results/stack_cost.json and .md.
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import os
import platform as host
import pstats
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from fastapi_app import ROUTERS
from fastapi_app import build as build_fastapi
from pentad.app import create_app
from pentad.core import audit
from pentad.core.auth.service import AuthService
from pentad.core.config import Settings
from pentad.core.db.migrate import upgrade

RESULTS = Path(__file__).parent / "results"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5000"))
# A path (or part of one, e.g. "/api/me"): print a cProfile of its measured rounds, top 40 by own time.
PROFILE = os.environ.get("BENCH_STACK_PROFILE")
ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


async def _bare(_request: Request) -> JSONResponse:
    return JSONResponse({"id": "1", "email": "a@example.com"})


async def _per_request_us(app: ASGIApp, path: str, headers: list[tuple[bytes, bytes]]) -> tuple[float, float]:
    """Wall and CPU (every thread of the process) microseconds per request."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"bench"), *headers], "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }  # fmt: skip
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    for _ in range(300):
        await app({**scope, "state": {}}, receive, send)
    profiler = cProfile.Profile() if PROFILE and PROFILE in path and headers else None
    if profiler is not None:
        profiler.enable()
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(ROUNDS):
        await app({**scope, "state": {}}, receive, send)
    elapsed, cpu_elapsed = time.perf_counter() - started, time.process_time() - cpu
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(70)
    if set(statuses) != {200}:
        raise SystemExit(f"{path} answered {sorted(set(statuses))}")
    return elapsed / ROUNDS * 1e6, cpu_elapsed / ROUNDS * 1e6


async def _pentad(data_dir: Path) -> tuple[FastAPI, str]:
    url = f"sqlite+aiosqlite:///{data_dir / 'pentad.db'}"
    await asyncio.to_thread(upgrade, url)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=data_dir,
        database={"url": url},  # type: ignore[arg-type]
        log={"level": "WARNING"},  # type: ignore[arg-type]
        ratelimit={"per_address": "100000000/minute", "per_principal": "100000000/minute"},  # type: ignore[arg-type]
        jobs={"in_process_worker": False},  # type: ignore[arg-type]
        apps=os.environ.get("BENCH_STACK_APPS", "*").split(","),
    )
    app = create_app(settings)
    platform = app.state.platform
    async with platform.database.transaction() as session:
        service = AuthService(session, platform)
        user = await service.create_user(
            email="bench@example.com", password="bench password long", actor=audit.SYSTEM
        )
        _, key = await service.create_api_key(
            user, name="bench", scopes=["*"], expires_in_days=None, actor=audit.SYSTEM
        )
    return app, key


async def main() -> None:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="pentad-stack-") as folder:
        pentad, key = await _pentad(Path(folder))
        auth = [(b"authorization", f"Bearer {key}".encode())]
        figures = {
            "bare Starlette": await _per_request_us(
                Starlette(routes=[Route("/api/me", _bare)]), "/api/me", []
            ),
            "FastAPI, 1 router": await _per_request_us(build_fastapi(1), "/api/me", []),
            f"FastAPI, {ROUTERS} routers": await _per_request_us(build_fastapi(ROUTERS), "/api/me", []),
            "Pentad GET /healthz": await _per_request_us(pentad, "/healthz", []),
            # What compression costs a response too small to compress (core/web/compression.py).
            "Pentad GET /healthz, Accept-Encoding br": await _per_request_us(
                pentad, "/healthz", [(b"accept-encoding", b"gzip, deflate, br, zstd")]
            ),
            "Pentad GET /api/me (API key)": await _per_request_us(pentad, "/api/me", auth),
        }
        await pentad.state.platform.close()
    baseline = figures["bare Starlette"][1]
    fastapi = figures[f"FastAPI, {ROUTERS} routers"][1]
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    (RESULTS / "stack_cost.json").write_text(
        json.dumps(
            {
                "date": stamp,
                "cpus": os.cpu_count(),
                "load_before": load_before,
                "rounds": ROUNDS,
                "python": host.python_version(),
                "us_per_request": {name: wall for name, (wall, _) in figures.items()},
                "cpu_us_per_request": {name: cpu for name, (_, cpu) in figures.items()},
                "api_me_cpu_to_fastapi": fastapi / figures["Pentad GET /api/me (API key)"][1],
            },
            indent=2,
        )
        + "\n"
    )
    lines = [
        "# stack_cost: per-request cost of the ASGI app, called in-process",
        "",
        f"{stamp} · {os.cpu_count()} CPUs · load average before: {load_before:.2f} · {ROUNDS} requests each",
        "",
        "| target | µs per request | CPU µs per request | CPU vs bare Starlette |",
        "|---|---:|---:|---:|",
        *(
            f"| {name} | {wall:.0f} | {cpu:.0f} | {cpu / baseline:.1f}x |"
            for name, (wall, cpu) in figures.items()
        ),
        "",
        f"Pentad GET /api/me speed vs FastAPI with {ROUTERS} routers (CPU): "
        f"{fastapi / figures['Pentad GET /api/me (API key)'][1]:.2f}x",
    ]
    (RESULTS / "stack_cost.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())
