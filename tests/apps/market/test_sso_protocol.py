"""EVE SSO without a database: PKCE, the authorize URL, token exchange, refresh rotation and revocation
against the fake SSO over loopback, and access-token JWT verification against its JWKS."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from pentad.apps.market.sso import (
    InvalidGrant,
    SsoClient,
    SsoConfig,
    SsoError,
    SsoUnavailable,
    authorize_url,
    code_challenge,
    new_state,
    new_verifier,
)
from pentad.apps.market.sso_jwks import JwksCache, JwksUnavailable, TokenInvalid
from tests.fakes.market.sso import FakeSso, _new_key

CLIENT_ID = "pentad-test"
REDIRECT = "http://127.0.0.1:9/market/sso/callback"
CHARACTER = 2112625428
SCOPES = ("esi-markets.read_character_orders.v1", "esi-wallet.read_character_wallet.v1")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeSso]:
    sso = FakeSso()
    sso.register(CLIENT_ID, REDIRECT)
    sso.register("confidential", REDIRECT, secret="s3cret")
    sso.add_character(CHARACTER, "Trader Joe")
    sso.login_as(CHARACTER)
    sso.serve()
    yield sso
    sso.stop()


@pytest.fixture(autouse=True)
def _fresh(fake: FakeSso) -> None:
    fake.reset()


def config(fake: FakeSso, **changes: object) -> SsoConfig:
    values: dict[str, object] = {
        "base_url": fake.base_url,
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "scopes": SCOPES,
    }
    values.update(changes)
    return SsoConfig(**values)  # type: ignore[arg-type]


async def consent(fake: FakeSso, cfg: SsoConfig, verifier: str, state: str = "st") -> str:
    """Follow the authorize URL as the browser does; returns the code the SSO redirected back with."""
    async with httpx.AsyncClient() as browser:
        response = await browser.get(authorize_url(cfg, state=state, challenge=code_challenge(verifier)))
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = parse_qs(location.query)
    assert query["state"] == [state]
    return query["code"][0]


# PKCE ------------------------------------------------------------------------------------------------


def test_code_challenge_is_rfc7636_s256() -> None:
    # RFC 7636 appendix B's example pair.
    assert (
        code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
        == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )


def test_verifiers_and_states_are_fresh_and_in_the_unreserved_set() -> None:
    verifiers = {new_verifier() for _ in range(50)}
    assert len(verifiers) == 50
    for verifier in verifiers:
        assert 43 <= len(verifier) <= 128
        assert set(verifier) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
    assert new_state() != new_state()


def test_authorize_url_names_the_client_scopes_and_challenge() -> None:
    cfg = SsoConfig(
        "https://login.eveonline.com", "abc", "https://pentad.example/market/sso/callback", scopes=SCOPES
    )
    url = urlsplit(authorize_url(cfg, state="xyz", challenge="c" * 43))
    assert (url.scheme, url.netloc, url.path) == ("https", "login.eveonline.com", "/v2/oauth/authorize")
    assert parse_qs(url.query) == {
        "response_type": ["code"],
        "redirect_uri": ["https://pentad.example/market/sso/callback"],
        "client_id": ["abc"],
        "scope": [" ".join(SCOPES)],
        "code_challenge": ["c" * 43],
        "code_challenge_method": ["S256"],
        "state": ["xyz"],
    }


async def test_code_exchange_with_the_right_verifier(fake: FakeSso) -> None:
    cfg = config(fake)
    verifier = new_verifier()
    code = await consent(fake, cfg, verifier)
    tokens = await SsoClient(cfg).exchange_code(code, verifier)
    assert tokens.expires_in == 1199
    assert tokens.token_type == "Bearer"
    assert tokens.refresh_token in fake.active_refresh_tokens(CHARACTER)
    verified = await JwksCache(fake.base_url).verify(tokens.access_token, CLIENT_ID)
    assert (verified.character_id, verified.name, verified.scopes) == (CHARACTER, "Trader Joe", SCOPES)
    assert tokens.access_token not in repr(tokens)
    assert tokens.refresh_token not in repr(tokens)


async def test_a_wrong_verifier_or_a_replayed_code_is_refused(fake: FakeSso) -> None:
    cfg = config(fake)
    verifier = new_verifier()
    code = await consent(fake, cfg, verifier)
    with pytest.raises(InvalidGrant):
        await SsoClient(cfg).exchange_code(code, new_verifier())
    code = await consent(fake, cfg, verifier)
    await SsoClient(cfg).exchange_code(code, verifier)
    with pytest.raises(InvalidGrant):
        await SsoClient(cfg).exchange_code(code, verifier)


async def test_a_confidential_client_authenticates_with_basic_auth(fake: FakeSso) -> None:
    good = config(fake, client_id="confidential", client_secret="s3cret")
    verifier = new_verifier()
    tokens = await SsoClient(good).exchange_code(await consent(fake, good, verifier), verifier)
    assert tokens.refresh_token
    bad = config(fake, client_id="confidential", client_secret="wrong")
    with pytest.raises(SsoError) as refused:
        await SsoClient(bad).exchange_code(await consent(fake, bad, verifier), verifier)
    assert refused.value.error == "invalid_client"
    assert not isinstance(refused.value, InvalidGrant)
    assert "wrong" not in repr(bad)


async def test_refresh_rotates_and_the_old_token_stops_working(fake: FakeSso) -> None:
    cfg = config(fake)
    verifier = new_verifier()
    first = await SsoClient(cfg).exchange_code(await consent(fake, cfg, verifier), verifier)
    second = await SsoClient(cfg).refresh(first.refresh_token)
    assert second.refresh_token != first.refresh_token
    with pytest.raises(InvalidGrant):
        await SsoClient(cfg).refresh(first.refresh_token)
    third = await SsoClient(cfg).refresh(second.refresh_token)
    assert fake.active_refresh_tokens(CHARACTER) == [third.refresh_token]


async def test_revoked_refresh_token_is_invalid_grant_and_5xx_is_unavailable(fake: FakeSso) -> None:
    cfg = config(fake)
    verifier = new_verifier()
    tokens = await SsoClient(cfg).exchange_code(await consent(fake, cfg, verifier), verifier)
    fake.fail_next(503)
    with pytest.raises(SsoUnavailable):
        await SsoClient(cfg).refresh(tokens.refresh_token)
    await SsoClient(cfg).revoke(tokens.refresh_token)
    assert fake.revoked == [tokens.refresh_token]
    with pytest.raises(InvalidGrant):
        await SsoClient(cfg).refresh(tokens.refresh_token)
    await SsoClient(cfg).revoke(tokens.refresh_token)  # revoking twice is fine


async def test_an_unreachable_sso_is_unavailable() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # a loopback port nobody listens on
    cfg = SsoConfig(f"http://127.0.0.1:{port}", CLIENT_ID, REDIRECT)
    with pytest.raises(SsoUnavailable):
        await SsoClient(cfg).refresh("whatever")


# JWT verification ------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
async def test_valid_tokens_of_both_algorithms(fake: FakeSso, algorithm: str) -> None:
    token = fake.mint(CHARACTER, CLIENT_ID, scopes=list(SCOPES), algorithm=algorithm)
    verified = await JwksCache(fake.base_url).verify(token, CLIENT_ID)
    assert verified.character_id == CHARACTER
    assert verified.owner_hash == fake.characters[CHARACTER].owner_hash
    assert verified.expires_at.timestamp() > time.time() + 1000


async def test_a_single_scope_comes_as_a_string(fake: FakeSso) -> None:
    token = fake.mint(CHARACTER, CLIENT_ID, scopes=["esi-skills.read_skills.v1"])
    assert (await JwksCache(fake.base_url).verify(token, CLIENT_ID)).scopes == ("esi-skills.read_skills.v1",)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"iss": "https://evil.example"}, "wrong issuer"),
        ({"aud": [CLIENT_ID]}, "wrong audience"),
        ({"aud": ["someone-else", "EVE Online"]}, "wrong audience"),
        ({"exp": int(time.time()) - 120}, "expired"),
        ({"sub": "CORPORATION:EVE:98000001"}, "not a character token"),
        ({"owner": None}, "no character name or owner hash"),
        ({"exp": None}, "invalid token (MissingRequiredClaimError)"),
    ],
)
async def test_tokens_with_bad_claims_are_refused(
    fake: FakeSso, overrides: dict[str, object], reason: str
) -> None:
    token = fake.mint(CHARACTER, CLIENT_ID, overrides=overrides)
    with pytest.raises(TokenInvalid) as refused:
        await JwksCache(fake.base_url).verify(token, CLIENT_ID)
    assert refused.value.reason == reason


async def test_the_issuer_may_be_the_bare_host(fake: FakeSso) -> None:
    token = fake.mint(CHARACTER, CLIENT_ID, overrides={"iss": urlsplit(fake.base_url).netloc})
    assert (await JwksCache(fake.base_url).verify(token, CLIENT_ID)).character_id == CHARACTER


async def test_a_bad_signature_is_refused(fake: FakeSso) -> None:
    # A key of the attacker's own, presented under the SSO's kid.
    forged = _new_key("RS256", kid=fake.keys["RS256"].kid)
    with pytest.raises(TokenInvalid) as refused:
        await JwksCache(fake.base_url).verify(fake.mint(CHARACTER, CLIENT_ID, key=forged), CLIENT_ID)
    assert refused.value.reason == "bad signature"
    token = fake.mint(CHARACTER, CLIENT_ID)
    head, body, signature = token.split(".")
    tampered = f"{head}.{body[:-4]}AAAA.{signature}"
    with pytest.raises(TokenInvalid):
        await JwksCache(fake.base_url).verify(tampered, CLIENT_ID)


async def test_unsigned_and_mismatched_algorithms_are_refused(fake: FakeSso) -> None:
    import jwt

    unsigned = jwt.encode(
        {"sub": f"CHARACTER:EVE:{CHARACTER}"}, "", algorithm="none", headers={"kid": fake.keys["RS256"].kid}
    )
    with pytest.raises(TokenInvalid, match="unsupported algorithm"):
        await JwksCache(fake.base_url).verify(unsigned, CLIENT_ID)
    hs = jwt.encode({"sub": "x"}, "k" * 32, algorithm="HS256", headers={"kid": fake.keys["RS256"].kid})
    with pytest.raises(TokenInvalid, match="unsupported algorithm"):
        await JwksCache(fake.base_url).verify(hs, CLIENT_ID)
    # An ES256 header naming the RSA key.
    es_key = fake.keys["ES256"]
    swapped = type(es_key)(fake.keys["RS256"].kid, "ES256", es_key.private)
    with pytest.raises(TokenInvalid, match="algorithm does not match"):
        await JwksCache(fake.base_url).verify(fake.mint(CHARACTER, CLIENT_ID, key=swapped), CLIENT_ID)
    with pytest.raises(TokenInvalid, match="not a JWT"):
        await JwksCache(fake.base_url).verify("not-a-token", CLIENT_ID)


async def test_an_unknown_kid_refetches_the_jwks_once(fake: FakeSso) -> None:
    now = [0.0]
    cache = JwksCache(fake.base_url, cooldown=60, clock=lambda: now[0])
    await cache.verify(fake.mint(CHARACTER, CLIENT_ID), CLIENT_ID)
    await cache.verify(fake.mint(CHARACTER, CLIENT_ID), CLIENT_ID)
    assert cache.fetches == 1
    assert fake.hits["jwks"] == 1
    fake.rotate_keys()
    assert (await cache.verify(fake.mint(CHARACTER, CLIENT_ID), CLIENT_ID)).character_id == CHARACTER
    assert cache.fetches == 2
    # A key nobody publishes: within the cooldown it cannot be checked (no fetch, no verdict) ...
    stranger = _new_key("RS256", kid="nobody-publishes-this")
    for _ in range(3):
        with pytest.raises(JwksUnavailable):
            await cache.verify(fake.mint(CHARACTER, CLIENT_ID, key=stranger), CLIENT_ID)
    assert cache.fetches == 2
    # ... after it, one refetch, and a fresh JWKS without the kid is a verdict.
    now[0] += 61
    with pytest.raises(TokenInvalid, match="unknown signing key"):
        await cache.verify(fake.mint(CHARACTER, CLIENT_ID, key=stranger), CLIENT_ID)
    with pytest.raises(JwksUnavailable):
        await cache.verify(fake.mint(CHARACTER, CLIENT_ID, key=stranger), CLIENT_ID)
    assert cache.fetches == 3
    assert fake.hits["jwks"] == 3


async def test_a_failed_jwks_fetch_is_unavailable_and_tried_again(fake: FakeSso) -> None:
    cache = JwksCache(fake.base_url, cooldown=60)
    await cache.verify(fake.mint(CHARACTER, CLIENT_ID), CLIENT_ID)
    fake.rotate_keys()
    fake.jwks_down = True
    with pytest.raises(JwksUnavailable):
        await cache.verify(fake.mint(CHARACTER, CLIENT_ID), CLIENT_ID)
    fake.jwks_down = False
    assert (await cache.verify(fake.mint(CHARACTER, CLIENT_ID), CLIENT_ID)).character_id == CHARACTER
    with pytest.raises(JwksUnavailable):
        await JwksCache("http://127.0.0.1:9").verify(fake.mint(CHARACTER, CLIENT_ID), CLIENT_ID)
