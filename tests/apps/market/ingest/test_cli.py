"""`pentad market ingest run REGION` as an operator runs it: a fresh SQLite database and the fake ESI in a
process of its own."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.factories import free_port
from tests.servers import running
from tests.test_cli import env
from tests.test_cli import pentad_here as pentad

__all__ = ["env"]

ROOT = Path(__file__).resolve().parents[4]


@pytest.fixture(scope="module")
def fake_esi_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "tests.fakes.market.esi",
        "--port",
        str(port),
        "--pages",
        "3",
        "--page-size",
        "50",
    ]
    log = tmp_path_factory.mktemp("fake_esi") / "fake_esi.log"
    with running(command, f"{url}/status/", log, cwd=ROOT):
        yield url


def test_ingest_run_stores_a_snapshot_then_waits_for_expires(env: dict[str, str], fake_esi_url: str) -> None:
    pentad(env, "migrate")
    missing = pentad(env, "market", "ingest", "run", "10000002", check=False)
    assert missing.returncode == 1
    assert "PENTAD_MARKET__CONTACT" in missing.stderr

    env.update(PENTAD_MARKET__CONTACT="ops@pentad.test", PENTAD_MARKET__ESI_BASE_URL=fake_esi_url)
    stored = pentad(env, "market", "ingest", "run", "10000002").stdout
    assert re.fullmatch(r"Stored snapshot \d+ of region 10000002: 3 page\(s\), 150 order\(s\)\.\n", stored), (
        stored
    )

    fresh = pentad(env, "market", "ingest", "run", "10000002").stdout
    assert "fresh until" in fresh
    assert "--force" in fresh

    forced = pentad(env, "market", "ingest", "run", "10000002", "--force").stdout
    assert "did not change" in forced

    unknown = pentad(env, "market", "ingest", "run", "10000099", check=False)
    assert unknown.returncode == 1
    assert "Region 10000099: failed: esi_request_failed" in unknown.stderr
