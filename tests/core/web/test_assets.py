"""Hashed static URLs (core/web/assets.py): the core's pages link their files by content digest, a request
by the current digest may be kept a year, a stale or missing one may not, and an edited file gets
a new URL."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from pentad.app import create_app
from pentad.core.apps import AppSpec
from pentad.core.db.engine import Database
from pentad.core.web.assets import CORE_STATIC_DIR, IMMUTABLE, static_url
from tests.conftest import make_settings

pytestmark = pytest.mark.one_engine

CSS = CORE_STATIC_DIR / "css" / "pentad.css"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:8]


@pytest.fixture
def app_static(tmp_path: Path) -> Path:
    folder = tmp_path / "assetsprobe-static"
    (folder / "js").mkdir(parents=True)
    (folder / "js" / "widget.js").write_text("export const version = 1;\n")
    return folder


@pytest.fixture
def app(tmp_path: Path, database_url: str, database: Database, app_static: Path) -> FastAPI:
    spec = AppSpec(name="assetsprobe", title="Assets probe", static_dir=app_static)
    return create_app(make_settings(tmp_path, database_url), database=database, apps=[spec])


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_the_current_digest_is_kept_a_year(client: httpx.AsyncClient) -> None:
    url = static_url(None, "css/pentad.css")
    assert url == f"/static/css/pentad.css?v={_digest(CSS)}"
    response = await client.get(url, headers={"Accept-Encoding": "br"})
    assert response.status_code == 200
    assert response.headers["cache-control"] == IMMUTABLE
    assert response.content == CSS.read_bytes()
    assert response.headers["content-encoding"] == "br"  # a style sheet over 1 KiB is compressed on the way


@pytest.mark.parametrize("query", ["?v=00000000", ""])
async def test_a_stale_or_missing_digest_is_not_kept(client: httpx.AsyncClient, query: str) -> None:
    response = await client.get(f"/static/css/pentad.css{query}")
    assert response.status_code == 200
    assert "immutable" not in response.headers.get("cache-control", "")
    assert response.content == CSS.read_bytes()


async def test_an_edited_app_file_gets_a_new_url(client: httpx.AsyncClient, app_static: Path) -> None:
    widget = app_static / "js" / "widget.js"
    first = static_url("assetsprobe", "js/widget.js")
    assert first == f"/static/assetsprobe/js/widget.js?v={_digest(widget)}"
    assert (await client.get(first)).headers["cache-control"] == IMMUTABLE
    widget.write_text("export const version = 2;\n")
    os.utime(widget, ns=(widget.stat().st_atime_ns, widget.stat().st_mtime_ns + 1_000_000_000))
    second = static_url("assetsprobe", "js/widget.js")
    assert second != first
    assert (await client.get(first)).headers["cache-control"] == "no-cache"
    fresh = await client.get(second)
    assert (fresh.headers["cache-control"], fresh.text) == (IMMUTABLE, "export const version = 2;\n")


async def test_the_core_pages_link_their_files_by_digest(client: httpx.AsyncClient) -> None:
    page = await client.get("/login")
    assert page.status_code == 200
    assert f'href="/static/css/pentad.css?v={_digest(CSS)}"' in page.text
    for link in re.findall(r'(?:href|src)="(/static/[^"]+\?v=[0-9a-f]{8})"', page.text):
        assert (await client.get(link)).headers["cache-control"] == IMMUTABLE


def test_static_url_refuses_paths_outside_and_unknown_apps() -> None:
    with pytest.raises(ValueError, match="outside"):
        static_url(None, "../templates/base.html")
    with pytest.raises(LookupError):
        static_url("no-such-app", "app.js")
    assert static_url(None, "css/missing.css") == "/static/css/missing.css"
