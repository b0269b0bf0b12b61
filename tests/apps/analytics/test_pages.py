"""The analytics pages without a browser: who may open them, adding a site through the form (with the
session's CSRF token), and the dashboard's parts: stats, chart, panels and the tracker snippet. The page's
script reads the same stats API the API tests cover; its drawing is left to a browser test."""

from __future__ import annotations

import html as markup
import re

import httpx

from pentad.core.auth.models import User
from pentad.core.platform import Platform
from tests.factories import DEFAULT_PASSWORD, Account, account


async def _sign_in(client: httpx.AsyncClient, user: User) -> None:
    response = await client.post("/login", data={"email": user.email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 303, response.text


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


async def test_a_member_adds_a_site_through_the_page_and_sees_its_dashboard(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    anonymous = await client.get("/analytics")
    assert anonymous.status_code in (302, 303)
    assert anonymous.headers["location"].startswith("/login")

    member = await account(platform)
    await _sign_in(client, member.user)
    page = await client.get("/analytics")
    assert page.status_code == 200
    assert "No sites yet" in page.text

    forged = await client.post("/analytics/sites", data={"domain": "blog.example", "csrf_token": "0" * 64})
    assert forged.status_code == 403
    bad = await client.post(
        "/analytics/sites", data={"domain": "not a domain", "csrf_token": _csrf(page.text)}
    )
    assert bad.status_code == 400
    assert "host name" in bad.text
    created = await client.post(
        "/analytics/sites",
        data={"domain": "blog.example", "timezone": "Europe/Berlin", "csrf_token": _csrf(page.text)},
    )
    assert created.status_code == 303, created.text
    dashboard_path = created.headers["location"]
    assert re.fullmatch(r"/analytics/[0-9a-f-]{36}", dashboard_path)

    dashboard = await client.get(dashboard_path)
    assert dashboard.status_code == 200
    html = dashboard.text
    assert 'data-domain="blog.example"' in markup.unescape(html)  # the snippet, shown as text
    assert "/analytics/js/script.js" in html
    parts = [
        'data-stat="visitors"', 'data-stat="bounce_rate"', 'id="chart"', 'data-breakdown="pages"',
        'data-breakdown="sources"', 'data-breakdown="countries"', 'data-breakdown="devices"', "data-drops",
        "/static/vendor/uplot/uPlot.iife.min.js", "/static/analytics/dashboard.js",
    ]  # fmt: skip
    for part in parts:
        assert part in html, part
    assert "blog.example" in (await client.get("/analytics")).text
    assert (await client.get("/static/analytics/dashboard.js")).status_code == 200


async def test_a_stranger_gets_no_dashboard(
    client: httpx.AsyncClient, platform: Platform, owner: Account, site: dict[str, str]
) -> None:
    stranger = await account(platform)
    await _sign_in(client, stranger.user)
    assert (await client.get(f"/analytics/{site['id']}")).status_code == 404
    assert "shop.example" not in (await client.get("/analytics")).text
