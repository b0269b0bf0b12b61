"""The streams topics on a real /ws connection: who may subscribe (as over REST), that a taken role ends
the subscription at once, and the frames that keys, sessions and camera changes put on them."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from pentad.apps.streams.actions.publish import authorize_publish, end_session, start_session
from pentad.core.platform import Platform
from tests.apps.chat.sockets import connected, settle
from tests.apps.streams.support import make_camera, make_key, share
from tests.factories import Account, issue_api_key


def _token(who: Account) -> str:
    return who.headers["Authorization"].removeprefix("Bearer ")


async def allowed(app: FastAPI, token: str, topic: str) -> bool:
    async with connected(app, token) as socket:
        ack = await socket.request("subscribe", topic=topic)
    if not ack["ok"]:
        assert ack["error"]["code"] == "forbidden", ack
    return bool(ack["ok"])


async def test_who_may_subscribe(
    app: FastAPI, client: httpx.AsyncClient, platform: Platform, owner: Account, stranger: Account, hub: None
) -> None:
    private = await make_camera(client, owner, name="private")
    public = await make_camera(client, owner, name="public", visibility="public")
    unlisted = await make_camera(client, owner, name="unlisted", visibility="unlisted")
    viewer = Account(stranger.user, stranger.headers)
    token = (
        await client.post(f"/api/streams/cameras/{private['id']}/playback-token", headers=owner.headers)
    ).json()
    users_only = await issue_api_key(platform, owner.user, ["core.api_keys.own"])

    def camera(c: dict[str, Any]) -> str:
        return f"streams.camera.{c['id']}"

    cases = [
        (_token(owner), camera(private), True),
        (_token(stranger), camera(private), False),
        (_token(stranger), camera(public), True),
        (_token(stranger), camera(unlisted), True),
        (token["token"], camera(private), True),
        (token["token"], camera(public), False),  # a token opens its own camera only, as over REST
        (token["token"], camera(unlisted), False),
        (users_only, camera(private), False),
        (_token(owner), "streams.camera.not-a-uuid", False),
        (_token(owner), "streams.directory", True),
        (users_only, "streams.directory", False),
        (_token(owner), f"streams.user.{owner.id}", True),
        (_token(stranger), f"streams.user.{owner.id}", False),
        (token["token"], f"streams.user.{owner.id}", False),
    ]
    found = [(topic, await allowed(app, raw, topic)) for raw, topic, _ in cases]
    assert found == [(topic, expected) for _, topic, expected in cases]

    # The playback token of one private camera opens no other private one.
    other = await make_camera(client, owner, name="other private")
    assert await allowed(app, token["token"], camera(other)) is False
    await share(client, owner, private["id"], viewer, "viewer")
    assert await allowed(app, _token(viewer), camera(private)) is True


async def test_a_viewer_whose_role_is_taken_is_unsubscribed_at_once(
    app: FastAPI, client: httpx.AsyncClient, owner: Account, stranger: Account, hub: None
) -> None:
    camera = await make_camera(client, owner)
    await share(client, owner, camera["id"], stranger, "viewer")
    topic = f"streams.camera.{camera['id']}"
    async with connected(app, _token(stranger)) as socket:
        assert (await socket.request("subscribe", topic=topic))["ok"]
        taken = await client.delete(
            f"/api/streams/cameras/{camera['id']}/grants/{stranger.id}", headers=owner.headers
        )
        assert taken.status_code == 204
        # Well before the revalidation interval: the hub re-asked as soon as the change committed.
        while (frame := await socket.recv())["op"] != "unsubscribed":
            assert frame["op"] in ("event", "join", "leave"), frame
        assert frame == {"op": "unsubscribed", "topic": topic, "reason": "forbidden"}
        await settle()
    again = await client.delete(
        f"/api/streams/cameras/{camera['id']}/grants/{stranger.id}", headers=owner.headers
    )
    assert (again.status_code, again.json()["code"]) == (404, "camera_grant_not_found")
    own = await client.delete(f"/api/streams/cameras/{camera['id']}/grants/{owner.id}", headers=owner.headers)
    assert (own.status_code, own.json()["code"]) == (409, "camera_owner_role")


async def test_sessions_and_changes_are_published_and_keys_never_are(
    app: FastAPI, client: httpx.AsyncClient, platform: Platform, owner: Account, stranger: Account, hub: None
) -> None:
    camera = await make_camera(client, owner, visibility="public")
    topic = f"streams.camera.{camera['id']}"
    async with connected(app, _token(owner)) as mine, connected(app, _token(stranger)) as theirs:
        for socket, topics in (
            (mine, [topic, f"streams.user.{owner.id}"]),
            (theirs, [topic, "streams.directory"]),
        ):
            for name in topics:
                assert (await socket.request("subscribe", topic=name))["ok"]

        key = await make_key(client, owner, camera["id"])
        made = await mine.event(f"streams.user.{owner.id}")
        assert made["data"] == {
            "type": "key.created",
            "camera_id": camera["id"],
            "key_id": key["id"],
            "hint": key["hint"],
        }

        grant = await authorize_publish(platform, key["key"])
        assert grant is not None
        session_id = await start_session(platform, grant, engine="builtin")
        online = {
            "type": "camera.online",
            "camera_id": camera["id"],
            "session_id": str(session_id),
            "reason": None,
        }
        assert (await theirs.event(topic))["data"] == online
        assert (await theirs.event("streams.directory"))["data"] == online
        await end_session(platform, session_id, "publisher_left")
        offline = {**online, "type": "camera.offline", "reason": "publisher_left"}
        assert (await theirs.event(topic))["data"] == offline
        assert (await theirs.event("streams.directory"))["data"] == offline

        hidden = await client.patch(
            f"/api/streams/cameras/{camera['id']}", json={"visibility": "private"}, headers=owner.headers
        )
        assert hidden.status_code == 200
        changed = {
            "type": "camera.updated",
            "camera_id": camera["id"],
            "name": "Front door",
            "visibility": "private",
        }
        assert (await theirs.event("streams.directory"))["data"] == changed
        await settle()
        frames = repr([*mine.pending_events(), *theirs.pending_events()])
        assert key["key"] not in frames
        assert key["key"][4:] not in frames


async def test_a_camera_made_private_ends_the_subscriptions_of_those_without_a_role_at_once(
    app: FastAPI, client: httpx.AsyncClient, owner: Account, stranger: Account, hub: None
) -> None:
    """Watching a public camera needs no role, so nobody can list its viewers: turning it private asks
    every subscriber again, at once (not at the hub's revalidation a minute later)."""
    camera = await make_camera(client, owner, visibility="public")
    topic = f"streams.camera.{camera['id']}"
    async with connected(app, _token(owner)) as mine, connected(app, _token(stranger)) as theirs:
        for socket in (mine, theirs):
            assert (await socket.request("subscribe", topic=topic))["ok"]
        hidden = await client.patch(
            f"/api/streams/cameras/{camera['id']}", json={"visibility": "private"}, headers=owner.headers
        )
        assert hidden.status_code == 200
        while (frame := await theirs.recv())["op"] != "unsubscribed":
            assert frame["op"] in ("event", "ping"), frame
        assert frame == {"op": "unsubscribed", "topic": topic, "reason": "forbidden"}
        await settle()  # the owner's own check, still running, shares the test's one connection
        renamed = await client.patch(
            f"/api/streams/cameras/{camera['id']}", json={"name": "Back door"}, headers=owner.headers
        )
        assert renamed.status_code == 200
        while (seen := await mine.event(topic))["data"].get("name") != "Back door":
            pass
        assert seen["data"]["visibility"] == "private"
        await settle()
        assert not [event for event in theirs.pending_events() if event["topic"] == topic]
