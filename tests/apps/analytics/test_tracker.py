"""The tracker script: at most 1 KB gzipped, valid JavaScript, served at a stable URL (cached a day,
ETag, 304) and at a hashed URL cached for a year; the stable and hashed bodies are the same script."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from pentad.app import create_app
from pentad.apps.analytics.spec import APP
from pentad.apps.analytics.tracker import build, minify
from tests.conftest import make_settings

EXTENSIONS = ("pdf", "zip", "dmg", "exe", "csv", "xlsx", "docx", "mp3", "mp4", "gz")


def test_the_tracker_is_at_most_1_kb_gzipped_and_valid_javascript(tmp_path: Path) -> None:
    tracker = build(EXTENSIONS)
    assert len(gzip.compress(tracker.body, 9)) <= 1024
    assert gzip.decompress(tracker.gzipped) == tracker.body
    text = tracker.body.decode()
    features = [
        "pushState", "popstate", "pentad_ignore", "globalPrivacyControl", "keepalive",
        '"Outbound Link: Click"', '"File Download"', "text/plain", "webdriver", "pdf|zip",
    ]  # fmt: skip
    for feature in features:
        assert feature in text, feature
    assert "cookie" not in text
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = tmp_path / "tracker.js"
    script.write_bytes(tracker.body)
    checked = subprocess.run([node, "--check", str(script)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr


def test_minify_keeps_strings_as_they_are() -> None:
    assert minify('// note\nvar a = "x : y" ;\n  f ( a , "b  c" ) ;') == 'var a="x : y";f(a,"b  c");'


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """No database: serving the script reads none."""
    settings = make_settings(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'none.db'}",
        apps=["analytics"],
        analytics={"tracker_max_age": 3600},
    )
    app = create_app(settings, apps=[APP])
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
    await app.state.platform.close()


async def test_the_script_is_served_with_long_lived_caching(client: httpx.AsyncClient) -> None:
    tracker = build(EXTENSIONS)
    stable = await client.get("/analytics/js/script.js", headers={"Accept-Encoding": "identity"})
    assert stable.status_code == 200
    assert stable.content == tracker.body
    assert stable.headers["content-type"].startswith("text/javascript")
    assert stable.headers["cache-control"] == "public, max-age=3600"
    assert stable.headers["etag"] == f'"{tracker.digest}"'

    again = await client.get("/analytics/js/script.js", headers={"If-None-Match": stable.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""

    zipped = await client.get("/analytics/js/script.js", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.content == tracker.body  # httpx decodes it
    assert int(zipped.headers["content-length"]) == len(tracker.gzipped) <= 1024

    hashed = await client.get(tracker.path, headers={"Accept-Encoding": "identity"})
    assert hashed.status_code == 200
    assert hashed.content == tracker.body
    assert hashed.headers["cache-control"] == "public, max-age=31536000, immutable"
    stale = await client.get("/analytics/js/t.00000000.js")
    assert stale.status_code == 404
