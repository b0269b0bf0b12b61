"""Chromium watches live cameras with hls.js on /streams/watch/{id}, against a real `pentad serve` with
the built-in RTMP engine and a synthetic camera (ffmpeg's test picture and a tone) publishing to it: an
anonymous visitor plays a public camera; the owner, signed in, plays a private one through its playback
token (carried by the playlists into every segment URL), and keeps playing past the token's expiry
because the page renews it (tokens live 10 s here). Playing means the video's currentTime advances and
frames are decoded.

Run it alone with `pytest tests/browser/test_streams.py -m browser`.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.async_api import ConsoleMessage, Page, async_playwright

from pentad_streams import AsyncStreamsClient
from tests.apps.streams.support import child, needs_ffmpeg, playlist_uris, publish_command, wait_for
from tests.browser.test_account_flow import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, _chromium_or_skip, _sign_in
from tests.factories import free_port
from tests.servers import VENV_BIN, serving

pytestmark = [pytest.mark.browser, needs_ffmpeg]

TOKEN_TTL = 10
"""Seconds a playback token lives here (the least the setting allows): the player renews it at 2/3."""
PLAY_MS = 30_000
"""How long a player may take to show advancing video (it takes a few seconds: one playlist, two segments)."""


@dataclass(frozen=True)
class Stage:
    base_url: str
    email: str
    password: str
    public_id: str
    private_id: str


def _pentad(env: dict[str, str], cwd: Path, *args: str) -> str:
    done = subprocess.run(
        [str(VENV_BIN / "pentad"), *args], env=env, cwd=cwd, check=True, capture_output=True, timeout=60
    )
    return done.stdout.decode()


def _live(base_url: str, camera_id: str, query: str = "") -> bool:
    """Does the camera's playlist list at least two segments (enough for hls.js to start)?"""
    try:
        response = httpx.get(f"{base_url}/streams/media/{camera_id}/index.m3u8{query}", timeout=5)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and len(playlist_uris(response.text)) >= 2


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    """`pentad serve` (SQLite, the built-in RTMP engine on a free port), an owner with a public and a
    private camera, and a synthetic camera publishing to each."""
    data_dir = tmp_path_factory.mktemp("streams-browser")
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
        # Short-lived playback tokens, so the private camera's player has to renew its token mid-watch.
        "PENTAD_STREAMS__PLAYBACK_TOKEN_TTL": str(TOKEN_TTL),
        # WebRTC on loopback only (aioice leaves 127.0.0.1 out by default).
        "PENTAD_STREAMS__WEBRTC__HOST_ADDRESSES": "127.0.0.1",
        "PENTAD_STREAMS__WEBRTC__ALLOWED_PEER_NETWORKS": "127.0.0.0/8",
    }
    email, password = "owner@example.com", secrets.token_urlsafe(18)
    _pentad(env, data_dir, "migrate")
    _pentad(env, data_dir, "user", "create", "--email", email, "--password", password, "--name", "Owner")
    with serving(env, data_dir, http_port, data_dir / "server.log") as base_url:
        login = httpx.post(f"{base_url}/api/auth/login", json={"email": email, "password": password})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        ids, keys = [], []
        for visibility in ("public", "private"):
            camera = httpx.post(
                f"{base_url}/api/streams/cameras",
                json={"name": f"{visibility} yard", "visibility": visibility},
                headers=headers,
            )
            assert camera.status_code == 201, camera.text
            ids.append(camera.json()["id"])
            key = httpx.post(f"{base_url}/api/streams/cameras/{ids[-1]}/keys", json={}, headers=headers)
            assert key.status_code == 201, key.text
            keys.append(key.json()["key"])
        with (
            child(
                publish_command(f"rtmp://127.0.0.1:{rtmp_port}/live/{keys[0]}", size="320x180"),
                data_dir / "publisher-public.log",
            ),
            child(
                publish_command(f"rtmp://127.0.0.1:{rtmp_port}/live/{keys[1]}", size="320x180"),
                data_dir / "publisher-private.log",
            ),
        ):
            wait_for(
                lambda: _live(base_url, ids[0]), "the public camera's HLS", 30, log=data_dir / "server.log"
            )
            yield Stage(base_url, email, password, ids[0], ids[1])


async def _plays(page: Page) -> None:
    """The player's video advances: currentTime moves past 1 s and on, with frames decoded."""
    await page.wait_for_function(
        "() => { const v = document.getElementById('player'); return v && v.currentTime > 1 }",
        timeout=PLAY_MS,
    )
    first = await page.evaluate("() => document.getElementById('player').currentTime")
    await page.wait_for_function(
        f"() => document.getElementById('player').currentTime > {first} + 1", timeout=PLAY_MS
    )
    quality = await page.evaluate(
        "() => { const q = document.getElementById('player').getVideoPlaybackQuality();"
        " return [q.totalVideoFrames, document.getElementById('player').videoWidth] }"
    )
    assert quality[0] > 0
    assert quality[1] == 320


async def test_chromium_plays_a_public_camera_anonymously_and_a_private_one_with_its_token(
    stage: Stage,
) -> None:
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
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))

            await page.goto(f"/streams/watch/{stage.public_id}?protocol=hls")
            await _plays(page)
            assert await page.get_by_test_id("player-status").inner_text() == "Live"
            await page.screenshot(path=str(SCREENSHOTS / "streams-player-public.png"))

            # The private camera: anonymous visitors are sent to sign in; the owner plays it with a token.
            await page.goto(f"/streams/watch/{stage.private_id}")
            assert "/login" in page.url
            await _sign_in(page, stage.email, stage.password)
            await page.wait_for_url(f"**/streams/watch/{stage.private_id}*")
            await page.goto(f"/streams/watch/{stage.private_id}?protocol=hls")  # WebRTC: the test below
            requested.clear()
            refused: list[str] = []
            page.on("response", lambda r: refused.append(r.url) if r.status >= 400 else None)
            await _plays(page)
            # Watch past the first token's expiry: the player renews it and keeps playing.
            start = await page.evaluate("() => document.getElementById('player').currentTime")
            await page.wait_for_function(
                f"() => document.getElementById('player').currentTime > {start} + {TOKEN_TTL + 3}",
                timeout=PLAY_MS + TOKEN_TTL * 1000,
            )
            media = [url for url in requested if f"/streams/media/{stage.private_id}/" in url]
            assert any(".ts?" in url for url in media), media
            assert all("token=psp_" in url for url in media), media
            tokens = {re.search(r"token=(psp_[A-Za-z0-9_-]+)", url).group(1) for url in media}  # type: ignore[union-attr]
            assert len(tokens) >= 2, "the player never renewed its token"
            assert refused == []
        finally:
            await browser.close()
    assert problems == []


WEBRTC_ARGS = [
    *CHROMIUM_ARGS,
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]
"""Chromium on loopback: offer 127.0.0.1 candidates, and real addresses rather than mDNS names."""


async def test_chromium_plays_over_webrtc_first_and_falls_back_to_hls(stage: Stage) -> None:
    _chromium_or_skip()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=WEBRTC_ARGS)
        try:
            context = await browser.new_context(base_url=stage.base_url)
            page = await context.new_page()
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            await page.goto(f"/streams/watch/{stage.public_id}")
            await _plays(page)
            player = page.get_by_test_id("player")
            assert await player.get_attribute("data-protocol") == "webrtc"
            assert await page.get_by_test_id("player-status").inner_text() == "Live · WebRTC"
            decoded = await page.evaluate(
                "async () => { let n = 0; (await window.pentadStreamsPlayer.peer.getStats()).forEach(r => {"
                " if (r.type === 'inbound-rtp' && r.kind === 'video') n = r.framesDecoded; }); return n }"
            )
            assert decoded > 0
            assert any(f"/streams/whep/{stage.public_id}" in url for url in requested)
            assert not any("/streams/media/" in url for url in requested), "HLS was not needed"
            await page.screenshot(path=str(SCREENSHOTS / "streams-player-webrtc.png"))

            # WHEP refused (here: the node has no room for another WebRTC viewer): HLS plays instead.
            await page.route(
                "**/streams/whep/**",
                lambda route: route.fulfill(
                    status=503,
                    content_type="application/problem+json",
                    body='{"code": "webrtc_capacity", "status": 503, "title": "Service Unavailable"}',
                ),
            )
            requested.clear()
            await page.goto(f"/streams/watch/{stage.public_id}")
            await _plays(page)
            assert await player.get_attribute("data-protocol") == "hls"
            assert any(".ts?" in url for url in requested), requested
        finally:
            await browser.close()


async def _tile_plays(page: Page, camera_id: str) -> None:
    """The tile's own <video> advances with frames decoded."""
    video = f"document.querySelector('[data-camera-id=\"{camera_id}\"] video')"
    await page.wait_for_function(
        f"() => {{ const v = {video}; return v && v.currentTime > 1 }}", timeout=PLAY_MS
    )
    first = await page.evaluate(f"() => {video}.currentTime")
    await page.wait_for_function(f"() => {video} && {video}.currentTime > {first} + 1", timeout=PLAY_MS)
    await page.wait_for_function(
        f"() => {video}.getVideoPlaybackQuality().totalVideoFrames > 0", timeout=PLAY_MS
    )


async def test_the_camera_grid_shows_snapshots_that_play_live_on_hover_or_click(stage: Stage) -> None:
    _chromium_or_skip()
    problems: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=WEBRTC_ARGS)
        try:
            context = await browser.new_context(base_url=stage.base_url)
            page = await context.new_page()
            page.on(
                "console",
                lambda m: problems.append(m.text) if m.type == "error" and ".map" not in m.text else None,
            )
            page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
            await page.goto("/streams/grid")
            assert "/login" in page.url
            await _sign_in(page, stage.email, stage.password)
            await page.goto("/streams/grid")
            tiles = page.get_by_test_id("tile")
            assert await tiles.count() == 2
            # Both cameras are live: each tile shows its snapshot (the private one through its token).
            for camera_id in (stage.public_id, stage.private_id):
                await page.wait_for_function(
                    f"() => {{ const i = document.querySelector('[data-camera-id=\"{camera_id}\"] img');"
                    " return i && i.complete && i.naturalWidth === 320 }",
                    timeout=PLAY_MS,
                )
            private_src = await page.locator(f'[data-camera-id="{stage.private_id}"] img').get_attribute(
                "src"
            )
            assert private_src is not None
            assert "token=psp_" in private_src
            assert not await page.locator("[data-testid=tile] video").count()
            await page.screenshot(path=str(SCREENSHOTS / "streams-grid.png"))

            # Hover the private camera: it plays live in its tile; move away: the player stops and goes.
            requests: list[tuple[str, str]] = []
            page.on("request", lambda request: requests.append((request.method, request.url)))
            tile = page.locator(f'[data-camera-id="{stage.private_id}"]')
            await tile.hover()
            await _tile_plays(page, stage.private_id)
            assert await tile.get_attribute("data-playing") == "true"
            protocol = await tile.locator("video").get_attribute("data-protocol")
            assert protocol in ("webrtc", "hls")
            await page.screenshot(path=str(SCREENSHOTS / "streams-grid-hover.png"))
            await page.mouse.move(1, 1)
            await page.wait_for_function(
                f"() => !document.querySelector('[data-camera-id=\"{stage.private_id}\"] video')"
            )
            assert await tile.get_attribute("data-playing") == "false"
            if protocol == "webrtc":  # the WHEP session is ended, not left to time out
                assert any(method == "DELETE" and "/streams/whep/" in url for method, url in requests)

            # A click keeps the public camera playing after the pointer leaves; a second click stops it.
            public = page.locator(f'[data-camera-id="{stage.public_id}"]')
            await public.click()
            await page.mouse.move(1, 1)
            await _tile_plays(page, stage.public_id)
            assert await public.get_attribute("data-playing") == "true"
            await public.click()
            await page.wait_for_function(
                f"() => !document.querySelector('[data-camera-id=\"{stage.public_id}\"] video')"
            )
        finally:
            await browser.close()
    assert problems == []


async def test_the_browser_sdk_element_plays_and_its_client_speaks_problem_json(stage: Stage) -> None:
    """The SDK as a third-party page would use it: imported as a module, <pentad-stream-player> plays a
    public camera while it is in the page and lets go when removed; StreamsClient reads the API and turns
    a refusal into StreamsApiError with the problem's code."""
    _chromium_or_skip()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await (await browser.new_context(base_url=stage.base_url)).new_page()
            await page.goto(f"/streams/watch/{stage.public_id}?protocol=hls")
            refused = await page.evaluate(
                """async (cameraId) => {
                    const sdk = await import("/static/streams/streams-sdk.js");
                    try { await new sdk.StreamsClient().getCamera(cameraId); } catch (error) {
                        return [error instanceof sdk.StreamsApiError, error.status, error.code];
                    }
                }""",
                stage.public_id,
            )
            assert refused == [True, 401, "not_authenticated"]  # the API wants an account; watching does not
            await page.goto(f"/streams/watch/{stage.private_id}")
            await _sign_in(page, stage.email, stage.password)
            await page.wait_for_url(f"**/streams/watch/{stage.private_id}*")
            answer = await page.evaluate(
                """async ([publicId, privateId]) => {
                    const sdk = await import("/static/streams/streams-sdk.js");
                    const client = new sdk.StreamsClient();  // the page's cookie session and CSRF token
                    const camera = await client.getCamera(publicId);
                    const token = await client.playbackToken(privateId);
                    let missing = null;
                    try { await client.getCamera(crypto.randomUUID()); } catch (error) {
                        missing = [error.status, error.code];
                    }
                    sdk.defineStreamsPlayer();
                    const element = document.createElement("pentad-stream-player");
                    element.setAttribute("camera-id", publicId);
                    element.setAttribute("protocol", "hls");
                    element.id = "sdk-element";
                    document.body.prepend(element);  // on screen, so its frames are decoded
                    return [camera.name, camera.live, token.token.slice(0, 4), missing];
                }""",
                [stage.public_id, stage.private_id],
            )
            assert answer[:3] == ["public yard", True, "psp_"]
            assert answer[3][0] == 404
            # Live events: the client follows the camera over the hub (its socket token: the cookie session).
            await page.evaluate(
                """async (cameraId) => {
                    const sdk = await import("/static/streams/streams-sdk.js");
                    window.seen = [];
                    window.watcher = new sdk.StreamsClient();
                    window.watcher.watchCamera(cameraId, (event) => window.seen.push(event));
                    await window.watcher.realtime.connect();
                }""",
                stage.public_id,
            )
            async with httpx.AsyncClient(base_url=stage.base_url) as http:
                login = await http.post(
                    "/api/auth/login", json={"email": stage.email, "password": stage.password}
                )
            async with AsyncStreamsClient(stage.base_url, login.json()["access_token"]) as owner:
                for name in ("public yard, renamed", "public yard"):
                    await owner.update_camera(stage.public_id, name=name)
            # The camera topic also carries health and viewer counts (media/health.py): follow the edits.
            updated = "window.seen.filter((e) => e.type === 'camera.updated')"
            await page.wait_for_function(f"() => {updated}.length >= 2", timeout=PLAY_MS)
            seen = await page.evaluate(f"() => {updated}.map((e) => [e.type, e.camera_id, e.name])")
            assert seen == [
                ["camera.updated", stage.public_id, "public yard, renamed"],
                ["camera.updated", stage.public_id, "public yard"],
            ]
            video = "document.querySelector('#sdk-element video')"
            await page.wait_for_function(f"() => {video} && {video}.currentTime > 1", timeout=PLAY_MS)
            assert await page.evaluate(f"() => {video}.dataset.protocol") == "hls"
            await page.wait_for_function(
                f"() => {video}.getVideoPlaybackQuality().totalVideoFrames > 0", timeout=PLAY_MS
            )
            await page.evaluate(
                "() => { const e = document.getElementById('sdk-element');"
                " window.kept = e.player; e.remove() }"
            )
            assert await page.evaluate("() => [window.kept.status, window.kept.hls]") == ["stopped", None]
        finally:
            await browser.close()
