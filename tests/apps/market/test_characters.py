"""Linking EVE characters end to end: the app's routes over httpx, the real SSO client against the fake EVE
SSO on loopback (PKCE, JWT against its JWKS), tokens encrypted at rest, refresh rotation, revoked and
transferred characters in `needs_reauth`, unlinking with revocation, and the deny side."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, text, update

from pentad.app import create_app
from pentad.apps.market.actions.characters import NEEDS_REAUTH
from pentad.apps.market.models import MarketCharacter, MarketSsoState
from pentad.apps.market.spec import APP
from pentad.apps.market.sso_tasks import CHECK_TOKENS, REFRESH_TOKEN
from pentad.core.auth.models import User
from pentad.core.config import Settings
from pentad.core.crypto import column_context
from pentad.core.db.base import utcnow
from pentad.core.db.engine import Database
from pentad.core.jobs.queue import enqueue
from pentad.core.logging import configure_logging
from pentad.core.platform import Platform
from tests.conftest import make_settings
from tests.factories import bearer, create_user, issue_api_key, run_due_jobs
from tests.fakes.market.sso import FakeSso

CLIENT_ID = "pentad-market-test"
TRADER, HAULER = 2112625428, 95465499
CALLBACK = "/market/sso/callback"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeSso]:
    sso = FakeSso()
    sso.add_character(TRADER, "Trader Joe")
    sso.add_character(HAULER, "Haul Er")
    sso.serve()
    yield sso
    sso.stop()


@pytest.fixture
def settings(tmp_path: Path, database_url: str, fake: FakeSso) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        apps=["market"],
        ratelimit={"enabled": False},
        market={"esi_client_id": CLIENT_ID, "sso_base_url": fake.base_url},
    )


@pytest.fixture
async def app(settings: Settings, database: Database, fake: FakeSso) -> AsyncIterator[FastAPI]:
    app = create_app(settings, database=database, apps=[APP])
    platform: Platform = app.state.platform
    await platform.open_resources()  # what the lifespan does in `pentad serve`
    fake.reset()
    fake.register(CLIENT_ID, platform.base_url.rstrip("/") + CALLBACK)
    fake.login_as(TRADER)
    yield app
    await platform.resources.close()


class Account(dict[str, str]):
    """An account's request headers (a Bearer API key), with the account."""

    user: User


async def account(platform: Platform, roles: tuple[str, ...] = ("member",)) -> Account:
    user = await create_user(platform, roles=roles)
    headers = Account(bearer(await issue_api_key(platform, user)))
    headers.user = user
    return headers


@pytest.fixture
async def alice(platform: Platform) -> Account:
    return await account(platform)


@pytest.fixture
async def bob(platform: Platform) -> Account:
    return await account(platform)


async def start(client: httpx.AsyncClient, who: dict[str, str], **params: str) -> str:
    response = await client.get("/api/market/sso/start", headers=who, params=params)
    assert response.status_code == 302, response.text
    return response.headers["location"]


async def consent(authorize: str) -> dict[str, str]:
    """The browser at the SSO: it consents and is sent back with code and state."""
    async with httpx.AsyncClient() as browser:
        response = await browser.get(authorize)
    assert response.status_code == 302, response.text
    back = urlsplit(response.headers["location"])
    assert back.path == CALLBACK
    return {key: values[0] for key, values in parse_qs(back.query).items()}


async def link(
    client: httpx.AsyncClient, who: dict[str, str], character: int, fake: FakeSso
) -> dict[str, Any]:
    fake.login_as(character)
    returned = await consent(await start(client, who))
    response = await client.get(CALLBACK, headers=who, params=returned)
    assert response.status_code == 303, response.text
    listed = (await client.get("/api/market/characters", headers=who)).json()
    found: dict[str, Any] = next(item for item in listed if item["character_id"] == character)
    assert response.headers["location"] == f"/market?linked={found['id']}"
    return found


async def raw_rows(platform: Platform, table: str) -> list[dict[str, Any]]:
    async with platform.database.transaction(writes=False) as session:
        result = await session.execute(text(f"SELECT * FROM {table}"))  # noqa: S608 - a fixed table name
        return [dict(row._mapping) for row in result]


async def stored_token(platform: Platform, link_id: str) -> str | None:
    async with platform.database.transaction(writes=False) as session:
        character = await session.scalar(
            select(MarketCharacter).where(MarketCharacter.id == uuid.UUID(link_id))
        )
    assert character is not None
    if character.refresh_token is None:
        return None
    return platform.keyring.decrypt(
        character.refresh_token, context=column_context("market_characters", "refresh_token", character.id)
    )


async def run_job(platform: Platform, name: str, payload: dict[str, Any]) -> None:
    async with platform.database.transaction() as session:
        await enqueue(session, name, payload)
    await run_due_jobs(platform)


# linking ---------------------------------------------------------------------------------------------


async def test_link_a_character_end_to_end(
    client: httpx.AsyncClient, platform: Platform, alice: Account, fake: FakeSso
) -> None:
    authorize = urlsplit(await start(client, alice))
    query = {key: values[0] for key, values in parse_qs(authorize.query).items()}
    assert f"{authorize.scheme}://{authorize.netloc}" == fake.base_url
    assert authorize.path == "/v2/oauth/authorize"
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == platform.base_url.rstrip("/") + CALLBACK
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43
    assert set(query["scope"].split()) == {
        "esi-markets.read_character_orders.v1",
        "esi-wallet.read_character_wallet.v1",
        "esi-skills.read_skills.v1",
        "esi-characters.read_standings.v1",
        "esi-assets.read_assets.v1",
    }
    returned = await consent(authorize.geturl())
    response = await client.get(CALLBACK, headers=alice, params=returned)
    assert response.status_code == 303, response.text
    listed = (await client.get("/api/market/characters", headers=alice)).json()
    assert len(listed) == 1
    character = listed[0]
    assert response.headers["location"] == f"/market?linked={character['id']}"
    assert character["character_id"] == TRADER
    assert character["name"] == "Trader Joe"
    assert character["status"] == "ok"
    assert set(character["scopes"]) == set(query["scope"].split())
    assert "refresh_token" not in character
    assert "owner_hash" not in character
    # The SSO got the verifier whose challenge we sent (it refuses others), and the stored token works.
    token = await stored_token(platform, character["id"])
    assert fake.active_refresh_tokens(TRADER) == [token]


async def test_tokens_and_verifiers_are_encrypted_at_rest(
    client: httpx.AsyncClient, platform: Platform, alice: Account, fake: FakeSso
) -> None:
    authorize = await start(client, alice)
    state = parse_qs(urlsplit(authorize).query)["state"][0]
    [pending] = await raw_rows(platform, "market_sso_states")
    assert state not in repr(pending)
    assert pending["used_at"] is None
    returned = await consent(authorize)
    assert (await client.get(CALLBACK, headers=alice, params=returned)).status_code == 303
    [row] = await raw_rows(platform, "market_characters")
    token = fake.active_refresh_tokens(TRADER)[0]
    assert token not in repr(row)
    assert row["refresh_token"]
    [used] = await raw_rows(platform, "market_sso_states")
    assert used["used_at"] is not None
    assert state not in repr(used)
    assert returned["code"] not in repr(used)
    # The audit trail names the character, never a token.
    assert token not in repr(await raw_rows(platform, "audit_events"))


@pytest.mark.one_engine
async def test_several_characters_per_user(
    client: httpx.AsyncClient, platform: Platform, alice: Account, fake: FakeSso
) -> None:
    await link(client, alice, TRADER, fake)
    await link(client, alice, HAULER, fake)
    listed = (await client.get("/api/market/characters", headers=alice)).json()
    assert [item["name"] for item in listed] == ["Haul Er", "Trader Joe"]


async def test_a_tampered_replayed_or_foreign_state_is_refused(
    client: httpx.AsyncClient, platform: Platform, alice: Account, bob: Account, fake: FakeSso
) -> None:
    returned = await consent(await start(client, alice))
    tampered = {**returned, "state": returned["state"][:-2] + "xx"}
    response = await client.get(CALLBACK, headers=alice, params=tampered)
    assert response.status_code == 400
    assert response.json()["code"] == "sso_state_invalid"
    # Another user, and the same user through another credential, cannot complete alice's login.
    for other in (bob, bearer(await issue_api_key(platform, alice.user))):
        response = await client.get(CALLBACK, headers=other, params=returned)
        assert response.status_code == 400
        assert response.json()["code"] == "sso_state_invalid"
    assert await raw_rows(platform, "market_characters") == []
    assert fake.hits["token"] == 0  # refused before the code was ever sent to the SSO
    # Alice can, once.
    assert (await client.get(CALLBACK, headers=alice, params=returned)).status_code == 303
    response = await client.get(CALLBACK, headers=alice, params=returned)
    assert response.status_code == 400
    assert response.json()["code"] == "sso_state_invalid"
    missing = await client.get(CALLBACK, headers=alice, params={"code": returned["code"]})
    assert missing.json()["code"] == "sso_state_invalid"


async def test_an_expired_state_is_refused(
    client: httpx.AsyncClient, platform: Platform, alice: Account, fake: FakeSso
) -> None:
    returned = await consent(await start(client, alice))
    async with platform.database.transaction() as session:
        await session.execute(
            text("UPDATE market_sso_states SET expires_at = :t"), {"t": utcnow() - timedelta(1)}
        )
    response = await client.get(CALLBACK, headers=alice, params=returned)
    assert response.status_code == 400
    assert response.json()["code"] == "sso_state_invalid"
    assert await raw_rows(platform, "market_characters") == []


@pytest.mark.one_engine
async def test_declined_consent_and_a_refused_code_burn_the_state(
    client: httpx.AsyncClient, platform: Platform, alice: Account, fake: FakeSso
) -> None:
    fake.deny_next()
    returned = await consent(await start(client, alice))
    assert returned["error"] == "access_denied"
    response = await client.get(CALLBACK, headers=alice, params=returned)
    assert response.status_code == 400
    assert response.json()["code"] == "sso_denied"
    returned = await consent(await start(client, alice))
    response = await client.get(CALLBACK, headers=alice, params={**returned, "code": "forged"})
    assert response.status_code == 400
    assert response.json()["code"] == "sso_code_refused"
    again = await client.get(CALLBACK, headers=alice, params=returned)
    assert again.json()["code"] == "sso_state_invalid"  # single use, even after a failure
    assert await raw_rows(platform, "market_characters") == []


@pytest.mark.one_engine
async def test_an_sso_outage_at_callback_is_503(
    client: httpx.AsyncClient, platform: Platform, alice: Account, fake: FakeSso
) -> None:
    returned = await consent(await start(client, alice))
    fake.fail_next(502)
    response = await client.get(CALLBACK, headers=alice, params=returned)
    assert response.status_code == 503
    assert response.json()["code"] == "sso_unavailable"
    assert await raw_rows(platform, "market_characters") == []


async def test_a_forged_access_token_is_refused(
    client: httpx.AsyncClient, platform: Platform, alice: Account, fake: FakeSso
) -> None:
    fake.forge_tokens = True
    returned = await consent(await start(client, alice))
    response = await client.get(CALLBACK, headers=alice, params=returned)
    assert response.status_code == 502
    assert response.json()["code"] == "sso_failed"
    assert "bad signature" in response.json()["detail"]
    assert await raw_rows(platform, "market_characters") == []
    [burned] = await raw_rows(platform, "market_sso_states")
    assert burned["used_at"] is not None


@pytest.mark.one_engine
async def test_return_to_must_be_a_local_path(
    client: httpx.AsyncClient, platform: Platform, alice: Account, fake: FakeSso
) -> None:
    for bad in ("https://evil.example/", "//evil.example/x", "market", "/a b"):
        response = await client.get("/api/market/sso/start", headers=alice, params={"return_to": bad})
        assert response.status_code == 400, bad
        assert response.json()["code"] == "bad_return_to"
    assert await raw_rows(platform, "market_sso_states") == []
    returned = await consent(await start(client, alice, return_to="/market/orders?tab=open"))
    response = await client.get(CALLBACK, headers=alice, params=returned)
    assert response.headers["location"].startswith("/market/orders?tab=open&linked=")


# the deny side ---------------------------------------------------------------------------------------


async def test_others_cannot_see_or_delete_a_character(
    client: httpx.AsyncClient, platform: Platform, alice: Account, bob: Account, fake: FakeSso
) -> None:
    character = await link(client, alice, TRADER, fake)
    assert (await client.get("/api/market/characters", headers=bob)).json() == []
    response = await client.delete(f"/api/market/characters/{character['id']}", headers=bob)
    assert response.status_code == 404
    assert response.json()["code"] == "character_not_found"
    assert fake.revoked == []
    assert len((await client.get("/api/market/characters", headers=alice)).json()) == 1


@pytest.mark.one_engine
async def test_routes_need_a_user_with_market_use(
    client: httpx.AsyncClient, platform: Platform, alice: Account, fake: FakeSso
) -> None:
    character = await link(client, alice, TRADER, fake)
    nobody = await account(platform, roles=())
    routes = [
        ("GET", "/api/market/sso/start"),
        ("GET", CALLBACK),
        ("GET", "/api/market/characters"),
        ("DELETE", f"/api/market/characters/{character['id']}"),
    ]
    for method, path in routes:
        assert (await client.request(method, path)).status_code == 401, path
        assert (await client.request(method, path, headers=nobody)).status_code == 403, path
    assert len((await client.get("/api/market/characters", headers=alice)).json()) == 1


# unlinking -------------------------------------------------------------------------------------------


async def test_delete_revokes_at_the_sso(
    client: httpx.AsyncClient, platform: Platform, alice: Account, fake: FakeSso
) -> None:
    character = await link(client, alice, TRADER, fake)
    token = await stored_token(platform, character["id"])
    response = await client.delete(f"/api/market/characters/{character['id']}", headers=alice)
    assert response.status_code == 204
    assert fake.revoked == [token]
    assert fake.active_refresh_tokens(TRADER) == []
    assert (await client.get("/api/market/characters", headers=alice)).json() == []
    again = await client.delete(f"/api/market/characters/{character['id']}", headers=alice)
    assert again.status_code == 404


async def test_delete_while_the_sso_is_down_revokes_later_by_a_job(
    client: httpx.AsyncClient, platform: Platform, alice: Account, fake: FakeSso
) -> None:
    character = await link(client, alice, TRADER, fake)
    token = await stored_token(platform, character["id"])
    assert token is not None
    fake.fail_next(503)
    response = await client.delete(f"/api/market/characters/{character['id']}", headers=alice)
    assert response.status_code == 204
    assert fake.revoked == []
    assert token not in repr(await raw_rows(platform, "jobs"))  # the job carries it encrypted
    await run_due_jobs(platform)
    assert fake.revoked == [token]


# refreshing ------------------------------------------------------------------------------------------


async def test_refresh_rotates_the_stored_token(
    client: httpx.AsyncClient, platform: Platform, alice: Account, fake: FakeSso
) -> None:
    character = await link(client, alice, TRADER, fake)
    first = await stored_token(platform, character["id"])
    fake.rotate_keys()  # the SSO's new signing keys: the app fetches its JWKS again
    await run_job(platform, REFRESH_TOKEN, {"character": character["id"]})
    second = await stored_token(platform, character["id"])
    assert second is not None
    assert second != first
    assert fake.active_refresh_tokens(TRADER) == [second]
    [row] = await raw_rows(platform, "market_characters")
    assert second not in repr(row)
    listed = (await client.get("/api/market/characters", headers=alice)).json()
    assert listed[0]["status"] == "ok"


async def test_a_revoked_token_puts_the_character_in_needs_reauth(
    client: httpx.AsyncClient, platform: Platform, alice: Account, fake: FakeSso
) -> None:
    character = await link(client, alice, TRADER, fake)
    fake.revoke_character(TRADER)  # the player removed our application's access
    await run_job(platform, REFRESH_TOKEN, {"character": character["id"]})
    [listed] = (await client.get("/api/market/characters", headers=alice)).json()
    assert listed["status"] == NEEDS_REAUTH
    assert await stored_token(platform, character["id"]) is None
    # Linking it again brings it back, under the same id.
    again = await link(client, alice, TRADER, fake)
    assert again["id"] == character["id"]
    assert again["status"] == "ok"


async def test_an_sso_outage_during_refresh_changes_nothing(
    client: httpx.AsyncClient, platform: Platform, alice: Account, fake: FakeSso
) -> None:
    character = await link(client, alice, TRADER, fake)
    before = await stored_token(platform, character["id"])
    fake.fail_next(503)
    async with platform.database.transaction() as session:
        await enqueue(session, REFRESH_TOKEN, {"character": character["id"]})
    await run_due_jobs(platform)  # the job waits (RetryLater), it is not due again yet
    assert await stored_token(platform, character["id"]) == before
    [listed] = (await client.get("/api/market/characters", headers=alice)).json()
    assert listed["status"] == "ok"
    [job] = [row for row in await raw_rows(platform, "jobs") if row["name"] == REFRESH_TOKEN]
    assert job["status"] == "queued"


async def test_a_rotated_token_is_kept_when_the_jwks_cannot_be_fetched(
    client: httpx.AsyncClient, platform: Platform, alice: Account, fake: FakeSso
) -> None:
    character = await link(client, alice, TRADER, fake)
    link_id = uuid.UUID(character["id"])
    long_ago = utcnow() - timedelta(days=1)
    async with platform.database.transaction() as session:
        await session.execute(
            update(MarketCharacter).where(MarketCharacter.id == link_id).values(access_expires_at=long_ago)
        )
    fake.rotate_keys()  # new kid: the app must fetch the JWKS, which is down
    fake.jwks_down = True
    await run_job(platform, REFRESH_TOKEN, {"character": character["id"]})
    # The SSO rotated the refresh token: the new one is stored (the old one is dead at the SSO).
    rotated = await stored_token(platform, character["id"])
    assert fake.active_refresh_tokens(TRADER) == [rotated]
    [listed] = (await client.get("/api/market/characters", headers=alice)).json()
    assert listed["status"] == "ok"
    assert listed["token_expires_at"].startswith(long_ago.date().isoformat())  # still due for the check
    fake.jwks_down = False
    await run_job(platform, REFRESH_TOKEN, {"character": character["id"]})
    assert await stored_token(platform, character["id"]) not in (rotated, None)
    [listed] = (await client.get("/api/market/characters", headers=alice)).json()
    assert listed["status"] == "ok"
    assert listed["token_expires_at"] > utcnow().isoformat()


async def test_a_transferred_character_needs_reauth(
    client: httpx.AsyncClient, platform: Platform, alice: Account, fake: FakeSso
) -> None:
    character = await link(client, alice, TRADER, fake)
    fake.transfer(TRADER)  # sold to another EVE account: new owner hash
    await run_job(platform, REFRESH_TOKEN, {"character": character["id"]})
    [listed] = (await client.get("/api/market/characters", headers=alice)).json()
    assert listed["status"] == NEEDS_REAUTH


async def test_the_hourly_check_refreshes_only_stale_characters(
    client: httpx.AsyncClient, platform: Platform, alice: Account, fake: FakeSso
) -> None:
    trader = await link(client, alice, TRADER, fake)
    hauler = await link(client, alice, HAULER, fake)
    async with platform.database.transaction() as session:
        await session.execute(
            update(MarketCharacter)
            .where(MarketCharacter.id == uuid.UUID(trader["id"]))
            .values(access_expires_at=utcnow() - timedelta(days=1))
        )
    await start(client, alice)  # a login never finished
    async with platform.database.transaction() as session:
        await session.execute(
            update(MarketSsoState)
            .where(MarketSsoState.used_at.is_(None))
            .values(expires_at=utcnow() - timedelta(2))
        )
    stale, fresh = await stored_token(platform, trader["id"]), await stored_token(platform, hauler["id"])
    await run_job(platform, CHECK_TOKENS, {})
    assert await stored_token(platform, trader["id"]) != stale
    assert await stored_token(platform, hauler["id"]) == fresh
    states = await raw_rows(platform, "market_sso_states")
    assert len(states) == 2  # the two finished logins (used, not yet expired a day); the abandoned one went
    assert all(state["used_at"] is not None for state in states)


@pytest.mark.one_engine
async def test_linking_without_a_client_id_is_409(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    settings = make_settings(tmp_path, database_url, apps=["market"], ratelimit={"enabled": False})
    app = create_app(settings, database=database, apps=[APP])
    platform: Platform = app.state.platform
    await platform.open_resources()
    who = await account(platform)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/api/market/sso/start", headers=who)
    await platform.resources.close()
    assert response.status_code == 409
    assert response.json()["code"] == "sso_not_configured"
    assert await raw_rows(platform, "market_sso_states") == []


@pytest.mark.one_engine
async def test_tokens_codes_and_states_never_reach_the_logs(
    tmp_path: Path, database_url: str, database: Database, fake: FakeSso
) -> None:
    settings = make_settings(
        tmp_path,
        database_url,
        apps=["market"],
        ratelimit={"enabled": False},
        log={"level": "INFO", "json_format": True},
        market={"esi_client_id": CLIENT_ID, "sso_base_url": fake.base_url},
    )
    app = create_app(settings, database=database, apps=[APP])
    lines = io.StringIO()
    configure_logging(settings.log, stream=lines)  # every log line of the app, its jobs and its SSO client
    platform: Platform = app.state.platform
    await platform.open_resources()
    fake.reset()
    fake.register(CLIENT_ID, platform.base_url.rstrip("/") + CALLBACK)
    who = await account(platform)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        character = await link(client, who, TRADER, fake)
        first = await stored_token(platform, character["id"])
        await run_job(platform, REFRESH_TOKEN, {"character": character["id"]})
        second = await stored_token(platform, character["id"])
        fake.revoke_character(TRADER)
        await run_job(platform, REFRESH_TOKEN, {"character": character["id"]})
        assert (
            await client.delete(f"/api/market/characters/{character['id']}", headers=who)
        ).status_code == 204
    await platform.resources.close()
    configure_logging(make_settings(tmp_path, database_url).log)
    # The test's own clients (the browser, the ASGI client) log their URLs through httpx: not the app's.
    logged = "\n".join(
        line
        for line in lines.getvalue().splitlines()
        if not (
            '"logger":"httpx"' in line and ("http://testserver/" in line or "/v2/oauth/authorize?" in line)
        )
    )
    assert "market_character_needs_reauth" in logged  # the app's INFO lines were captured
    assert "/v2/oauth/token" in logged  # and its SSO client's requests
    for secret in (first, second, *fake.codes):
        assert secret is not None
        assert secret not in logged
