"""Walks every realtime topic family of every installed app (and the core's) over /ws with every kind of
credential, and checks that each may subscribe exactly where the REST route reading the same data answers
it 200: scopes, principal kinds and permissions hold over the socket as they hold over HTTP, so a new topic
cannot forget them (tests/core/test_route_table.py does the same for routes).

Every credential belongs to one person (an admin, so each topic has a resource they may read), and each
topic names one of that person's resources: what is refused is refused for the credential, not the person.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI

from pentad.app import create_app
from pentad.apps.ads.models import AdsAdvertiser, AdsCampaign
from pentad.apps.chat import repository as chat_repository
from pentad.apps.chat.tenancy import TenantService
from pentad.core import audit
from pentad.core.auth.models import User
from pentad.core.config import Settings
from pentad.core.db.base import utcnow
from pentad.core.db.engine import Database
from pentad.core.jobs.queue import enqueue
from pentad.core.jobs.worker import PRUNE_JOB
from pentad.core.platform import Platform
from tests.apps.chat.sockets import connected
from tests.apps.panel.topic_cases import PANEL_CASES
from tests.apps.streams.topic_cases import STREAMS_CASES
from tests.conftest import ALL_APPS
from tests.factories import (
    DEFAULT_PASSWORD,
    access_token,
    bearer,
    create_admin,
    issue_api_key,
    issue_service_token,
)


@pytest.fixture
def app(settings: Settings, database: Database) -> FastAPI:
    """Every installed app's topics, not only the core's."""
    return create_app(settings, database=database, apps=ALL_APPS)


@pytest.fixture
async def hub(platform: Platform) -> AsyncIterator[None]:
    """The hub's broker running, as it does in a served app (the lifespan starts it)."""
    await platform.hub.start()
    yield
    await platform.hub.stop()


@dataclass
class Owner:
    user: User
    token: str
    """The owner's login access token: what the topics' resources are made with."""


Case = Callable[[httpx.AsyncClient, Platform, Owner], Awaitable[tuple[str, str]]]
"""Makes a resource of the owner; returns its topic and the REST path (GET) that reads the same data."""


async def _own_private_channel(
    client: httpx.AsyncClient, platform: Platform, owner: Owner
) -> tuple[str, str]:
    body = {"kind": "private", "name": f"own-{uuid.uuid4().hex[:6]}"}
    response = await client.post("/api/chat/channels", json=body, headers=bearer(owner.token))
    assert response.status_code == 201, response.text
    channel = response.json()["id"]
    return f"chat.channel.{channel}", f"/api/chat/channels/{channel}/messages"


async def _own_chat_user(client: httpx.AsyncClient, platform: Platform, owner: Owner) -> tuple[str, str]:
    me = (await client.get("/api/chat/me", headers=bearer(owner.token))).json()
    return f"chat.user.{me['id']}", "/api/chat/me"


async def _a_job(client: httpx.AsyncClient, platform: Platform, owner: Owner) -> tuple[str, str]:
    async with platform.database.transaction() as session:
        job_id = await enqueue(session, PRUNE_JOB)
    return f"jobs.{job_id}", f"/api/jobs/{job_id}"


async def _own_campaign(client: httpx.AsyncClient, platform: Platform, owner: Owner) -> tuple[str, str]:
    async with platform.database.transaction() as session:
        advertiser = AdsAdvertiser(name="Acme", owner_id=owner.user.id)
        session.add(advertiser)
        await session.flush()
        campaign = AdsCampaign(
            advertiser_id=advertiser.id, name="Live", starts_at=utcnow(), pricing="cpm", rate_micros=1
        )
        session.add(campaign)
    return f"ads.campaign.{campaign.id}", f"/api/ads/campaigns/{campaign.id}/stats"


async def _own_analytics_site(client: httpx.AsyncClient, platform: Platform, owner: Owner) -> tuple[str, str]:
    await platform.open_resources()  # the site registry the API tells of the new site
    body = {"domain": f"t{uuid.uuid4().hex[:8]}.example"}
    response = await client.post("/api/analytics/sites", json=body, headers=bearer(owner.token))
    assert response.status_code == 201, response.text
    site = response.json()["id"]
    return f"analytics.site.{site}.live", f"/api/analytics/sites/{site}/stats/live"


async def _own_market_user(client: httpx.AsyncClient, platform: Platform, owner: Owner) -> tuple[str, str]:
    return f"market.user.{owner.user.id}", "/api/market/alerts/rules"


CASES: dict[str, Case] = {
    "ads.campaign.{campaign_id}": _own_campaign,
    "analytics.site.{site_id}.live": _own_analytics_site,
    "chat.channel.{channel_id}": _own_private_channel,
    "chat.user.{user_id}": _own_chat_user,
    "jobs.{job_id}": _a_job,
    "market.user.{user_id}": _own_market_user,
    **STREAMS_CASES,
    **PANEL_CASES,
}


def test_every_topic_family_is_walked(platform: Platform) -> None:
    registered = {spec.pattern for spec in platform.hub.registry.specs()}
    assert registered == set(CASES), "add the new topic family to CASES"
    for spec in ALL_APPS:
        assert {topic.pattern for topic in spec.topics} <= registered, spec.name


async def _browser_session_token(client: httpx.AsyncClient, user: User) -> str:
    """The access token a signed-in page gets for its socket (POST /api/auth/session-token)."""
    signed_in = await client.post("/login", data={"email": user.email, "password": DEFAULT_PASSWORD})
    assert signed_in.status_code == 303, signed_in.text
    page = await client.get("/account")
    csrf = re.search(r'name="csrf-token" content="([0-9a-f]+)"', page.text)
    assert csrf is not None, "the page has no CSRF meta tag"
    response = await client.post("/api/auth/session-token", headers={"X-CSRF-Token": csrf.group(1)})
    assert response.status_code == 200, response.text
    client.cookies.clear()
    token: str = response.json()["access_token"]
    return token


async def _credentials(client: httpx.AsyncClient, platform: Platform, owner: Owner) -> dict[str, str]:
    """Every kind of credential there is, all of the owner's (or of their tenant, or of nobody's)."""
    every_permission = [permission.key for permission in platform.permissions.permissions]
    chat_token = await client.post("/api/chat/session-token", headers=bearer(owner.token))
    assert chat_token.status_code == 200, chat_token.text
    async with platform.database.transaction() as session:
        linked = await chat_repository.get_user_by_pentad_user(session, owner.user.id)
        assert linked is not None
        server_key = await TenantService(session, platform, audit.SYSTEM).create_server_key(
            linked.tenant_id, "topic-table"
        )
    return {
        "browser session token": await _browser_session_token(client, owner.user),
        "login access token": owner.token,
        "API key, every scope": await issue_api_key(platform, owner.user),
        "API key, core.users.read only": await issue_api_key(platform, owner.user, ["core.users.read"]),
        "API key, chat.use only": await issue_api_key(platform, owner.user, ["chat.use"]),
        "API key, no scope": await issue_api_key(platform, owner.user, []),
        "service token, no scope": await issue_service_token(platform),
        "service token, every scope": await issue_service_token(platform, every_permission),
        "chat user token (pcu_)": chat_token.json()["token"],
        "chat server key (pck_)": server_key.key,
    }


async def test_each_credential_may_subscribe_where_rest_lets_it_read(
    app: FastAPI, client: httpx.AsyncClient, platform: Platform, hub: None
) -> None:
    user = await create_admin(platform)
    owner = Owner(user, await access_token(client, user))
    topics = {pattern: await case(client, platform, owner) for pattern, case in CASES.items()}
    credentials = await _credentials(client, platform, owner)

    found: dict[tuple[str, str], tuple[int, bool]] = {}
    for kind, token in credentials.items():
        async with connected(app, token) as socket:
            for pattern, (topic, rest_path) in topics.items():
                rest = await client.get(rest_path, headers=bearer(token))
                assert rest.status_code in (200, 403, 404), (kind, rest_path, rest.status_code)
                ack = await socket.request("subscribe", topic=topic)
                if not ack["ok"]:
                    assert ack["error"]["code"] == "forbidden", (kind, topic, ack)
                found[(kind, pattern)] = (rest.status_code, bool(ack["ok"]))

    mismatches = {key: value for key, value in found.items() if (value[0] == 200) != value[1]}
    assert mismatches == {}, "(REST status, subscribed) where they disagree"
    for pattern in CASES:
        outcomes = {subscribed for (_, walked), (_, subscribed) in found.items() if walked == pattern}
        assert outcomes == {True, False}, f"{pattern}: some credential must be allowed and some refused"
    # The review's finding: a key without chat.use read its owner's private channel over /ws.
    assert found[("API key, core.users.read only", "chat.channel.{channel_id}")] == (403, False)
