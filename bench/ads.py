"""ads, in-process on SQLite: the CPU of one ad decision on the public decide route (visitor facts, the
in-memory delivery snapshot, targeting, frequency and daily caps through the cache, selection, signed
tokens, the served row appended to ingest) and of one viewable-impression beacon, each beside the CPU of
`GET /healthz` through the same stack and client in the same run (the baseline every request pays).

    .venv/bin/python bench/ads.py     # ~30 s; writes bench/results/ads.{json,md}
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
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
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2000"))
AGENT = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
CAMPAIGNS = 5


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
    figures: dict[str, Any] = {"rounds": ROUNDS, "campaigns": CAMPAIGNS}
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        auth = {"Authorization": f"Bearer {key}"}

        async def create(path: str, body: dict[str, Any]) -> str:
            answer = await client.post(path, json=body, headers=auth)
            if answer.status_code != 201:
                raise SystemExit(f"POST {path} answered {answer.status_code}: {answer.text[:300]}")
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
                    "starts_at": (datetime.now(UTC) - timedelta(days=1)).isoformat(), "pacing": "asap",
                    "priority": 5, "weight": index + 1, "frequency_cap": 1000,
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
                raise SystemExit(f"decide answered {answer.status_code}: {answer.text[:300]}")
            token: str = answer.json()["impression"]
            return token

        async def beacon(token: str) -> None:
            answer = await client.post(
                "/api/ads/v", content=token.encode(),
                headers={"Content-Type": "text/plain", "User-Agent": AGENT, "X-Forwarded-For": addresses[0]},
            )  # fmt: skip
            if answer.status_code >= 300:
                raise SystemExit(f"beacon answered {answer.status_code}: {answer.text[:300]}")

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


def write(figures: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    figures = {"measured_at": stamp, "load_average": os.getloadavg()[0], **figures}
    (RESULTS / "ads.json").write_text(json.dumps(figures, indent=2) + "\n")
    base = figures["healthz_cpu_us"]
    lines = [
        "# ads: decisions and viewable-impression beacons, in-process on SQLite",
        "",
        f"{stamp} · {figures['rounds']} of each · one zone, {figures['campaigns']} campaigns · load average "
        f"{figures['load_average']:.2f} · `.venv/bin/python bench/ads.py`",
        "",
        "| request | CPU µs | wall µs | baseline GET /healthz (same run) | ratio |",
        "|---|---:|---:|---:|---:|",
        f"| GET /api/ads/decide | {figures['decide_cpu_us']} | {figures['decide_wall_us']} | {base} | "
        f"{figures['decide_cpu_us'] / base:.2f}x |",
        f"| POST /api/ads/v (beacon) | {figures['beacon_cpu_us']} | {figures['beacon_wall_us']} | {base} | "
        f"{figures['beacon_cpu_us'] / base:.2f}x |",
        "",
        f"One core at the decide route's CPU answers about {1e6 / figures['decide_cpu_us']:.0f} decisions/s.",
    ]
    (RESULTS / "ads.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        write(asyncio.run(measure(Path(directory))))


if __name__ == "__main__":
    main()
