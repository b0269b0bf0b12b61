"""Chromium shows a live camera's health (/streams/cameras/{id}/health) against a real `pentad serve` with
the built-in RTMP engine and a synthetic camera publishing to it: the figures measured from its frames
(30 fps, a keyframe every second), the chart growing as `camera.health` events arrive over the hub, and the
HLS viewer count going up while a player fetches the camera's playlist.

Run it alone with `pytest tests/browser/test_streams_health.py -m browser`.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.async_api import ConsoleMessage, async_playwright

from tests.apps.streams.support import child, needs_ffmpeg, playlist_uris, publish_command, wait_for
from tests.browser.test_account_flow import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, _chromium_or_skip, _sign_in
from tests.factories import free_port
from tests.servers import VENV_BIN, serving

pytestmark = [pytest.mark.browser, needs_ffmpeg]

WAIT_MS = 30_000


@dataclass(frozen=True)
class Stage:
    base_url: str
    email: str
    password: str
    camera_id: str
    headers: dict[str, str]


def _pentad(env: dict[str, str], cwd: Path, *args: str) -> None:
    subprocess.run(
        [str(VENV_BIN / "pentad"), *args], env=env, cwd=cwd, check=True, capture_output=True, timeout=60
    )


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    data_dir = tmp_path_factory.mktemp("streams-health")
    rtmp_port, http_port = free_port(), free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("PENTAD_")}
    env |= {
        "PENTAD_DATA_DIR": str(data_dir),
        "PENTAD_DATABASE__URL": f"sqlite+aiosqlite:///{data_dir / 'pentad.db'}",
        "PENTAD_LOG__LEVEL": "WARNING",
        "PENTAD_APPS": "streams",
        "PENTAD_SERVER__BASE_URL": f"http://127.0.0.1:{http_port}",
        "PENTAD_STREAMS__RTMP_HOST": "127.0.0.1",
        "PENTAD_STREAMS__RTMP_PORT": str(rtmp_port),
    }
    email, password = "owner@example.com", secrets.token_urlsafe(18)
    _pentad(env, data_dir, "migrate")
    _pentad(env, data_dir, "user", "create", "--email", email, "--password", password, "--name", "Owner")
    with serving(env, data_dir, http_port, data_dir / "server.log") as base_url:
        login = httpx.post(f"{base_url}/api/auth/login", json={"email": email, "password": password})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        camera = httpx.post(
            f"{base_url}/api/streams/cameras",
            json={"name": "gate", "visibility": "unlisted"},
            headers=headers,
        )
        assert camera.status_code == 201, camera.text
        camera_id = camera.json()["id"]
        key = httpx.post(f"{base_url}/api/streams/cameras/{camera_id}/keys", json={}, headers=headers)
        assert key.status_code == 201, key.text
        url = f"rtmp://127.0.0.1:{rtmp_port}/live/{key.json()['key']}"
        with child(publish_command(url, size="320x180"), data_dir / "publisher.log"):
            wait_for(
                lambda: _health(base_url, camera_id, headers) is not None,
                "the camera's first health figures",
                30,
                log=data_dir / "server.log",
            )
            yield Stage(base_url, email, password, camera_id, headers)


def _positive_rate(text: str) -> bool:
    return text.endswith(" fps") and float(text.removesuffix(" fps")) > 0


def _health(base_url: str, camera_id: str, headers: dict[str, str]) -> dict[str, object] | None:
    response = httpx.get(f"{base_url}/api/streams/cameras/{camera_id}/health", headers=headers, timeout=5)
    assert response.status_code == 200, response.text
    found: dict[str, object] | None = response.json()["health"]
    return found


async def test_chromium_shows_live_figures_a_growing_chart_and_hls_viewers(stage: Stage) -> None:
    _chromium_or_skip()
    problems: list[str] = []

    def watch(message: ConsoleMessage) -> None:
        if message.type == "error" and ".map" not in message.text:
            problems.append(message.text)

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(base_url=stage.base_url)
            page = await context.new_page()
            page.on("console", watch)
            await page.goto("/login")
            await _sign_in(page, stage.email, stage.password)
            await page.goto(f"/streams/cameras/{stage.camera_id}")
            await page.get_by_test_id("health-link").click()
            await page.wait_for_url(f"**/streams/cameras/{stage.camera_id}/health")

            state = page.get_by_test_id("health-state")
            await page.wait_for_function(
                "() => ['live', 'warning'].includes(document.getElementById('health-state').dataset.state)",
                timeout=WAIT_MS,
            )
            figures = page.get_by_test_id("health-figures")
            assert "kbit/s" in await figures.locator('[data-figure="bitrate"]').inner_text()
            # The synthetic camera sends a keyframe every 30 frames at 30 fps (media time: load cannot
            # change it); its frame rate as received depends on how fast this machine encodes.
            assert _positive_rate(await figures.locator('[data-figure="fps"]').inner_text())
            assert await figures.locator('[data-figure="keyframe"]').inner_text() == "1 s"
            # More points than the first REST answer: figures keep coming over the hub.
            await page.wait_for_function(
                "() => Number(document.getElementById('health').dataset.points) >= 3", timeout=WAIT_MS
            )
            assert await page.locator("#health-chart canvas").count() >= 1

            # A player fetching the playlist is an HLS viewer, shown on the page within a few seconds.
            playlist = f"{stage.base_url}/streams/media/{stage.camera_id}/index.m3u8"
            async with httpx.AsyncClient(headers={"User-Agent": "test player"}) as player:
                for _ in range(60):
                    fetched = await player.get(playlist)
                    assert fetched.status_code == 200
                    assert playlist_uris(fetched.text)
                    if await figures.locator('[data-figure="hls"]').inner_text() == "1":
                        break
                    await page.wait_for_timeout(500)
            assert await figures.locator('[data-figure="hls"]').inner_text() == "1"
            assert await figures.locator('[data-figure="webrtc"]').inner_text() == "0"
            assert "Live" in await state.inner_text()
            await page.screenshot(path=str(SCREENSHOTS / "streams-health.png"))
        finally:
            await browser.close()
    assert problems == []
