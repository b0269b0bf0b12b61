"""Playback tokens: one camera each, short-lived, signed. A token of camera A opens nothing of camera B,
an expired or tampered one is refused with 401, and public and unlisted cameras play without one."""

from __future__ import annotations

import base64
import time
import uuid

import httpx
import pytest

from pentad.apps.streams.access import authorize_playback
from pentad.apps.streams.exceptions import (
    CameraNotFound,
    PlaybackTokenInvalid,
    PlaybackTokenRequired,
    PlaybackTokenScope,
)
from pentad.apps.streams.playback import issue_token, read_token
from pentad.core.auth.service import AuthService
from pentad.core.platform import Platform
from tests.apps.streams.support import make_camera, share
from tests.factories import Account, bearer

SECRET = b"s" * 32


def test_a_token_names_its_camera_until_it_expires_and_cannot_be_forged() -> None:
    camera = uuid.uuid4()
    token = issue_token(SECRET, camera, 300, now=1_000_000)
    assert token.startswith("psp_")
    grant = read_token(SECRET, token, now=1_000_299)
    assert grant is not None
    assert grant.camera_id == camera
    assert grant.expires == 1_000_300
    assert read_token(SECRET, token, now=1_000_300) is None
    assert read_token(b"t" * 32, token, now=1_000_000) is None
    raw = bytearray(base64.urlsafe_b64decode(token[4:] + "=="))
    raw[6] ^= 1  # another camera id, same MAC
    forged = "psp_" + base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    assert read_token(SECRET, forged, now=1_000_000) is None
    for garbage in ["", "psp_", "psp_!!!", "pst_" + token[4:], token + "A", token[:-2], "psp_" + "A" * 5000]:
        assert read_token(SECRET, garbage, now=1_000_000) is None, garbage
    assert issue_token(SECRET, camera, 300, now=1_000_000) != token  # a nonce: two tokens differ


async def test_a_private_camera_plays_with_its_own_token_or_for_its_viewers_only(
    client: httpx.AsyncClient, platform: Platform, owner: Account, stranger: Account
) -> None:
    a = await make_camera(client, owner, name="A")
    b = await make_camera(client, owner, name="B")
    issued = await client.post(f"/api/streams/cameras/{a['id']}/playback-token", headers=owner.headers)
    assert issued.status_code == 200, issued.text
    body = issued.json()
    token = body["token"]
    assert body["urls"]["hls"] == f"http://127.0.0.1:8000/streams/media/{a['id']}/index.m3u8?token={token}"
    assert body["urls"]["whep"].endswith(f"/api/streams/cameras/{a['id']}/whep")
    remaining = (
        read_token(platform.signing_secret, token).expires - time.time()  # type: ignore[union-attr]
    )
    assert 0 < remaining <= 300

    a_id, b_id = uuid.UUID(a["id"]), uuid.UUID(b["id"])
    async with platform.database.transaction(writes=False) as session:
        assert (await authorize_playback(session, platform, a_id, token=token)).id == a_id
        with pytest.raises(PlaybackTokenScope):
            await authorize_playback(session, platform, b_id, token=token)
        expired = issue_token(platform.signing_secret, a_id, 300, now=time.time() - 301)
        with pytest.raises(PlaybackTokenInvalid):
            await authorize_playback(session, platform, a_id, token=expired)
        with pytest.raises(PlaybackTokenInvalid):
            await authorize_playback(session, platform, a_id, token=token[:-1])
        with pytest.raises(PlaybackTokenRequired):
            await authorize_playback(session, platform, a_id)
        with pytest.raises(CameraNotFound):
            await authorize_playback(session, platform, uuid.uuid4(), token=token)

    # Over the API: the token is a bearer credential that views its camera and nothing else.
    assert (await client.get(f"/api/streams/cameras/{a['id']}", headers=bearer(token))).status_code == 200
    other = await client.get(f"/api/streams/cameras/{b['id']}", headers=bearer(token))
    assert (other.status_code, other.json()["code"]) == (403, "playback_token_scope")
    expired_call = await client.get(f"/api/streams/cameras/{a['id']}", headers=bearer(expired))
    assert expired_call.status_code == 401
    for method, path in [
        ("GET", "/api/streams/cameras"),
        ("POST", f"/api/streams/cameras/{a['id']}/playback-token"),
        ("PATCH", f"/api/streams/cameras/{a['id']}"),
        ("GET", f"/api/streams/cameras/{a['id']}/keys"),
    ]:
        response = await client.request(
            method, path, json={} if method == "PATCH" else None, headers=bearer(token)
        )
        assert response.status_code == 403, (method, path)

    # A stranger gets no token of a private camera; a viewer does.
    refused = await client.post(f"/api/streams/cameras/{a['id']}/playback-token", headers=stranger.headers)
    assert refused.status_code == 404
    await share(client, owner, a["id"], stranger, "viewer")
    async with platform.database.transaction(writes=False) as session:
        raw_key = stranger.headers["Authorization"].removeprefix("Bearer ")
        principal = await AuthService(session, platform).authenticate_bearer(raw_key)
        assert (await authorize_playback(session, platform, a_id, principal=principal)).id == a_id


async def test_public_and_unlisted_cameras_play_without_a_token(
    client: httpx.AsyncClient, platform: Platform, owner: Account
) -> None:
    for visibility in ("public", "unlisted"):
        camera = await make_camera(client, owner, visibility=visibility)
        async with platform.database.transaction(writes=False) as session:
            found = await authorize_playback(session, platform, uuid.UUID(camera["id"]))
        assert str(found.id) == camera["id"]
