"""Stream keys: shown once, stored as a hash only, rotated and revoked; what the media plane asks
(`authorize_publish`) accepts a good key and refuses revoked, unknown and garbled ones; sessions the media
plane opens and closes are recorded with their domain events."""

from __future__ import annotations

import re
import uuid

import httpx

from pentad.apps.streams.actions.keys import hash_key
from pentad.apps.streams.actions.publish import authorize_publish, end_session, start_session
from pentad.core.platform import Platform
from tests.apps.streams.support import make_camera, make_key, rows, snapshot
from tests.factories import Account

KEY = re.compile(r"^psk_[A-Za-z0-9_-]{43}$")


async def test_a_key_is_shown_once_and_only_its_hash_is_stored(
    client: httpx.AsyncClient, platform: Platform, owner: Account
) -> None:
    camera = await make_camera(client, owner)
    created = await make_key(client, owner, camera["id"])
    raw = created["key"]
    assert KEY.match(raw)
    assert created["hint"] == raw[-4:]
    assert created["rtmp_url"] == "rtmp://127.0.0.1:1935/live"
    assert created["name"] == "obs"

    listed = await client.get(f"/api/streams/cameras/{camera['id']}/keys", headers=owner.headers)
    assert listed.status_code == 200
    assert raw not in listed.text
    assert raw[4:] not in listed.text
    assert [key["id"] for key in listed.json()] == [created["id"]]
    assert "key" not in listed.json()[0]

    (stored,) = await rows(platform, "streams_keys")
    assert stored["secret_hash"] == hash_key(raw)
    everything = repr(await snapshot(platform))
    assert raw[4:] not in everything, "the key (or its secret) is stored somewhere"
    assert raw[4:] not in repr(await rows(platform, "audit_events"))


async def test_authorize_publish_accepts_a_good_key_and_refuses_the_rest(
    client: httpx.AsyncClient, platform: Platform, owner: Account
) -> None:
    camera = await make_camera(client, owner, profile="ladder", recording_mode="continuous")
    raw = (await make_key(client, owner, camera["id"]))["key"]

    grant = await authorize_publish(platform, raw)
    assert grant is not None
    assert (str(grant.camera_id), grant.source, grant.profile, grant.recording_mode) == (
        camera["id"], "rtmp", "ladder", "continuous"
    )  # fmt: skip
    assert await authorize_publish(platform, raw + "?vhost=x") == grant
    (stored,) = await rows(platform, "streams_keys")
    assert stored["last_used_at"] is not None

    garbage = [
        "",
        "psk_",
        raw[:-1],
        raw + "A",
        raw.upper(),
        "psk_" + "é" * 43,
        "x" * 10_000,
        raw[:-4] + "!!!!",
    ]
    unknown = "psk_" + "A" * 43
    for refused in [*garbage, unknown]:
        assert await authorize_publish(platform, refused) is None, refused


async def test_a_revoked_or_rotated_key_no_longer_publishes(
    client: httpx.AsyncClient, platform: Platform, owner: Account
) -> None:
    camera = await make_camera(client, owner)
    first = await make_key(client, owner, camera["id"])
    second = await make_key(client, owner, camera["id"])

    rotated = await client.post(
        f"/api/streams/cameras/{camera['id']}/keys/{first['id']}/rotate", headers=owner.headers
    )
    assert rotated.status_code == 201, rotated.text
    assert rotated.json()["name"] == "obs"
    assert rotated.json()["key"] != first["key"]
    assert await authorize_publish(platform, first["key"]) is None
    assert await authorize_publish(platform, rotated.json()["key"]) is not None

    revoked = await client.delete(
        f"/api/streams/cameras/{camera['id']}/keys/{second['id']}", headers=owner.headers
    )
    assert revoked.status_code == 204
    assert await authorize_publish(platform, second["key"]) is None
    again = await client.delete(
        f"/api/streams/cameras/{camera['id']}/keys/{second['id']}", headers=owner.headers
    )
    assert again.status_code == 204
    listed = (await client.get(f"/api/streams/cameras/{camera['id']}/keys", headers=owner.headers)).json()
    assert [(key["id"], key["revoked_at"] is not None) for key in listed] == [
        (first["id"], True), (second["id"], True), (rotated.json()["id"], False)
    ]  # fmt: skip


async def test_keys_of_another_camera_or_unknown_ids_answer_404(
    client: httpx.AsyncClient, platform: Platform, owner: Account
) -> None:
    camera, other = await make_camera(client, owner), await make_camera(client, owner, name="Other")
    key = await make_key(client, owner, other["id"])
    before = await snapshot(platform)
    for method, path in [
        ("DELETE", f"/api/streams/cameras/{camera['id']}/keys/{key['id']}"),
        ("POST", f"/api/streams/cameras/{camera['id']}/keys/{key['id']}/rotate"),
        ("DELETE", f"/api/streams/cameras/{camera['id']}/keys/{uuid.uuid4()}"),
    ]:
        response = await client.request(method, path, headers=owner.headers)
        assert (response.status_code, response.json()["code"]) == (404, "stream_key_not_found"), path
    long_name = await client.post(
        f"/api/streams/cameras/{camera['id']}/keys", json={"name": "x" * 101}, headers=owner.headers
    )
    assert long_name.status_code == 422
    assert await snapshot(platform) == before
    assert await authorize_publish(platform, key["key"]) is not None


async def test_keys_of_deleted_or_rtsp_cameras_do_not_publish(
    client: httpx.AsyncClient, platform: Platform, owner: Account
) -> None:
    camera = await make_camera(client, owner)
    key = await make_key(client, owner, camera["id"])
    pulled = await make_camera(client, owner, source="rtsp", rtsp_url="rtsp://cam.example.com/live")
    pulled_key = await make_key(client, owner, pulled["id"])
    assert await authorize_publish(platform, pulled_key["key"]) is None
    assert (
        await client.delete(f"/api/streams/cameras/{camera['id']}", headers=owner.headers)
    ).status_code == 204
    assert await authorize_publish(platform, key["key"]) is None


async def test_sessions_the_media_plane_opens_and_closes_mark_a_camera_live(
    client: httpx.AsyncClient, platform: Platform, owner: Account
) -> None:
    camera = await make_camera(client, owner, visibility="public")
    grant = await authorize_publish(platform, (await make_key(client, owner, camera["id"]))["key"])
    assert grant is not None

    session_id = await start_session(platform, grant, engine="builtin", node="node-a")
    seen = (await client.get(f"/api/streams/cameras/{camera['id']}", headers=owner.headers)).json()
    assert seen["live"] is True
    directory = (await client.get("/api/streams/directory", headers=owner.headers)).json()
    assert directory == [{"id": camera["id"], "name": "Front door", "live": True}]

    assert await end_session(platform, session_id, "publisher_left", bytes_in=1234) is True
    assert await end_session(platform, session_id, "again") is False
    assert await end_session(platform, uuid.uuid4(), "unknown") is False
    (row,) = await rows(platform, "streams_sessions")
    assert (row["engine"], row["node"], row["end_reason"], row["bytes_in"]) == (
        "builtin", "node-a", "publisher_left", 1234
    )  # fmt: skip
    assert row["ended_at"] is not None
    assert row["key_id"] == grant.key_id
    seen = (await client.get(f"/api/streams/cameras/{camera['id']}", headers=owner.headers)).json()
    assert seen["live"] is False
