"""The camera grid page (/streams/grid) without a browser: sign-in required, a tile per camera one may see
(one's own private camera with a playback token of that camera only, public ones of others), never a tile
of someone else's private camera; an account without `streams.use` gets the 403 page. Chromium plays the
tiles in tests/browser/test_streams.py."""

from __future__ import annotations

import re

import httpx

from pentad.core.platform import Platform
from tests.apps.streams.support import make_camera
from tests.factories import DEFAULT_PASSWORD, account


async def _sign_in(client: httpx.AsyncClient, email: str) -> None:
    client.cookies.clear()
    response = await client.post("/login", data={"email": email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 303, response.text


def _tiles(html: str) -> dict[str, str | None]:
    """camera id -> the tile's playback token (None for an open camera)."""
    found: dict[str, str | None] = {}
    for tile in re.findall(r'<li class="streams-tile"[^>]*>', html):
        camera = re.search(r'data-camera-id="([0-9a-f-]{36})"', tile)
        assert camera, tile
        token = re.search(r'data-token="(psp_[^"]+)"', tile)
        found[camera.group(1)] = token.group(1) if token else None
    return found


async def test_the_grid_shows_the_cameras_one_may_see_and_no_others(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    anonymous = await client.get("/streams/grid")
    assert anonymous.status_code in (302, 303)
    assert anonymous.headers["location"].startswith("/login")

    owner, other = await account(platform), await account(platform)
    private = await make_camera(client, owner, name="Yard", visibility="private")
    public = await make_camera(client, owner, name="Street", visibility="public")
    unlisted = await make_camera(client, owner, name="Hall", visibility="unlisted")

    await _sign_in(client, owner.user.email)
    page = await client.get("/streams/grid")
    assert page.status_code == 200
    assert "media-src 'self' blob:" in page.headers["content-security-policy"]
    tiles = _tiles(page.text)
    assert set(tiles) == {private["id"], public["id"], unlisted["id"]}
    assert tiles[public["id"]] is None
    assert tiles[unlisted["id"]] is None
    token = tiles[private["id"]]
    assert token is not None
    # The tile's token opens that camera's media and nothing else: another camera's answers 403.
    playlist = await client.get(f"/streams/media/{public['id']}/index.m3u8?token={token}")
    assert playlist.status_code in (403, 404)
    mine = await client.get(f"/streams/media/{private['id']}/snapshot.jpg?token={token}")
    assert (mine.status_code, mine.json()["code"]) == (404, "stream_offline")

    await _sign_in(client, other.user.email)
    theirs = _tiles((await client.get("/streams/grid")).text)
    assert set(theirs) == {public["id"]}
    assert private["id"] not in (await client.get("/streams/grid")).text

    outsider = await account(platform, roles=())
    await _sign_in(client, outsider.user.email)
    denied = await client.get("/streams/grid")
    assert denied.status_code == 403
    assert "Yard" not in denied.text
