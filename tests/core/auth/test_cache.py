"""The principal cache: repeated reads skip the database; every revocation takes effect at once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from pentad.core.auth.cache import PrincipalCache
from pentad.core.auth.principal import Principal
from pentad.core.db.base import utcnow
from pentad.core.platform import Platform
from tests.factories import access_token, bearer, create_admin, create_user, issue_api_key


@pytest.fixture
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine.sync_engine, "before_cursor_execute", record)


async def test_repeated_reads_need_no_database(
    client: httpx.AsyncClient, platform: Platform, statements: list[str]
) -> None:
    user = await create_user(platform)
    key = await issue_api_key(platform, user)
    assert (await client.get("/api/me", headers=bearer(key))).status_code == 200
    statements.clear()
    for _ in range(5):
        assert (await client.get("/api/me", headers=bearer(key))).status_code == 200
    assert statements == []


@pytest.mark.parametrize("revocation", ["revoke-key", "disable-user", "demote"])
async def test_revocations_reach_cached_credentials_at_once(
    client: httpx.AsyncClient, platform: Platform, revocation: str
) -> None:
    admin = await create_admin(platform)
    target = await create_admin(platform)
    admin_headers = bearer(await access_token(client, admin))
    key_response = await client.post(
        "/api/me/api-keys", json={"name": "k"}, headers=bearer(await access_token(client, target))
    )
    key = key_response.json()
    assert (await client.get("/api/users", headers=bearer(key["token"]))).status_code == 200
    if revocation == "revoke-key":
        await client.delete(
            f"/api/me/api-keys/{key['id']}", headers=bearer(await access_token(client, target))
        )
        expected = 401
    elif revocation == "disable-user":
        await client.patch(f"/api/users/{target.id}", json={"is_active": False}, headers=admin_headers)
        expected = 401
    else:
        await client.patch(f"/api/users/{target.id}", json={"roles": ["member"]}, headers=admin_headers)
        expected = 403
    assert (await client.get("/api/users", headers=bearer(key["token"]))).status_code == expected


def _principal() -> Principal:
    subject = uuid.uuid4()
    return Principal(
        kind="user", id=subject, label="a@example.com", roles=frozenset(), permissions=frozenset(),
        via="api_key", credential_id=uuid.uuid4(),
    )  # fmt: skip


def test_entries_never_outlive_their_credential() -> None:
    cache = PrincipalCache(ttl=30)
    cache.put("expired", _principal(), expires_at=utcnow() - timedelta(seconds=1))
    assert cache.get("expired") is None
    cache.put("fresh", principal := _principal(), expires_at=utcnow() + timedelta(seconds=60))
    assert cache.get("fresh") is principal
    cache.forget(principal.id)
    assert cache.get("fresh") is None


def test_zero_ttl_disables_the_cache() -> None:
    cache = PrincipalCache(ttl=0)
    cache.put("token", _principal())
    assert cache.get("token") is None


def test_an_attachment_lives_and_dies_with_its_cached_principal() -> None:
    cache = PrincipalCache(ttl=30)
    principal, other = _principal(), _principal()
    # Not cached: nothing to attach to (nothing would ever forget it).
    cache.attach(principal, "app.view", "row", generation=cache.generation)
    assert cache.attachment(principal, "app.view") is None

    cache.put("token", principal)
    cache.put("other", other)
    cache.attach(principal, "app.view", "row", generation=cache.generation)
    cache.attach(other, "app.view", "other row", generation=cache.generation)
    assert cache.attachment(principal, "app.view") == "row"
    assert cache.attachment(principal, "another.view") is None

    # A value read before a forget is not kept: it may predate the change the forget announced.
    read_at = cache.generation
    cache.forget(uuid.uuid4())
    cache.attach(principal, "app.view", "stale row", generation=read_at)
    assert cache.attachment(principal, "app.view") == "row"

    cache.forget(principal.id)
    assert cache.attachment(principal, "app.view") is None
    assert cache.attachment(other, "app.view") == "other row"
    # The same subject loaded again is a new principal: the old attachment does not carry over.
    cache.put("token", again := _principal())
    assert cache.attachment(again, "app.view") is None
    cache.clear()
    assert cache.attachment(other, "app.view") is None
