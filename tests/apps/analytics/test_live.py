"""Live visitors: the frame counts visitors and pageviews of the last five minutes and the top pages
now; the topic `analytics.site.{id}.live` is for those who may read the site (owner, viewer; a stranger
and a key without the site scope are refused, nobody publishes), and the live service publishes a frame
for the sites whose events were just stored, then one last frame once they fall quiet."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from pentad.apps.analytics import live
from pentad.apps.analytics.ingest import EventRow
from pentad.core.platform import Platform
from tests.apps.analytics.test_rollups import site_key_of, store
from tests.apps.chat.sockets import connected, settle
from tests.factories import Account, account, bearer, issue_api_key


@pytest.fixture
async def hub(platform: Platform) -> AsyncIterator[None]:
    await platform.hub.start()
    yield
    await platform.hub.stop()


def _token(who: Account) -> str:
    return who.headers["Authorization"].removeprefix("Bearer ")


def _event(key: int, visitor: int, minutes_ago: float, path: str, name: str = "pageview") -> EventRow:
    ts = int(datetime.now(UTC).timestamp() * 1000 - minutes_ago * 60_000)
    return EventRow(site_key=key, ts=ts, visitor_id=visitor, name=name, hostname="shop.example", path=path)


async def test_live_frames_reach_those_who_may_read_the_site(
    app: FastAPI,
    client: httpx.AsyncClient,
    platform: Platform,
    owner: Account,
    site: dict[str, str],
    hub: None,
) -> None:
    key = await site_key_of(platform, site)
    viewer, stranger = await account(platform), await account(platform)
    await client.post(f"/api/analytics/sites/{site['id']}/grants",
                      json={"email": viewer.user.email, "role": "viewer"}, headers=owner.headers)  # fmt: skip
    no_scope = bearer(await issue_api_key(platform, owner.user, ["analytics.use"]))
    topic = live.live_topic(site["id"])  # type: ignore[arg-type]

    platform.resource(live.LIVE_SITES).seen.clear()
    assert await live.publish_due(platform) == 0  # nothing stored: nothing published

    async with connected(app, _token(owner)) as watcher, connected(app, _token(viewer)) as other:
        assert (await watcher.request("subscribe", topic=topic))["ok"]
        assert (await other.request("subscribe", topic=topic))["ok"]
        refused = await watcher.request("publish", topic=topic, data={"visitors": 1})
        assert not refused["ok"]
        async with connected(app, _token(stranger)) as outsider:
            ack = await outsider.request("subscribe", topic=topic)
            assert (ack["ok"], ack["error"]["code"]) == (False, "forbidden")
        async with connected(app, no_scope["Authorization"].removeprefix("Bearer ")) as narrow:
            assert not (await narrow.request("subscribe", topic=topic))["ok"]

        await store(platform, [
            _event(key, 1, 1, "/"), _event(key, 1, 0.5, "/pricing"), _event(key, 2, 2, "/"),
            _event(key, 2, 1.5, "/", name="Signup"), _event(key, 3, 12, "/old"),
        ])  # fmt: skip
        assert await live.publish_due(platform) == 1
        await settle()
        frame = (await watcher.event(topic))["data"]
        assert (frame["visitors"], frame["pageviews"]) == (2, 3)
        assert [(p["path"], p["visitors"]) for p in frame["top_pages"]] == [("/", 2), ("/pricing", 1)]
        assert (await other.event(topic))["data"]["visitors"] == 2

    answer = await client.get(f"/api/analytics/sites/{site['id']}/stats/live", headers=viewer.headers)
    assert answer.json()["visitors"] == 2
    assert (await client.get(f"/api/analytics/sites/{site['id']}/stats/live",
                             headers=stranger.headers)).status_code == 404  # fmt: skip


def test_quiet_sites_get_one_last_frame_then_none(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(live.time, "monotonic", lambda: clock[0])
    sites = live.LiveSites()
    sites.touch([7, 8])
    clock[0] += 60
    sites.touch([8])
    assert sorted(sites.due()) == [7, 8]
    clock[0] += live.LIVE_WINDOW - 60 + live.LIVE_INTERVAL - 1  # 7 is quiet: its last frame
    assert sorted(sites.due()) == [7, 8]
    clock[0] += 2
    assert sites.due() == [8]
    clock[0] += 60
    assert sites.due() == []
