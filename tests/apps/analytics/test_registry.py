"""The SiteRegistry: host and path rules, and a site added or changed by another process (straight in the
database, no `invalidate()` here) is picked up by the signature check."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import update

from pentad.apps.analytics.models import AnalyticsSite
from pentad.apps.analytics.registry import SiteRegistry, compile_excluded, site_registry
from pentad.core.platform import Platform
from tests.factories import Account


def test_excluded_path_patterns() -> None:
    pattern = compile_excluded(["/admin/*", "/preview", "/*.json"])
    assert pattern is not None
    paths = ("/admin/x/y", "/admin", "/preview", "/previews", "/a.json")
    assert [bool(pattern.fullmatch(path)) for path in paths] == [True, False, True, False, True]
    assert compile_excluded([]) is None


async def test_another_process_s_changes_are_seen_after_a_check(
    client: httpx.AsyncClient, platform: Platform, site: dict[str, str]
) -> None:
    registry = SiteRegistry(platform, poll=3600)  # no background check during the test
    found = await registry.get("WWW.Shop.Example.")
    assert found is not None
    assert found.domain == "shop.example"
    assert found.allows_host("shop-cdn.example")
    assert found.allows_host("a.b.shop.example")
    assert not found.allows_host("evilshop.example")
    assert found.excludes("/admin/users")
    assert await registry.get("late.example") is None

    async with platform.database.transaction() as session:  # another process adds a site, changes one
        session.add(AnalyticsSite(id=uuid.uuid4(), key=99, domain="late.example", name="Late", hosts=[],
                                  timezone="UTC", excluded_paths=[], version=1))  # fmt: skip
        await session.execute(
            update(AnalyticsSite)
            .where(AnalyticsSite.domain == "shop.example")
            .values(excluded_paths=[], version=AnalyticsSite.version + 1)
        )
    # Not yet seen (a lookup never waits for the database; the poll runs in the background) ...
    assert await registry.get("late.example") is None
    await registry.check()  # ... until the next signature check
    late = await registry.get("late.example")
    assert late is not None
    assert late.key == 99
    shop = await registry.get("shop.example")
    assert shop is not None
    assert not shop.excludes("/admin/users")
    assert await registry.check() is False


async def test_the_process_registry_sees_its_own_changes_at_once(
    client: httpx.AsyncClient, platform: Platform, owner: Account, site: dict[str, str]
) -> None:
    registry = site_registry(platform)
    found = await registry.get("shop.example")
    assert found is not None
    assert str(found.id) == site["id"]
    assert await registry.get("new.example") is None
    created = await client.post("/api/analytics/sites", json={"domain": "new.example"}, headers=owner.headers)
    assert created.status_code == 201
    assert await registry.get("new.example") is not None
