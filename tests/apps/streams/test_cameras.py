"""Cameras over the API: create, read, list by visibility, change, delete; an RTSP URL encrypted at rest and
shown masked; bad input refused with problem+json and nothing changed."""

from __future__ import annotations

import uuid

import httpx

from pentad.apps.streams.views import rtsp_context
from pentad.core.platform import Platform
from tests.apps.streams.support import make_camera, rows, share, snapshot
from tests.factories import Account, account

RTSP = "rtsp://admin:s3cret-Pass@93.184.216.34:554/stream1"


async def test_the_creator_owns_a_new_camera(client: httpx.AsyncClient, owner: Account) -> None:
    camera = await make_camera(client, owner, name="  Yard  ", visibility="unlisted")
    assert camera["name"] == "Yard"
    assert camera["owner_id"] == owner.id
    assert (camera["visibility"], camera["source"], camera["profile"]) == ("unlisted", "rtmp", "passthrough")
    assert (camera["role"], camera["can_manage"], camera["live"]) == ("owner", True, False)
    grants = await client.get(f"/api/streams/cameras/{camera['id']}/grants", headers=owner.headers)
    assert grants.json() == [{"user_id": owner.id, "role": "owner"}]
    assert (await client.get(f"/api/streams/cameras/{camera['id']}", headers=owner.headers)).json() == camera


BAD_CAMERAS: list[tuple[dict[str, object], int, str]] = [
    ({"name": "   "}, 422, "validation_failed"),
    ({"name": "x" * 201}, 422, "validation_failed"),
    ({"name": "a", "visibility": "secret"}, 422, "validation_failed"),
    ({"name": "a", "source": "rtsp", "rtsp_url": "http://cam.example/"}, 422, "validation_failed"),
    ({"name": "a", "source": "rtsp", "rtsp_url": "rtsp://"}, 422, "validation_failed"),
    ({"name": "a", "source": "rtsp", "rtsp_url": "rtsp://cam example/"}, 422, "validation_failed"),
    ({"name": "a", "retention_days": 0}, 422, "validation_failed"),
    ({"name": "a", "retention_bytes": 2**63}, 422, "validation_failed"),  # past the BIGINT column
    ({"name": "a", "source": "rtsp"}, 400, "rtsp_url_required"),
    ({"name": "a", "rtsp_url": "rtsp://203.0.113.7/"}, 400, "rtsp_url_unexpected"),
    ({"name": "a", "source": "rtsp", "rtsp_url": "rtsp://10.0.0.5/live"}, 400, "rtsp_target_not_allowed"),
    ({"name": "a", "source": "rtsp", "rtsp_url": "rtsp://localhost/live"}, 400, "rtsp_target_not_allowed"),
    ({"name": "a", "source": "rtsp", "rtsp_url": "rtsp://[::1]:8554/x"}, 400, "rtsp_target_not_allowed"),
]


async def test_bad_cameras_are_refused_and_change_nothing(
    client: httpx.AsyncClient, platform: Platform, owner: Account
) -> None:
    before = await snapshot(platform)
    for body, status, code in BAD_CAMERAS:
        response = await client.post("/api/streams/cameras", json=body, headers=owner.headers)
        assert response.status_code == status, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == code, body
    assert await snapshot(platform) == before


async def test_an_admin_may_add_a_camera_on_the_lan(client: httpx.AsyncClient, platform: Platform) -> None:
    admin = await account(platform, admin=True)
    camera = await make_camera(client, admin, source="rtsp", rtsp_url="rtsp://cam:pw@192.168.1.20/live")
    assert camera["rtsp_url"] == "rtsp://cam:****@192.168.1.20/live"


async def test_an_rtsp_url_is_encrypted_at_rest_and_shown_masked_to_managers_only(
    client: httpx.AsyncClient, platform: Platform, owner: Account, stranger: Account
) -> None:
    camera = await make_camera(client, owner, source="rtsp", rtsp_url=RTSP, visibility="public")
    assert camera["rtsp_url"] == "rtsp://admin:****@93.184.216.34:554/stream1"
    (stored,) = [row for row in await rows(platform, "streams_cameras") if str(row["id"]) == camera["id"]]
    assert "s3cret" not in stored["rtsp_url_enc"]
    assert "93.184.216.34" not in stored["rtsp_url_enc"]
    assert platform.keyring.decrypt(stored["rtsp_url_enc"], context=rtsp_context(stored["id"])) == RTSP
    seen = await client.get(f"/api/streams/cameras/{camera['id']}", headers=stranger.headers)
    assert seen.status_code == 200
    assert seen.json()["rtsp_url"] is None
    assert "s3cret" not in seen.text

    moved = await client.patch(
        f"/api/streams/cameras/{camera['id']}",
        json={"rtsp_url": "rtsp://cam.example.com/other"},
        headers=owner.headers,
    )
    assert moved.json()["rtsp_url"] == "rtsp://cam.example.com/other"
    to_rtmp = await client.patch(
        f"/api/streams/cameras/{camera['id']}", json={"source": "rtmp"}, headers=owner.headers
    )
    assert (to_rtmp.json()["source"], to_rtmp.json()["rtsp_url"]) == ("rtmp", None)
    (stored,) = [row for row in await rows(platform, "streams_cameras") if str(row["id"]) == camera["id"]]
    assert stored["rtsp_url_enc"] is None


async def test_listings_show_own_shared_and_public_cameras_never_others_unlisted_or_private(
    client: httpx.AsyncClient, platform: Platform, owner: Account, stranger: Account
) -> None:
    public = await make_camera(client, owner, name="A public", visibility="public")
    unlisted = await make_camera(client, owner, name="B unlisted", visibility="unlisted")
    private = await make_camera(client, owner, name="C private")
    shared = await make_camera(client, owner, name="D shared")
    await share(client, owner, shared["id"], stranger, "viewer")
    theirs = await make_camera(client, stranger, name="E theirs")

    def names(response: httpx.Response) -> list[str]:
        assert response.status_code == 200, response.text
        return [camera["name"] for camera in response.json()]

    assert names(await client.get("/api/streams/cameras", headers=owner.headers)) == [
        "A public", "B unlisted", "C private", "D shared"
    ]  # fmt: skip
    assert names(await client.get("/api/streams/cameras", headers=stranger.headers)) == [
        "A public", "D shared", "E theirs"
    ]  # fmt: skip
    assert names(await client.get("/api/streams/me/cameras", headers=stranger.headers)) == [
        "D shared",
        "E theirs",
    ]
    assert names(await client.get("/api/streams/directory", headers=stranger.headers)) == ["A public"]
    admin = await account(platform, admin=True)
    assert len(names(await client.get("/api/streams/cameras", headers=admin.headers))) == 5

    # Unlisted plays by id for anyone; private does not exist for those without a role.
    assert (
        await client.get(f"/api/streams/cameras/{unlisted['id']}", headers=stranger.headers)
    ).status_code == 200
    hidden = await client.get(f"/api/streams/cameras/{private['id']}", headers=stranger.headers)
    assert (hidden.status_code, hidden.json()["code"]) == (404, "camera_not_found")
    assert (
        await client.get(f"/api/streams/cameras/{theirs['id']}", headers=owner.headers)
    ).status_code == 404
    seen = (await client.get(f"/api/streams/cameras/{public['id']}", headers=stranger.headers)).json()
    assert (seen["role"], seen["can_manage"]) == (None, False)


async def test_an_owner_changes_a_camera_and_null_clears_optional_fields(
    client: httpx.AsyncClient, owner: Account
) -> None:
    camera = await make_camera(client, owner, retention_days=3)
    changed = await client.patch(
        f"/api/streams/cameras/{camera['id']}",
        json={
            "name": "Porch",
            "visibility": "public",
            "recording_mode": "continuous",
            "retention_days": None,
        },
        headers=owner.headers,
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["name"], body["visibility"], body["recording_mode"], body["retention_days"]) == (
        "Porch", "public", "continuous", None
    )  # fmt: skip
    refused = await client.patch(
        f"/api/streams/cameras/{camera['id']}", json={"name": None}, headers=owner.headers
    )
    assert (refused.status_code, refused.json()["code"]) == (400, "field_required")


async def test_a_deleted_camera_is_gone_with_its_keys_and_roles(
    client: httpx.AsyncClient, platform: Platform, owner: Account, stranger: Account
) -> None:
    camera = await make_camera(client, owner)
    await share(client, owner, camera["id"], stranger, "operator")
    key = await client.post(f"/api/streams/cameras/{camera['id']}/keys", headers=owner.headers)
    assert key.status_code == 201
    deleted = await client.delete(f"/api/streams/cameras/{camera['id']}", headers=owner.headers)
    assert deleted.status_code == 204
    for who in (owner, stranger):
        assert (
            await client.get(f"/api/streams/cameras/{camera['id']}", headers=who.headers)
        ).status_code == 404
    assert (await client.get("/api/streams/cameras", headers=owner.headers)).json() == []
    assert all(row["revoked_at"] is not None for row in await rows(platform, "streams_keys"))
    assert [row for row in await rows(platform, "grants") if row["resource_id"] == camera["id"]] == []
    again = await client.delete(f"/api/streams/cameras/{camera['id']}", headers=owner.headers)
    assert again.status_code == 404


async def test_unknown_cameras_answer_404(client: httpx.AsyncClient, owner: Account) -> None:
    missing = uuid.uuid4()
    for method, path in [
        ("GET", f"/api/streams/cameras/{missing}"),
        ("PATCH", f"/api/streams/cameras/{missing}"),
        ("DELETE", f"/api/streams/cameras/{missing}"),
        ("POST", f"/api/streams/cameras/{missing}/keys"),
        ("POST", f"/api/streams/cameras/{missing}/playback-token"),
    ]:
        response = await client.request(
            method, path, json={} if method == "PATCH" else None, headers=owner.headers
        )
        assert (response.status_code, response.json()["code"]) == (404, "camera_not_found"), (method, path)
    malformed = await client.get("/api/streams/cameras/not-a-uuid", headers=owner.headers)
    assert malformed.status_code == 422
