"""CPU per chat request, in-process: the chat app (and the core) called through ASGI, no sockets, no HTTP
parsing, on SQLite (and on PostgreSQL when BENCH_CHAT_POSTGRES_URL's server is reachable), so the figures
isolate the app's own cost of `GET /api/chat/me` (the baseline every chat request pays) and of a plain
send (`POST /api/chat/channels/{id}/messages`, 20 users taking turns in one private channel).

CPU time (`time.process_time`: every thread of this process, so aiosqlite's and asyncpg's share counts)
divided by the requests; the wall time per request as well. BENCH_CHAT_COST_PROFILE=send (or =me) prints a
cProfile of the sends (or of GET /api/chat/me), top 40 by own time (coroutines make its call counts odd;
py-spy on this script gives truer shares). The database round trips of PostgreSQL are wall time, not CPU here.

    .venv/bin/python bench/chat_cost.py               # ~1 min; writes bench/results/chat_cost.{json,md}
    BENCH_ROUNDS=300 BENCH_CHAT_COST_DATABASES=sqlite .venv/bin/python bench/chat_cost.py
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import os
import pstats
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from pentad.app import create_app
from pentad.apps import enabled_apps
from pentad.core import audit
from pentad.core.auth.service import AuthService
from pentad.core.config import Settings
from pentad.core.db.migrate import upgrade

RESULTS = Path(__file__).parent / "results"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "1000"))
USERS = 20
POSTGRES_URL = os.environ.get(
    "BENCH_CHAT_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)


async def _postgres(statement: str) -> bool:
    try:
        import asyncpg

        dsn = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
        connection = await asyncpg.connect(dsn, timeout=5)
    except Exception:
        return False
    try:
        await connection.execute(statement)
    finally:
        await connection.close()
    return True


def _settings(data_dir: Path, url: str) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=data_dir,
        database={"url": url},  # type: ignore[arg-type]
        log={"level": "WARNING"},  # type: ignore[arg-type]
        ratelimit={"per_address": "100000000/minute", "per_principal": "100000000/minute"},  # type: ignore[arg-type]
        jobs={"in_process_worker": False},  # type: ignore[arg-type]
        apps=["chat"],
    )


async def _measure(url: str, data_dir: Path) -> dict[str, Any]:
    settings = _settings(data_dir, url)
    await asyncio.to_thread(upgrade, url, enabled_apps(settings))
    app = create_app(settings)
    platform = app.state.platform
    async with platform.database.transaction() as session:
        service = AuthService(session, platform)
        admin = await service.create_user(
            email=f"admin-{uuid.uuid4().hex[:6]}@example.com",
            password="bench password long",
            actor=audit.SYSTEM,
            roles=["admin"],
        )
        _, admin_key = await service.create_api_key(
            admin, name="bench", scopes=["*"], expires_in_days=None, actor=audit.SYSTEM
        )
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    figures: dict[str, Any] = {}
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

        async def call(method: str, path: str, token: str, body: Any = None) -> Any:
            response = await client.request(
                method, path, json=body, headers={"authorization": f"Bearer {token}"}
            )
            if response.status_code not in (200, 201):
                raise SystemExit(f"{method} {path} answered {response.status_code}: {response.text[:300]}")
            return response.json()

        slug = f"bench{uuid.uuid4().hex[:6]}"
        tenant = await call("POST", "/api/chat/tenants", admin_key, {"slug": slug, "name": "Benchmark"})
        key = (await call("POST", f"/api/chat/tenants/{tenant['id']}/keys", admin_key, {"name": "b"}))["key"]
        tokens = []
        for index in range(USERS):
            await call("PUT", f"/api/chat/server/users/u{index}", key, {"name": f"User {index}"})
            tokens.append(
                (await call("POST", f"/api/chat/server/users/u{index}/tokens", key, {"ttl": 7200}))["token"]
            )
        body = {
            "kind": "private",
            "name": "send",
            "created_by": "u0",
            "members": [f"u{i}" for i in range(1, USERS)],
        }
        channel = (await call("POST", "/api/chat/server/channels", key, body))["id"]

        async def raw(method: str, path: str, token: str, body: Any = None) -> None:
            """One request as the server hands it to the app: no client library in the figures."""
            content = b"" if body is None else json.dumps(body).encode()
            headers = [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode())]
            if body is not None:
                headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(content))]
            scope = {
                "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
                "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
                "root_path": "", "headers": headers, "client": ("127.0.0.1", 50000),
                "server": ("127.0.0.1", 8000), "state": {},
            }  # fmt: skip
            status = []

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": content, "more_body": False}

            async def send(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    status.append(message["status"])

            await app(scope, receive, send)
            if status[0] not in (200, 201):
                raise SystemExit(f"{method} {path} answered {status[0]}")

        async def run(label: str, method: str, path: str, body_of: Any) -> None:
            for index in range(USERS * 2):  # warm up, cache every credential
                await raw(method, path, tokens[index % USERS], body_of(index))
            cpu, wall = time.process_time(), time.perf_counter()
            for index in range(ROUNDS):
                await raw(method, path, tokens[index % USERS], body_of(index))
            figures[label] = {
                "cpu_us": round((time.process_time() - cpu) / ROUNDS * 1e6, 1),
                "wall_us": round((time.perf_counter() - wall) / ROUNDS * 1e6, 1),
            }

        await run("GET /api/chat/me", "GET", "/api/chat/me", lambda _i: None)
        send_path = f"/api/chat/channels/{channel}/messages"
        await run("POST message", "POST", send_path, lambda i: {"text": f"message number {i}"})
        profiled = os.environ.get("BENCH_CHAT_COST_PROFILE")
        if profiled:
            profile = cProfile.Profile()
            profile.enable()
            for index in range(ROUNDS // 2):
                if profiled == "me":
                    await raw("GET", "/api/chat/me", tokens[index % USERS])
                else:
                    await raw("POST", send_path, tokens[index % USERS], {"text": f"profiled {index}"})
            profile.disable()
            stats = pstats.Stats(profile).sort_stats("tottime")
            stats.print_stats(40)
            if os.environ.get("BENCH_CHAT_COST_CALLERS"):
                stats.print_callers(os.environ["BENCH_CHAT_COST_CALLERS"])
    await platform.close()
    return figures


async def main() -> None:
    wanted = os.environ.get("BENCH_CHAT_COST_DATABASES", "sqlite,postgresql").split(",")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="pentad-chat-cost-") as folder:
        if "sqlite" in wanted:
            data_dir = Path(folder) / "sqlite"
            data_dir.mkdir()
            results["sqlite"] = await _measure(f"sqlite+aiosqlite:///{data_dir / 'pentad.db'}", data_dir)
        if "postgresql" in wanted:
            name = f"bench_chat_cost_{uuid.uuid4().hex[:8]}"
            if await _postgres(f"CREATE DATABASE {name}"):
                data_dir = Path(folder) / "postgresql"
                data_dir.mkdir()
                try:
                    url = POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
                    results["postgresql"] = await _measure(url, data_dir)
                finally:
                    await _postgres(f"DROP DATABASE {name} WITH (FORCE)")
            else:
                results["postgresql"] = "skipped: not reachable"
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "chat_cost.json").write_text(
        json.dumps(
            {"date": stamp, "rounds": ROUNDS, "load_before": os.getloadavg()[0], "databases": results},
            indent=2,
        )
        + "\n"
    )
    lines = [
        "# chat_cost: CPU per chat request, called in-process",
        "",
        f"{stamp} · {ROUNDS} requests each · load average: {os.getloadavg()[0]:.2f}",
        "",
        "| database | request | CPU µs per request | wall µs per request |",
        "|---|---|---:|---:|",
    ]
    for database, figures in results.items():
        if isinstance(figures, str):
            lines.append(f"| {database} | {figures} | | |")
            continue
        for label, values in figures.items():
            lines.append(f"| {database} | {label} | {values['cpu_us']:.0f} | {values['wall_us']:.0f} |")
    (RESULTS / "chat_cost.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
