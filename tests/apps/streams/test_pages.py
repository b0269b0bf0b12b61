"""The streams pages without a browser: sign-in required, adding a camera through the form (with the
session's CSRF token), a stream key shown once and revoked, and the deny side (others' private cameras,
keys of cameras one does not own)."""

from __future__ import annotations

import re

import httpx

from pentad.apps.streams.actions.publish import authorize_publish
from pentad.core.auth.models import User
from pentad.core.platform import Platform
from tests.apps.streams.support import make_camera, share
from tests.factories import DEFAULT_PASSWORD, account


async def _sign_in(client: httpx.AsyncClient, user: User) -> None:
    client.cookies.clear()
    response = await client.post("/login", data={"email": user.email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 303, response.text


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


async def test_a_member_adds_a_camera_makes_a_key_seen_once_and_revokes_it(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    anonymous = await client.get("/streams")
    assert anonymous.status_code in (302, 303)
    assert anonymous.headers["location"].startswith("/login")

    member = await account(platform)
    await _sign_in(client, member.user)
    page = await client.get("/streams")
    assert page.status_code == 200
    assert "No cameras yet" in page.text
    csrf = _csrf(page.text)

    forged = await client.post("/streams/cameras", data={"name": "Yard", "csrf_token": "0" * 64})
    assert forged.status_code == 403
    blank = await client.post("/streams/cameras", data={"name": "  ", "csrf_token": csrf})
    assert blank.status_code == 400
    assert "No cameras yet" in blank.text
    created = await client.post(
        "/streams/cameras", data={"name": "Yard", "visibility": "unlisted", "csrf_token": csrf}
    )
    assert created.status_code == 303, created.text
    camera_path = created.headers["location"]
    assert re.fullmatch(r"/streams/cameras/[0-9a-f-]{36}", camera_path)
    assert "Yard" in (await client.get("/streams")).text

    made = await client.post(f"{camera_path}/keys", data={"name": "OBS", "csrf_token": csrf})
    assert made.status_code == 200, made.text
    assert made.headers["cache-control"] == "no-store"
    found = re.search(r'data-testid="stream-key">(psk_[A-Za-z0-9_-]{43})<', made.text)
    assert found, made.text
    key = found.group(1)
    assert "rtmp://127.0.0.1:1935/live" in made.text
    assert await authorize_publish(platform, key) is not None

    again = await client.get(camera_path)
    assert key not in again.text
    assert key[4:] not in again.text
    assert f"…{key[-4:]}" in again.text
    revoke = re.search(r'action="(/streams/cameras/[0-9a-f-]{36}/keys/[0-9a-f-]{36}/revoke)"', again.text)
    assert revoke, again.text
    revoked = await client.post(revoke.group(1), data={"csrf_token": csrf})
    assert revoked.status_code == 303
    assert await authorize_publish(platform, key) is None
    assert "revoked" in (await client.get(camera_path)).text


async def test_others_private_cameras_and_their_keys_stay_closed(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    owner, viewer, stranger = await account(platform), await account(platform), await account(platform)
    camera = await make_camera(client, owner, name="Backyard")
    await share(client, owner, camera["id"], viewer, "viewer")
    path = f"/streams/cameras/{camera['id']}"

    await _sign_in(client, stranger.user)
    assert (await client.get(path)).status_code == 404
    assert "Backyard" not in (await client.get("/streams")).text

    await _sign_in(client, viewer.user)
    seen = await client.get(path)
    assert seen.status_code == 200
    assert "Backyard" in seen.text
    assert "Make a stream key" not in seen.text
    refused = await client.post(f"{path}/keys", data={"csrf_token": _csrf(seen.text)})
    assert refused.status_code == 403
    keys = await client.get(f"/api/streams/cameras/{camera['id']}/keys", headers=owner.headers)
    assert keys.json() == []
