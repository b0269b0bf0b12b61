"""Chromium on the recordings page (/streams/cameras/{id}/recordings) against a real `pentad serve` with the
built-in RTMP engine: a private camera in continuous mode records a synthetic camera (ffmpeg's test
picture and a tone) for a few seconds; the signed-in owner sees the span on the timeline, plays it (a VOD
playlist through hls.js, the page's playback token in every media URL: the video advances, frames are
decoded), exports it and downloads the MP4.

Run it alone with `pytest tests/browser/test_streams_recordings.py -m browser`.
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

from tests.apps.streams.support import child, needs_ffmpeg, publish_command, wait_for
from tests.browser.test_account_flow import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, _chromium_or_skip, _sign_in
from tests.factories import free_port
from tests.servers import VENV_BIN, serving

pytestmark = [pytest.mark.browser, needs_ffmpeg]

PLAY_MS = 30_000


@dataclass(frozen=True)
class Stage:
    base_url: str
    email: str
    password: str
    camera_id: str


def _pentad(env: dict[str, str], cwd: Path, *args: str) -> str:
    done = subprocess.run(
        [str(VENV_BIN / "pentad"), *args], env=env, cwd=cwd, check=True, capture_output=True, timeout=60
    )
    return done.stdout.decode()


def _segments(base_url: str, camera_id: str, headers: dict[str, str]) -> int:
    response = httpx.get(f"{base_url}/api/streams/cameras/{camera_id}/recordings", headers=headers, timeout=5)
    return sum(span["segments"] for span in response.json()["spans"]) if response.status_code == 200 else 0


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    """`pentad serve` (SQLite, built-in RTMP engine) and a private continuous camera with about six
    seconds recorded (the publisher has stopped: the recording has ended with its stream)."""
    data_dir = tmp_path_factory.mktemp("streams-recordings-browser")
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
            json={"name": "Back yard", "visibility": "private", "recording_mode": "continuous"},
            headers=headers,
        )
        assert camera.status_code == 201, camera.text
        camera_id = camera.json()["id"]
        key = httpx.post(f"{base_url}/api/streams/cameras/{camera_id}/keys", json={}, headers=headers)
        assert key.status_code == 201, key.text
        with child(
            publish_command(f"rtmp://127.0.0.1:{rtmp_port}/live/{key.json()['key']}", size="320x180"),
            data_dir / "publisher.log",
        ):
            wait_for(
                lambda: _segments(base_url, camera_id, headers) >= 6,
                "six recorded segments",
                40,
                log=data_dir / "server.log",
            )
        yield Stage(base_url, email, password, camera_id)


async def test_chromium_lists_plays_and_exports_a_recording(stage: Stage, tmp_path: Path) -> None:
    _chromium_or_skip()
    problems: list[str] = []

    def watch(message: ConsoleMessage) -> None:
        if message.type == "error" and ".map" not in message.text:
            problems.append(message.text)

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(base_url=stage.base_url, accept_downloads=True)
            page = await context.new_page()
            page.on("console", watch)
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))

            await page.goto(f"/streams/cameras/{stage.camera_id}/recordings")
            assert "/login" in page.url  # signed-in pages
            await _sign_in(page, stage.email, stage.password)
            await page.wait_for_url(f"**/streams/cameras/{stage.camera_id}/recordings")
            rows = page.get_by_test_id("spans").locator("tbody tr")
            assert await rows.count() >= 1
            assert await page.get_by_test_id("timeline").locator("button").count() == await rows.count()

            await rows.first.get_by_role("button", name="Play").click()
            await page.wait_for_function(
                "() => { const v = document.getElementById('recording-player');"
                " return v && v.currentTime > 2 }",
                timeout=PLAY_MS,
            )
            quality = await page.evaluate(
                "() => { const v = document.getElementById('recording-player');"
                " return [v.getVideoPlaybackQuality().totalVideoFrames, v.videoWidth] }"
            )
            assert quality[0] > 0
            assert quality[1] == 320
            media = [url for url in requested if f"/streams/recordings/{stage.camera_id}/" in url]
            assert any("vod.m3u8" in url for url in media), media
            assert any(".ts?" in url for url in media), media
            assert all("token=psp_" in url for url in media), media
            await page.screenshot(path=str(SCREENSHOTS / "streams-recordings.png"))

            await page.get_by_test_id("export").click()
            link = page.get_by_test_id("export-status").locator("a")
            await link.wait_for(timeout=PLAY_MS)
            async with page.expect_download() as waiting:
                await link.click()
            download = await waiting.value
            target = tmp_path / "export.mp4"
            await download.save_as(target)
            assert target.read_bytes()[4:8] == b"ftyp"
            assert target.stat().st_size > 10_000
        finally:
            await browser.close()
    assert problems == []
