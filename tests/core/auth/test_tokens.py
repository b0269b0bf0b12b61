"""Access tokens: tampered, expired, unsigned (`alg=none`), foreign and wrong-audience JWTs are refused."""

from __future__ import annotations

import base64
import json
import time
import uuid

import httpx
import jwt

from pentad.core.auth import tokens
from pentad.core.platform import Platform
from tests.factories import bearer, create_user, login


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def _valid_claims(client: httpx.AsyncClient, platform: Platform) -> tuple[str, dict[str, object]]:
    user = await create_user(platform)
    token = (await login(client, user.email))["access_token"]
    return token, jwt.decode(token, options={"verify_signature": False})


async def test_valid_token_is_accepted(client: httpx.AsyncClient, platform: Platform) -> None:
    token, _ = await _valid_claims(client, platform)
    assert (await client.get("/api/me", headers=bearer(token))).status_code == 200


async def test_tampered_payload_is_refused(client: httpx.AsyncClient, platform: Platform) -> None:
    token, claims = await _valid_claims(client, platform)
    other = await create_user(platform)
    header, _, signature = token.split(".")
    forged = f"{header}.{_b64({**claims, 'sub': str(other.id)})}.{signature}"
    response = await client.get("/api/me", headers=bearer(forged))
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


async def test_alg_none_is_refused(client: httpx.AsyncClient, platform: Platform) -> None:
    _, claims = await _valid_claims(client, platform)
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    assert (await client.get("/api/me", headers=bearer(unsigned))).status_code == 401


async def test_expired_token_is_refused(client: httpx.AsyncClient, platform: Platform) -> None:
    _, claims = await _valid_claims(client, platform)
    past = int(time.time()) - 3600
    expired = jwt.encode(
        {**claims, "iat": past - 60, "exp": past}, platform.signing_secret, algorithm="HS256"
    )
    assert (await client.get("/api/me", headers=bearer(expired))).status_code == 401


async def test_token_signed_with_another_key_is_refused(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    _, claims = await _valid_claims(client, platform)
    foreign = jwt.encode(claims, b"another-secret-of-sufficient-length-000000", algorithm="HS256")
    assert (await client.get("/api/me", headers=bearer(foreign))).status_code == 401


async def test_hs256_only_even_with_the_right_key(client: httpx.AsyncClient, platform: Platform) -> None:
    _, claims = await _valid_claims(client, platform)
    other_alg = jwt.encode(claims, platform.signing_secret, algorithm="HS512")
    assert (await client.get("/api/me", headers=bearer(other_alg))).status_code == 401


async def test_mfa_audience_is_not_an_access_token(client: httpx.AsyncClient, platform: Platform) -> None:
    _, claims = await _valid_claims(client, platform)
    wrong_audience = jwt.encode(
        {**claims, "aud": tokens.MFA_AUDIENCE}, platform.signing_secret, algorithm="HS256"
    )
    assert (await client.get("/api/me", headers=bearer(wrong_audience))).status_code == 401


async def test_token_without_session_claim_is_refused(client: httpx.AsyncClient, platform: Platform) -> None:
    _, claims = await _valid_claims(client, platform)
    claims.pop("sid")
    no_session = jwt.encode(claims, platform.signing_secret, algorithm="HS256")
    assert (await client.get("/api/me", headers=bearer(no_session))).status_code == 401


def test_opaque_tokens_round_trip_and_reject_other_kinds() -> None:
    token = tokens.new_token(tokens.API_KEY, uuid.uuid4())
    parsed = tokens.parse_token(str(token), tokens.API_KEY)
    assert parsed == token
    assert tokens.parse_token(str(token), tokens.REFRESH_TOKEN) is None
    assert tokens.parse_token("pak_not-a-uuid_secret", tokens.API_KEY) is None
    assert tokens.secret_matches(token.secret, token.secret_hash)
    assert not tokens.secret_matches(token.secret + "x", token.secret_hash)
