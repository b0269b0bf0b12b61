"""The live campaign topic `ads.campaign.{id}`: its advertiser's owners and viewers subscribe (and mark it
watched), nobody else does, nobody publishes; the service's round sends today's counters to the watchers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from pentad.apps.ads.live import WATCHED, publish_watched
from pentad.core.platform import Platform
from tests.apps.ads.serving import beacon, decide, setup
from tests.apps.ads.support import grant
from tests.apps.chat.sockets import connected
from tests.factories import Account, account


@pytest.fixture
async def hub(platform: Platform) -> AsyncIterator[None]:
    await platform.hub.start()
    yield
    await platform.hub.stop()


def _token(who: Account) -> str:
    return who.headers["Authorization"].split()[1]


async def test_readers_of_the_advertiser_watch_a_campaign_live_and_others_are_refused(
    app: FastAPI, client: httpx.AsyncClient, owner: Account, stranger: Account, platform: Platform, hub: None
) -> None:
    ads = await setup(client, owner, pricing="cpm", rate_micros=2_000_000)
    topic = f"ads.campaign.{ads.campaign_id}"
    viewer = await account(platform)
    await grant(platform, viewer, "ads.advertiser", ads.advertiser_id, "viewer")
    site_owner = await account(platform)
    await grant(platform, site_owner, "ads.site", ads.site_id, "owner")
    answer = (await decide(client, ads.zone_id)).json()
    await beacon(client, answer["impression"])
    await platform.ingest.flush()
    assert await publish_watched(platform) == 0  # nobody watches yet

    async with connected(app, _token(owner)) as socket, connected(app, _token(viewer)) as watcher:
        subscribed = await socket.request("subscribe", topic=topic)
        assert subscribed["ok"], subscribed
        assert (await watcher.request("subscribe", topic=topic))["ok"]
        published = await socket.request("publish", topic=topic, data={"today": {}})
        assert published["ok"] is False
        assert platform.resource(WATCHED).current() == [uuid.UUID(ads.campaign_id)]

        assert await publish_watched(platform) == 1
        frame = (await watcher.event(topic))["data"]

    assert frame["campaign_id"] == ads.campaign_id
    assert frame["today"] == {"served": 1, "viewable": 1, "clicks": 0, "spend_micros": 2000, "conversions": 0}
    assert frame["exhausted"] is False
    for outsider in (stranger, site_owner):
        async with connected(app, _token(outsider)) as socket:
            refused = await socket.request("subscribe", topic=topic)
            assert (refused["ok"], refused["error"]["code"]) == (False, "forbidden")
    async with connected(app, _token(owner)) as socket:
        for bad in ("ads.campaign.not-a-uuid", f"ads.campaign.{uuid.uuid4()}"):
            assert (await socket.request("subscribe", topic=bad))["ok"] is False, bad
