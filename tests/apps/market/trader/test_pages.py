"""The trader's pages without a browser: who may open them, what they show (orders against the book, P&L
with the chart's series, alert rules), and that their forms run the API's rules with the session's CSRF
token."""

from __future__ import annotations

import html
import json
import re
import uuid

import httpx

from pentad.core.auth.models import User
from pentad.core.platform import Platform
from tests.apps.market.trader_support import TRADER, link, sync, trader_data
from tests.factories import DEFAULT_PASSWORD, bearer, create_user, issue_api_key
from tests.fakes.market.esi_characters import CharacterEsi
from tests.fakes.market.sso import FakeSso


async def sign_in(client: httpx.AsyncClient, user: User) -> str:
    response = await client.post("/login", data={"email": user.email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 303, response.text
    page = await client.get("/market/alerts")
    found = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', page.text)
    assert found, "the page has no CSRF meta tag"
    return found.group(1)


async def test_pages_need_a_session_with_market_use(client: httpx.AsyncClient, platform: Platform) -> None:
    for path in ("/market/orders", "/market/pnl", "/market/alerts"):
        anonymous = await client.get(path)
        assert anonymous.status_code == 303
        assert anonymous.headers["location"].startswith("/login?next=")
    await sign_in_without_market(client, platform)
    for path in ("/market/orders", "/market/pnl", "/market/alerts"):
        assert (await client.get(path)).status_code == 403


async def sign_in_without_market(client: httpx.AsyncClient, platform: Platform) -> None:
    user = await create_user(platform, roles=())
    response = await client.post("/login", data={"email": user.email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 303


async def test_orders_pnl_and_alerts_pages_show_the_users_data(
    client: httpx.AsyncClient, platform: Platform, sso: FakeSso, chars: CharacterEsi
) -> None:
    user = await create_user(platform)
    headers = bearer(await issue_api_key(platform, user))
    trader_data(chars)
    link_id = await link(client, headers, TRADER, sso)
    assert (await sync(platform, link_id)).status == "ok"
    csrf = await sign_in(client, user)

    orders = await client.get("/market/orders")
    assert orders.status_code == 200
    assert 'data-sync-status="ok"' in orders.text
    assert 'data-order="5001"' in orders.text
    assert "60 % (600/1000)" in orders.text
    synced = await client.post("/market/orders/sync", data={"csrf_token": csrf, "character": str(link_id)})
    assert synced.status_code == 303
    refused = await client.post(
        "/market/orders/sync", data={"csrf_token": csrf, "character": str(uuid.uuid4())}
    )
    assert refused.status_code == 404
    no_csrf = await client.post("/market/orders/sync", data={"character": str(link_id)})
    assert no_csrf.status_code == 403

    pnl = await client.get("/market/pnl", params={"days": "365"})
    assert pnl.status_code == 200
    series = json.loads(html.unescape(re.search(r'data-series="([^"]*)"', pnl.text).group(1)))  # type: ignore[union-attr]
    assert len(series["days"]) == 365
    assert "/static/vendor/uplot/uPlot.iife.min.js" in pnl.text
    vendor = await client.get("/static/vendor/uplot/uPlot.iife.min.js")
    assert vendor.status_code == 200
    assert "uPlot" in vendor.text

    created = await client.post(
        "/market/alerts/rules",
        data={"csrf_token": csrf, "kind": "expiring", "params": '{"hours": 6}', "mail": "1"},
    )
    assert created.status_code == 303, created.text
    bad = await client.post(
        "/market/alerts/rules", data={"csrf_token": csrf, "kind": "expiring", "params": "{"}
    )
    assert bad.status_code == 400
    assert "JSON object" in bad.text
    page = await client.get("/market/alerts")
    assert "{&#34;hours&#34;: 6}" in page.text or '{"hours": 6}' in html.unescape(page.text)
    assert f'data-topic="market.user.{user.id}"' in page.text
    rule_id = re.search(r'data-rule="([0-9a-f-]+)"', page.text).group(1)  # type: ignore[union-attr]
    prefs = await client.post(
        "/market/alerts/prefs",
        data={"csrf_token": csrf, "timezone": "UTC", "quiet_start": "22:00", "quiet_end": "07:00"},
    )
    assert prefs.status_code == 303
    assert (await client.get("/api/market/alerts/prefs", headers=headers)).json()["quiet_start"] == 1320
    deleted = await client.post(f"/market/alerts/rules/{rule_id}/delete", data={"csrf_token": csrf})
    assert deleted.status_code == 303
    assert (await client.get("/api/market/alerts/rules", headers=headers)).json() == []
