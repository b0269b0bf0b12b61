"""Who may do what with a camera: every role (and none, and admin, and a scoped API key) against every
action, on a private and on a public camera. A refused action answers 404 (cannot even view) or 403 (may
view, may not do this) and changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from pentad.core.platform import Platform
from tests.apps.streams.support import make_camera, make_key, share, snapshot
from tests.factories import Account, account, bearer, issue_api_key

Action = Callable[[httpx.AsyncClient, dict[str, Any], Account], Awaitable[httpx.Response]]


def _path(camera: dict[str, Any], tail: str = "") -> str:
    return f"/api/streams/cameras/{camera['id']}{tail}"


ACTIONS: dict[str, Action] = {
    "view": lambda c, cam, who: c.get(_path(cam), headers=who.headers),
    "playback token": lambda c, cam, who: c.post(_path(cam, "/playback-token"), headers=who.headers),
    "change": lambda c, cam, who: c.patch(_path(cam), json={"name": "Renamed"}, headers=who.headers),
    "list keys": lambda c, cam, who: c.get(_path(cam, "/keys"), headers=who.headers),
    "make key": lambda c, cam, who: c.post(_path(cam, "/keys"), headers=who.headers),
    "revoke key": lambda c, cam, who: c.delete(_path(cam, f"/keys/{cam['key_id']}"), headers=who.headers),
    "list roles": lambda c, cam, who: c.get(_path(cam, "/grants"), headers=who.headers),
    "give role": lambda c, cam, who: c.post(
        _path(cam, "/grants"), json={"email": cam["spare_email"], "role": "viewer"}, headers=who.headers
    ),
    "take role": lambda c, cam, who: c.delete(_path(cam, f"/grants/{cam['viewer_id']}"), headers=who.headers),
    "delete": lambda c, cam, who: c.delete(_path(cam), headers=who.headers),
}
MANAGE = {"change", "list keys", "make key", "revoke key", "list roles", "give role", "take role", "delete"}
ALLOWED = {
    "owner": set(ACTIONS),
    "admin": set(ACTIONS),
    "operator": {"view", "playback token"},
    "viewer": {"view", "playback token"},
    "nobody": set(),
    "key scoped to streams.use": set(),
}


async def _setup(
    client: httpx.AsyncClient, platform: Platform, visibility: str
) -> tuple[dict[str, Any], dict[str, Account]]:
    owner = await account(platform)
    people = {
        "owner": owner,
        "admin": await account(platform, admin=True),
        "operator": await account(platform),
        "viewer": await account(platform),
        "nobody": await account(platform),
    }
    people["key scoped to streams.use"] = Account(
        people["operator"].user,
        bearer(await issue_api_key(platform, people["operator"].user, ["streams.use", "streams.watch"])),
    )
    camera = await make_camera(client, owner, visibility=visibility)
    await share(client, owner, camera["id"], people["operator"], "operator")
    await share(client, owner, camera["id"], people["viewer"], "viewer")
    camera["key_id"] = (await make_key(client, owner, camera["id"]))["id"]
    camera["viewer_id"] = people["viewer"].id
    camera["spare_email"] = (await account(platform)).email
    return camera, people


async def _walk(client: httpx.AsyncClient, platform: Platform, visibility: str) -> dict[tuple[str, str], int]:
    camera, people = await _setup(client, platform, visibility)
    found: dict[tuple[str, str], int] = {}
    for role, who in people.items():
        if role in ("owner", "admin"):
            continue
        # What these roles may do only reads, so nothing they try may change a row.
        before = await snapshot(platform)
        for action, call in ACTIONS.items():
            response = await call(client, camera, who)
            found[(role, action)] = response.status_code
            if response.status_code >= 400:
                assert response.headers["content-type"] == "application/problem+json"
        assert await snapshot(platform) == before, role
    # Owners and admins may do everything (the owner deletes last: it ends the camera; an admin's delete is
    # test_cameras'). Roles taken or given are put back between calls.
    for role in ("admin", "owner"):
        for action, call in ACTIONS.items():
            if action == "delete" and role == "admin":
                continue
            response = await call(client, camera, people[role])
            found[(role, action)] = response.status_code
            if action == "take role":
                await share(client, people["owner"], camera["id"], people["viewer"], "viewer")
            if action == "give role":
                await client.delete(
                    _path(camera, "/grants/") + response.json()["user_id"], headers=people["owner"].headers
                )
    return found


def _expected(visibility: str) -> dict[tuple[str, str], int]:
    expected = {}
    for role, allowed in ALLOWED.items():
        for action in ACTIONS:
            if (role, action) == ("admin", "delete"):
                continue
            if action in allowed or (visibility == "public" and action in ("view", "playback token")):
                status = {
                    "delete": 204,
                    "revoke key": 204,
                    "take role": 204,
                    "make key": 201,
                    "give role": 201,
                }
                expected[(role, action)] = status.get(action, 200)
            elif role == "key scoped to streams.use" and action in ("view", "playback token"):
                expected[(role, action)] = 404  # its operator role on the camera is not in its scopes
            elif visibility == "public" or role in ("operator", "viewer"):
                expected[(role, action)] = 403
            else:
                expected[(role, action)] = 404
    return expected


async def test_roles_on_a_private_camera(client: httpx.AsyncClient, platform: Platform) -> None:
    assert await _walk(client, platform, "private") == _expected("private")


async def test_roles_on_a_public_camera(client: httpx.AsyncClient, platform: Platform) -> None:
    found = await _walk(client, platform, "public")
    assert found == _expected("public")
    assert {found[("nobody", action)] for action in MANAGE} == {403}
