"""ads at the issue's scale, each figure beside a baseline measured in the same run. Three parts
(BENCH_ADS_PARTS, default all; a part not run keeps its previous figures in the results):

- `cpu`: in-process on SQLite, BENCH_ADS_CPU_CAMPAIGNS (50) campaigns in one zone (even pacing, daily
  limits, frequency caps and a path targeting on some), the CPU of one ad decision on the public decide
  route (visitor facts, the in-memory delivery snapshot, targeting, frequency and daily caps through the
  cache, selection, signed tokens, the served row appended to ingest) and of one viewable-impression
  beacon, each beside the CPU of `GET /healthz` through the same stack and client.
- `decide`: over HTTP against a real `pentad serve` (one worker, SQLite, memory cache, pinned to CPU 1;
  chat.py's load generator on CPU 0): GET /api/ads/decide open loop at BENCH_DECIDE_RATE (1,000)/s for
  BENCH_SECONDS (10) s over 50 campaigns with 200 creatives in 4 zones (targeting on devices, paths,
  key-values and countries, frequency caps on half), from 2,000 visitors; baseline `GET /healthz` at
  the same rate. p50/p99/max and the server's CPU per request.
- `size`: the loader (loader.js as served) raw, gzip -9 and brotli.

    .venv/bin/python bench/ads.py     # ~1 min; writes bench/results/ads.{json,md}
    BENCH_ADS_PARTS=decide BENCH_SECONDS=3 .venv/bin/python bench/ads.py
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import random
import signal
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import brotli
import httpx

import chat
import realtime_fanout
from pentad.app import create_app
from pentad.apps import enabled_apps
from pentad.core import audit
from pentad.core.auth.service import AuthService
from pentad.core.config import Settings
from pentad.core.db.migrate import upgrade
from realtime_fanout import BenchmarkError, Process

# The server on CPU 1, the load from CPU 0 (issue 13's method); the shared helpers read these at call time.
realtime_fanout.SERVER_CPU = "1"
chat.CLIENT_CPU = "0"

RESULTS = Path(__file__).parent / "results"
LOADER = Path(__file__).resolve().parent.parent / "src" / "pentad" / "apps" / "ads" / "static" / "loader.js"
VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
ALL_PARTS = ("cpu", "decide", "size")
PARTS = [part.strip() for part in os.environ.get("BENCH_ADS_PARTS", ",".join(ALL_PARTS)).split(",")]
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2000"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
DECIDE_RATE = float(os.environ.get("BENCH_DECIDE_RATE", "1000"))
AGENT = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
AGENTS = (
    AGENT,
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36",
)
CAMPAIGNS = int(os.environ.get("BENCH_ADS_CPU_CAMPAIGNS", "50"))
"""Campaigns of the in-process `cpu` part (one zone; the `decide` part's count, so its CPU compares)."""
SCALE_CAMPAIGNS, SCALE_CREATIVES, SCALE_ZONES, VISITORS = 50, 4, 4, 2000
"""The `decide` part: 50 campaigns x 4 creatives in 4 zones, 2,000 visitors."""
AIM = {"decide_p99_ms": 10.0, "decide_rate": 1000}


def _terminate_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # every `finally` (which stops the servers) still runs


def log(message: str) -> None:
    print(message, flush=True)


def _settings(data_dir: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=data_dir,
        database={"url": f"sqlite+aiosqlite:///{data_dir / 'pentad.db'}"},  # type: ignore[arg-type]
        log={"level": "WARNING"},  # type: ignore[arg-type]
        ratelimit={"enabled": False},  # type: ignore[arg-type]
        security={"trusted_proxies": ["127.0.0.1"]},  # type: ignore[arg-type]
        jobs={"in_process_worker": False},  # type: ignore[arg-type]
        apps=["ads"],
    )


async def _measure_cpu(data_dir: Path) -> dict[str, Any]:
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
    figures: dict[str, Any] = {"rounds": ROUNDS, "campaigns": CAMPAIGNS}
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        auth = {"Authorization": f"Bearer {key}"}

        async def create(path: str, body: dict[str, Any]) -> str:
            answer = await client.post(path, json=body, headers=auth)
            if answer.status_code != 201:
                raise BenchmarkError(f"POST {path} answered {answer.status_code}: {answer.text[:300]}")
            created: str = answer.json()["id"]
            return created

        site = await create("/api/ads/sites", {"name": "News", "domain": "news.example", "timezone": "UTC"})
        zone = await create(
            f"/api/ads/sites/{site}/zones",
            {"name": "Box", "width": 300, "height": 250, "path_patterns": ["/news/**"]},
        )
        advertiser = await create("/api/ads/advertisers", {"name": "Acme"})
        for index in range(CAMPAIGNS):
            campaign = await create(
                f"/api/ads/advertisers/{advertiser}/campaigns",
                {
                    "name": f"Campaign {index}", "zone_ids": [zone], "pricing": "cpm",
                    "rate_micros": 2_000_000,
                    "starts_at": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
                    "pacing": "asap" if index % 2 else "even", "priority": 1 + index % 5,
                    "weight": 1 + index % 4, "frequency_cap": 1000 if index % 2 else None,
                    "daily_impressions": 1_000_000 if index % 3 == 0 else None,
                    "targeting": {"paths": ["/news/**"]} if index % 2 else {},
                },
            )  # fmt: skip
            await create(
                f"/api/ads/campaigns/{campaign}/creatives/text",
                {
                    "name": "Ad",
                    "destination_url": "https://shop.example/",
                    "headline": "Sale",
                    "body": "-50 %",
                },
            )
        rng = random.Random(3)
        addresses = [
            f"{rng.randrange(1, 223)}.{rng.randrange(256)}.{rng.randrange(256)}.9" for _ in range(500)
        ]

        async def decide(index: int) -> str:
            answer = await client.get(
                "/api/ads/decide", params={"z": zone, "p": f"/news/{index % 50}"},
                headers={"User-Agent": AGENT, "X-Forwarded-For": addresses[index % len(addresses)]},
            )  # fmt: skip
            if answer.status_code != 200:
                raise BenchmarkError(f"decide answered {answer.status_code}: {answer.text[:300]}")
            token: str = answer.json()["impression"]
            return token

        async def beacon(token: str) -> None:
            answer = await client.post(
                "/api/ads/v", content=token.encode(),
                headers={"Content-Type": "text/plain", "User-Agent": AGENT, "X-Forwarded-For": addresses[0]},
            )  # fmt: skip
            if answer.status_code >= 300:
                raise BenchmarkError(f"beacon answered {answer.status_code}: {answer.text[:300]}")

        for index in range(50):  # warm up
            await beacon(await decide(index))
            await client.get("/healthz")
        started = time.process_time()
        for _ in range(ROUNDS):
            await client.get("/healthz")
        figures["healthz_cpu_us"] = round((time.process_time() - started) / ROUNDS * 1e6, 1)
        tokens = []
        started, wall = time.process_time(), time.perf_counter()
        for index in range(ROUNDS):
            tokens.append(await decide(index))
        figures["decide_cpu_us"] = round((time.process_time() - started) / ROUNDS * 1e6, 1)
        figures["decide_wall_us"] = round((time.perf_counter() - wall) / ROUNDS * 1e6, 1)
        started, wall = time.process_time(), time.perf_counter()
        for token in tokens:
            await beacon(token)
        figures["beacon_cpu_us"] = round((time.process_time() - started) / ROUNDS * 1e6, 1)
        figures["beacon_wall_us"] = round((time.perf_counter() - wall) / ROUNDS * 1e6, 1)
    await platform.close()
    return figures


def part_cpu(work_dir: Path) -> dict[str, Any]:
    data_dir = work_dir / "cpu"
    data_dir.mkdir()
    return asyncio.run(_measure_cpu(data_dir))


# ----------------------------------------------------------------------------- part: decide


async def _prepare_scale(data_dir: Path) -> list[str]:
    """Migrate, an owner, a site with SCALE_ZONES zones and SCALE_CAMPAIGNS campaigns of SCALE_CREATIVES
    text ads each, through the API in-process; the zone ids."""
    settings = _settings(data_dir)
    await asyncio.to_thread(upgrade, settings.database.url, enabled_apps(settings))
    app = create_app(settings)
    platform = app.state.platform
    await platform.open_resources()
    async with platform.database.transaction() as session:
        service = AuthService(session, platform)
        owner = await service.create_user(
            email="bench@example.com", password="bench password long", actor=audit.SYSTEM, roles=["member"]
        )
        _, key = await service.create_api_key(
            owner, name="bench", scopes=["*"], expires_in_days=None, actor=audit.SYSTEM
        )
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        auth = {"Authorization": f"Bearer {key}"}

        async def create(path: str, body: dict[str, Any]) -> str:
            answer = await client.post(path, json=body, headers=auth)
            if answer.status_code != 201:
                raise BenchmarkError(f"POST {path} answered {answer.status_code}: {answer.text[:300]}")
            created: str = answer.json()["id"]
            return created

        site = await create("/api/ads/sites", {"name": "News", "domain": "news.example", "timezone": "UTC"})
        zones = [
            await create(
                f"/api/ads/sites/{site}/zones", {"name": f"Zone {index}", "width": 300, "height": 250}
            )
            for index in range(SCALE_ZONES)
        ]
        advertisers = [await create("/api/ads/advertisers", {"name": f"Advertiser {i}"}) for i in range(10)]
        starts = (datetime.now(UTC) - timedelta(days=1)).isoformat()
        for index in range(SCALE_CAMPAIGNS):
            targeting: dict[str, Any] = {}
            if index % 3 == 1:
                targeting["devices"] = ["desktop"]
            if index % 5 == 2:
                targeting["paths"] = ["/news/**"]
            if index % 7 == 3:
                targeting["keys"] = {"section": ["sports"]}
            if index % 11 == 4:
                targeting["exclude_countries"] = ["FR"]
            campaign = await create(
                f"/api/ads/advertisers/{advertisers[index % len(advertisers)]}/campaigns",
                {
                    "name": f"Campaign {index}", "zone_ids": zones, "pricing": "cpm",
                    "rate_micros": 2_000_000,
                    "starts_at": starts, "pacing": "asap" if index % 2 else "even",
                    "priority": 1 + index % 5, "weight": 1 + index % 4,
                    "frequency_cap": 5 if index % 2 else None, "targeting": targeting,
                },
            )  # fmt: skip
            for number in range(SCALE_CREATIVES):
                await create(
                    f"/api/ads/campaigns/{campaign}/creatives/text",
                    {"name": f"Ad {number}", "destination_url": "https://shop.example/",
                     "headline": f"Sale {number}", "body": "-50 %"},
                )  # fmt: skip
    await platform.close()
    return zones


def part_decide(work_dir: Path) -> dict[str, Any]:
    data_dir = work_dir / "decide"
    data_dir.mkdir()
    zones = asyncio.run(_prepare_scale(data_dir))
    rng = random.Random(13)
    requests = []
    for index in range(VISITORS):
        address = f"{rng.randrange(1, 223)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        path = rng.choice(("/news/", "/sports/", "/")) + str(rng.randrange(100))
        section = rng.choice(("news", "sports", "weather"))
        query = f"z={zones[index % len(zones)]}&p={path}&kv=section:{section}"
        headers = {"User-Agent": rng.choice(AGENTS), "X-Forwarded-For": address}
        requests.append(
            {**chat.request("GET", f"/api/ads/decide?{query}", None, label="decide"), "headers": headers}
        )
    healthz = [chat.request("GET", "/healthz", None, label="healthz")]
    env = chat.pentad_env(data_dir, f"sqlite+aiosqlite:///{data_dir / 'pentad.db'}", apps="ads")
    env["PENTAD_SECURITY__TRUSTED_PROXIES"] = "127.0.0.1"  # the load generator plays the visitors' proxy
    port = realtime_fanout.free_port()
    command = [str(VENV_BIN / "pentad"), "serve", "--host", HOST, "--port", str(port), "--workers", "1"]
    server = Process("pentad serve", command, work_dir / "decide.log", env, data_dir, ready_path="/readyz")
    count = int(DECIDE_RATE * SECONDS)
    figures: dict[str, Any] = {
        "rate": DECIDE_RATE, "seconds": SECONDS, "campaigns": SCALE_CAMPAIGNS,
        "creatives": SCALE_CAMPAIGNS * SCALE_CREATIVES, "zones": SCALE_ZONES, "visitors": VISITORS,
        "pinned": realtime_fanout.can_pin(),
    }  # fmt: skip
    keys = ("ok", "failed", "statuses", "failures", "achieved_rate", "p50_ms", "p90_ms", "p99_ms", "max_ms",
            "server_cpu_pct", "server_cpu_ms_per_request")  # fmt: skip
    with realtime_fanout.running(server, ports=[port]):
        for name, load, expect in (("decide", requests, [200, 204]), ("healthz", healthz, [200])):
            log(f"  {name}: open loop at {DECIDE_RATE:.0f}/s for {SECONDS} s")
            found = chat.run_http(
                server, port, load, expect=expect, warmup=max(200, count // 10), count=count,
                rate=DECIDE_RATE, connections=64,
            )  # fmt: skip
            figures[name] = {key: found.get(key) for key in keys}
    return figures


# ----------------------------------------------------------------------------- part: size


def part_size(_work_dir: Path) -> dict[str, Any]:
    body = LOADER.read_bytes()
    return {
        "loader": {
            "raw": len(body),
            "gzip": len(gzip.compress(body, 9, mtime=0)),
            "brotli": len(brotli.compress(body, quality=11)),
        }
    }


# ----------------------------------------------------------------------------- results


def _loadavg(part: dict[str, Any]) -> str:
    found = part.get("load_average")
    return f", load average {found:.1f}" if found is not None else ""


def _per_s(ms: float | None) -> str:
    return f"{1000 / ms:,.0f}/s" if ms else "-"


def _x(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}x" if value and base else "-"


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# ads: decisions, beacons, loader",
        "",
        f"Last run {result['measured_at']} (load average {result.get('load_average', 0):.2f}) measured "
        f"{', '.join(result['parts_run'])}; each part says when it was measured. "
        "`.venv/bin/python bench/ads.py`",
        "",
    ]
    decide = result.get("decide")
    if decide:
        at, base = decide["decide"], decide["healthz"]
        statuses = ", ".join(f"{code}: {n}" for code, n in sorted((at["statuses"] or {}).items()))
        lines += [
            f"## Decisions over HTTP ({decide['measured_at']}{_loadavg(decide)})",
            "",
            f"`pentad serve` (one worker, SQLite, memory cache, pinned to CPU 1; chat.py's load generator on "
            f"CPU 0); {decide['campaigns']} campaigns with {decide['creatives']} creatives in "
            f"{decide['zones']} "
            f"zones (targeting on devices, paths, key-values, countries; frequency caps on half), "
            f"{decide['visitors']} visitors. Open loop at {decide['rate']:.0f}/s for {decide['seconds']} s. "
            "On a shared machine the pinned core is shared too: latencies then measure the neighbours; the "
            "server's CPU per request (read from /proc) is the figure that carries over.",
            "",
            "| | GET /api/ads/decide | baseline GET /healthz | ratio |",
            "|---|---:|---:|---:|",
            f"| achieved rate | {at['achieved_rate']}/s | {base['achieved_rate']}/s | |",
            f"| p50 | {at['p50_ms']} ms | {base['p50_ms']} ms | {_x(at['p50_ms'], base['p50_ms'])} |",
            f"| p99 | {at['p99_ms']} ms | {base['p99_ms']} ms | {_x(at['p99_ms'], base['p99_ms'])} |",
            f"| max | {at['max_ms']} ms | {base['max_ms']} ms | |",
            f"| server CPU per request | {at['server_cpu_ms_per_request']} ms | "
            f"{base['server_cpu_ms_per_request']} ms | "
            f"{_x(at['server_cpu_ms_per_request'], base['server_cpu_ms_per_request'])} |",
            f"| one core's capacity at that CPU (1 / CPU per request) | "
            f"{_per_s(at['server_cpu_ms_per_request'])} | {_per_s(base['server_cpu_ms_per_request'])} | |",
            f"| failed (incl. still unanswered 60 s after the last request) | {at['failed']} | "
            f"{base['failed']} | |",
            "",
            f"Answers: {statuses} (204: no eligible ad, e.g. every campaign capped for that visitor). "
            f"Aim: p99 < {AIM['decide_p99_ms']:.0f} ms at {AIM['decide_rate']}/s.",
            "",
        ]  # fmt: skip
    size = result.get("size")
    if size:
        loader = size["loader"]
        lines += [
            f"## Loader size ({size['measured_at']}{_loadavg(size)})",
            "",
            f"loader.js as served: {loader['raw']} B raw, {loader['gzip']} B gzip -9, {loader['brotli']} B "
            "brotli 11 (the plan's budget: <= 2048 B gzipped).",
            "",
        ]
    cpu = result.get("cpu")
    if cpu:
        base = cpu["healthz_cpu_us"]
        lines += [
            f"## In-process CPU ({cpu['measured_at']}{_loadavg(cpu)})",
            "",
            f"{cpu['rounds']} of each, one zone, {cpu['campaigns']} campaigns, httpx's ASGI transport "
            "(client "
            "and server CPU together, no sockets).",
            "",
            "| request | CPU µs | wall µs | baseline GET /healthz (same run) | ratio |",
            "|---|---:|---:|---:|---:|",
            f"| GET /api/ads/decide | {cpu['decide_cpu_us']} | {cpu['decide_wall_us']} | {base} | "
            f"{_x(cpu['decide_cpu_us'], base)} |",
            f"| POST /api/ads/v (beacon) | {cpu['beacon_cpu_us']} | {cpu['beacon_wall_us']} | {base} | "
            f"{_x(cpu['beacon_cpu_us'], base)} |",
            "",
        ]  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate_on_sigterm)
    unknown = set(PARTS) - set(ALL_PARTS)
    if unknown:
        log(f"bench/ads.py: unknown parts {sorted(unknown)}; known: {', '.join(ALL_PARTS)}")
        return 2
    result: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        result = json.loads((RESULTS / "ads.json").read_text())
    result = {key: value for key, value in result.items() if key in ALL_PARTS}
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    parts = {"cpu": part_cpu, "decide": part_decide, "size": part_size}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-ads-") as directory:
            for name in PARTS:
                log(f"== ads: {name}")
                figures = parts[name](Path(directory))
                stamp_now = datetime.now(UTC).isoformat(timespec="seconds")
                result[name] = {"measured_at": stamp_now, "load_average": os.getloadavg()[0], **figures}
    except BenchmarkError as exc:
        log(f"bench/ads.py: {exc}")
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
    for name, content in (("ads.json", json.dumps(result, indent=2) + "\n"), ("ads.md", text + "\n")):
        temporary = RESULTS / f"{name}.tmp"
        temporary.write_text(content)
        temporary.replace(RESULTS / name)
    log(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
