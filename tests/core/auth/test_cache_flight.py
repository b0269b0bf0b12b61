"""The principal cache under load and across processes: concurrent misses share one lookup, a cache hit
opens no database session, and a revocation in one platform reaches another through Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from pentad.app import create_app
from pentad.core.auth import repository
from pentad.core.auth.cache import UNSYNCED_TTL, Loader, PrincipalCache, forget_on_commit, invalidation_url
from pentad.core.auth.exceptions import InvalidToken
from pentad.core.auth.principal import Principal
from pentad.core.db.engine import Database
from pentad.core.db.hooks import run_after_commit, run_after_rollback
from pentad.core.platform import Platform
from tests.conftest import make_settings
from tests.core.conftest import RedisScratch
from tests.core.realtime.conftest import live_server, realtime_database_url, realtime_settings
from tests.factories import bearer, create_user, issue_api_key

__all__ = ["realtime_database_url"]  # a fixture these tests use

CONCURRENT = 12


@pytest.fixture
def key_lookups(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements that read API keys, as the database received them."""
    seen: list[str] = []

    def record(*args: object) -> None:
        statement = str(args[2])
        if "FROM api_keys" in statement:
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine.sync_engine, "before_cursor_execute", record)


def hold_lookups_until_all_arrive(monkeypatch: pytest.MonkeyPatch, platform: Platform) -> None:
    """Keep the API-key lookup from finishing before every concurrent request has asked the cache, so the
    requests really do miss together (without this, an early lookup could finish before the last
    request starts and the test would prove nothing)."""
    arrived = 0
    real_get_or_load = platform.principals.get_or_load
    real_lookup = repository.get_api_key_with_user

    async def counting_get_or_load(credential: str, load: Loader) -> Principal:
        nonlocal arrived
        arrived += 1
        return await real_get_or_load(credential, load)

    async def held_lookup(*args: Any, **kwargs: Any) -> Any:
        for _ in range(10_000):
            if arrived >= CONCURRENT:
                break
            await asyncio.sleep(0)
        return await real_lookup(*args, **kwargs)

    monkeypatch.setattr(platform.principals, "get_or_load", counting_get_or_load)
    monkeypatch.setattr(repository, "get_api_key_with_user", held_lookup)


async def test_concurrent_misses_share_one_lookup(
    client: httpx.AsyncClient, platform: Platform, key_lookups: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await create_user(platform)
    key = await issue_api_key(platform, user)
    hold_lookups_until_all_arrive(monkeypatch, platform)
    responses = await asyncio.gather(*(client.get("/api/me", headers=bearer(key)) for _ in range(CONCURRENT)))
    assert [response.status_code for response in responses] == [200] * CONCURRENT
    assert {response.json()["id"] for response in responses} == {str(user.id)}
    assert len(key_lookups) == 1


async def test_concurrent_requests_with_a_bad_key_share_one_refusal(
    client: httpx.AsyncClient, platform: Platform, key_lookups: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await create_user(platform)
    key = await issue_api_key(platform, user)
    forged = key[:-4] + ("aaaa" if not key.endswith("aaaa") else "bbbb")
    hold_lookups_until_all_arrive(monkeypatch, platform)
    responses = await asyncio.gather(
        *(client.get("/api/me", headers=bearer(forged)) for _ in range(CONCURRENT))
    )
    assert [response.status_code for response in responses] == [401] * CONCURRENT
    assert len(key_lookups) == 1
    # A refusal is not cached: the real key still works.
    assert (await client.get("/api/me", headers=bearer(key))).status_code == 200


async def test_a_cache_hit_opens_no_database_session(
    client: httpx.AsyncClient, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await create_user(platform)
    key = await issue_api_key(platform, user)
    assert (await client.get("/api/me", headers=bearer(key))).status_code == 200
    opened = 0
    real_sessionmaker = platform.database.sessionmaker

    def counting_sessionmaker(*args: Any, **kwargs: Any) -> Any:
        nonlocal opened
        opened += 1
        return real_sessionmaker(*args, **kwargs)

    monkeypatch.setattr(platform.database, "sessionmaker", counting_sessionmaker)
    for _ in range(3):
        assert (await client.get("/api/me", headers=bearer(key))).status_code == 200
    assert opened == 0
    platform.principals.drop_all()
    assert (await client.get("/api/me", headers=bearer(key))).status_code == 200
    assert opened == 1


# ------------------------------------------------------------------ the cache itself


def _principal(subject: uuid.UUID | None = None) -> Principal:
    return Principal(
        kind="user", id=subject or uuid.uuid4(), label="a@example.com", roles=frozenset(),
        permissions=frozenset(), via="api_key", credential_id=uuid.uuid4(),
    )  # fmt: skip


class HeldLoader:
    """A lookup that finishes only when released, counting how often it ran."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal
        self.calls = 0
        self.release = asyncio.Event()

    async def __call__(self) -> tuple[Principal, datetime | None]:
        self.calls += 1
        await self.release.wait()
        return self.principal, None


async def _settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_waiters_of_a_cancelled_lookup_load_for_themselves() -> None:
    cache = PrincipalCache(ttl=300)
    loader = HeldLoader(_principal())
    leader = asyncio.create_task(cache.get_or_load("token", loader))
    await _settle()
    waiter = asyncio.create_task(cache.get_or_load("token", loader))
    await _settle()
    leader.cancel()
    await _settle()
    assert loader.calls == 2
    loader.release.set()
    assert await waiter is loader.principal
    assert cache.get("token") is loader.principal
    with pytest.raises(asyncio.CancelledError):
        await leader


async def test_waiters_share_the_lookups_error() -> None:
    cache = PrincipalCache(ttl=300)
    calls = 0
    release = asyncio.Event()

    async def refuse() -> tuple[Principal, datetime | None]:
        nonlocal calls
        calls += 1
        await release.wait()
        raise InvalidToken()

    tasks = [asyncio.create_task(cache.get_or_load("token", refuse)) for _ in range(5)]
    await _settle()
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(result, InvalidToken) for result in results)
    assert calls == 1


async def test_a_lookup_in_flight_when_its_subject_is_forgotten_is_not_cached() -> None:
    cache = PrincipalCache(ttl=300)
    loader = HeldLoader(_principal())
    leader = asyncio.create_task(cache.get_or_load("token", loader))
    await _settle()
    cache.forget(loader.principal.id)
    # A request arriving after the forget does not join the stale lookup.
    second = HeldLoader(loader.principal)
    late = asyncio.create_task(cache.get_or_load("token", second))
    await _settle()
    assert second.calls == 1
    loader.release.set()
    assert await leader is loader.principal
    assert cache.get("token") is None
    second.release.set()
    await late


async def test_a_credential_verified_before_the_change_commits_is_forgotten_at_commit() -> None:
    cache = PrincipalCache(ttl=300)
    principal = _principal()
    cache.put("token", principal)
    session = AsyncSession()
    forget_on_commit(session, cache, principal.id)
    assert cache.get("token") is None
    # A request verified while the change is not committed yet reads the old answer and caches it...
    cache.put("token", principal)
    assert cache.get("token") is principal
    # ...until the commit, which forgets it again.
    await run_after_commit(session)
    assert cache.get("token") is None


async def test_a_rolled_back_change_forgets_only_once() -> None:
    cache = PrincipalCache(ttl=300)
    principal = _principal()
    session = AsyncSession()
    forget_on_commit(session, cache, principal.id)
    cache.put("token", principal)
    await run_after_rollback(session)
    await run_after_commit(session)
    assert cache.get("token") is principal


@pytest.mark.parametrize("single_process", [True, False])
def test_processes_that_cannot_tell_each_other_keep_entries_briefly(
    monkeypatch: pytest.MonkeyPatch, single_process: bool
) -> None:
    clock = [1000.0]
    monkeypatch.setattr("pentad.core.auth.cache.monotonic", lambda: clock[0])
    cache = PrincipalCache(ttl=300, single_process=single_process)
    principal = _principal()
    cache.put("token", principal)
    clock[0] += UNSYNCED_TTL + 1
    assert (cache.get("token") is principal) is single_process


# ------------------------------------------------------------------ across processes, through Redis


@pytest.fixture
async def two_nodes(
    tmp_path: Path, database_url: str, database: Database, test_redis: RedisScratch
) -> AsyncIterator[tuple[FastAPI, FastAPI]]:
    """Two platforms on one database and one Redis, as two processes or nodes would be."""
    apps = []
    for name in ("a", "b"):
        settings = make_settings(tmp_path / name, database_url, redis={"url": test_redis.url})
        app = create_app(settings, database=database, apps=[])
        await app.state.platform.principals.start()
        apps.append(app)
    try:
        for _ in range(500):
            if all(app.state.platform.principals.synced for app in apps):
                break
            await asyncio.sleep(0.01)
        assert all(app.state.platform.principals.synced for app in apps)
        yield apps[0], apps[1]
    finally:
        for app in apps:
            await app.state.platform.principals.close()


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 50000)), base_url="http://t"
    )


async def test_a_revocation_on_one_node_reaches_the_cache_of_another(
    two_nodes: tuple[FastAPI, FastAPI],
) -> None:
    node_a, node_b = two_nodes
    platform_a: Platform = node_a.state.platform
    platform_b: Platform = node_b.state.platform
    user = await create_user(platform_a)
    key = await issue_api_key(platform_a, user)
    async with _client(node_a) as client_a, _client(node_b) as client_b:
        assert (await client_b.get("/api/me", headers=bearer(key))).status_code == 200
        assert platform_b.principals.get(key) is not None
        listed = (await client_a.get("/api/me/api-keys", headers=bearer(key))).json()
        key_id = next(item["id"] for item in listed)
        assert (await client_a.delete(f"/api/me/api-keys/{key_id}", headers=bearer(key))).status_code == 204
        for _ in range(500):
            if platform_b.principals.get(key) is None:
                break
            await asyncio.sleep(0.01)
        assert (await client_b.get("/api/me", headers=bearer(key))).status_code == 401


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, None),
        ({"realtime": {"broker_url": "redis://127.0.0.1:6379/2"}}, "redis://127.0.0.1:6379/2"),
        (
            {"redis": {"url": "redis://127.0.0.1:6379/5"}, "realtime": {"broker_url": "redis://127.0.0.1/2"}},
            "redis://127.0.0.1:6379/5",
        ),
    ],
)
def test_forgets_travel_through_the_configured_redis(
    tmp_path: Path, overrides: dict[str, Any], expected: str | None
) -> None:
    settings = make_settings(tmp_path, "sqlite+aiosqlite:///unused.db", **overrides)
    assert invalidation_url(settings) == expected


def test_a_full_cache_makes_room_from_expired_entries_first(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("pentad.core.auth.cache.monotonic", lambda: clock[0])
    cache = PrincipalCache(ttl=60, max_entries=10)
    for index in range(2):
        cache.put(f"refreshed-away-{index}", _principal())
    clock[0] += 30
    for index in range(8):
        cache.put(f"in-use-{index}", _principal())
    clock[0] += 40  # the first two have expired, the eight others have not
    cache.put("newcomer", newcomer := _principal())
    assert cache.get("newcomer") is newcomer
    assert all(cache.get(f"in-use-{index}") is not None for index in range(8))


async def test_served_nodes_sharing_the_realtime_broker_share_revocations(
    tmp_path: Path, realtime_database_url: str, test_redis: RedisScratch
) -> None:
    """Two servers started as `pentad serve` starts them (uvicorn, lifespan on), told of Redis only
    through the realtime broker's URL."""
    settings = [
        realtime_settings(tmp_path / name, realtime_database_url, broker_url=test_redis.url) for name in "ab"
    ]
    async with live_server(settings[0], apps=[]) as node_a, live_server(settings[1], apps=[]) as node_b:
        for _ in range(500):
            if node_a.platform.principals.synced and node_b.platform.principals.synced:
                break
            await asyncio.sleep(0.01)
        assert node_a.platform.principals.synced
        assert node_b.platform.principals.synced
        user = await create_user(node_a.platform)
        key = await issue_api_key(node_a.platform, user)
        async with httpx.AsyncClient() as client:
            me_on_b = f"{node_b.http_url}/api/me"
            assert (await client.get(me_on_b, headers=bearer(key))).status_code == 200
            listed = (await client.get(f"{node_a.http_url}/api/me/api-keys", headers=bearer(key))).json()
            revoked = await client.delete(
                f"{node_a.http_url}/api/me/api-keys/{listed[0]['id']}", headers=bearer(key)
            )
            assert revoked.status_code == 204
            # Well under the 5 s an unsubscribed node would keep the entry anyway.
            for _ in range(200):
                if node_b.platform.principals.get(key) is None:
                    break
                await asyncio.sleep(0.01)
            assert (await client.get(me_on_b, headers=bearer(key))).status_code == 401
