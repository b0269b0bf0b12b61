"""202 means durable (plan §6, the long scenario, run once on SQLite): a real `pentad serve` takes numbered
events from concurrent clients, is killed with SIGKILL in the middle of the load (no shutdown, no last
flush), and started again on the same data folder; the new process adopts the dead one's spool, and every
event that got a 202 is in the database exactly once — none lost, none doubled (events that got no answer
may be stored or not, but never twice)."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.factories import free_port
from tests.servers import HOST, VENV_BIN, running
from tests.test_cli import pentad_here

pytestmark = pytest.mark.slow

SENDERS = 8
KILL_AFTER = 300
"""Accepted events before the kill (the load goes on while the process dies)."""
STORED_TIMEOUT = 30.0
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"


def _stored(database: Path) -> Counter[int]:
    """How often each sequence number is stored."""
    with sqlite3.connect(database) as connection:
        paths = connection.execute("SELECT path FROM analytics_events WHERE path LIKE '/seq/%'").fetchall()
    return Counter(int(path.rsplit("/", 1)[1]) for (path,) in paths)


async def _load(base_url: str, process: subprocess.Popen[bytes]) -> tuple[set[int], int]:
    """Send numbered events from SENDERS clients until the server is gone; SIGKILL it once KILL_AFTER
    were accepted. The numbers that got a 202, and how many were sent."""
    accepted: set[int] = set()
    numbers = iter(range(1_000_000))
    sent = 0
    alive = True

    async def sender(client: httpx.AsyncClient) -> None:
        nonlocal sent, alive
        while alive:
            number = next(numbers)
            sent += 1
            body = f'{{"n":"pageview","u":"https://load.example/seq/{number}","d":"load.example"}}'
            try:
                response = await client.post("/api/analytics/event", content=body)
            except httpx.TransportError:
                alive = False
                return
            assert response.status_code == 202, response.text
            accepted.add(number)
            if len(accepted) == KILL_AFTER:
                os.kill(process.pid, signal.SIGKILL)

    headers = {"Content-Type": "text/plain", "User-Agent": BROWSER}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=10) as client:
        await asyncio.gather(*(sender(client) for _ in range(SENDERS)))
    return accepted, sent


def test_every_accepted_event_survives_a_kill_9_exactly_once(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("PENTAD_")}
    env.update(
        PENTAD_DATA_DIR=str(tmp_path),
        PENTAD_DATABASE__URL=f"sqlite+aiosqlite:///{tmp_path}/pentad.db",
        PENTAD_APPS="analytics",
        PENTAD_RATELIMIT__ENABLED="false",
        PENTAD_ADMIN__PASSWORD="a long admin password",
        PENTAD_LOG__LEVEL="WARNING",
    )
    pentad_here(env, "migrate")
    pentad_here(env, "analytics", "site", "create", "load.example")
    port = free_port()
    command = [str(VENV_BIN / "pentad"), "serve", "--host", HOST, "--port", str(port), "--workers", "1"]
    base_url = f"http://{HOST}:{port}"

    with running(command, f"{base_url}/healthz", tmp_path / "first.log", env=env, cwd=tmp_path) as process:
        accepted, sent = asyncio.run(_load(base_url, process))
        assert process.wait(timeout=10) == -signal.SIGKILL
    assert len(accepted) >= KILL_AFTER
    assert sent > len(accepted)  # some were in flight when it died
    spools = list((tmp_path / "ingest" / "analytics.events").glob("*/*.jsonl"))
    assert spools, "nothing left in the spool: the kill came after the last flush, the test proves nothing"

    with running(command, f"{base_url}/healthz", tmp_path / "second.log", env=env, cwd=tmp_path):
        deadline = time.monotonic() + STORED_TIMEOUT
        while not accepted <= set(stored := _stored(tmp_path / "pentad.db")):
            assert time.monotonic() < deadline, f"{len(accepted - set(stored))} accepted events are missing"
            time.sleep(0.2)
    lost = accepted - set(stored)
    doubled = {number: count for number, count in stored.items() if count > 1}
    assert not lost
    assert not doubled
    assert set(stored) <= set(range(sent))
