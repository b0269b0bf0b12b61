"""What the trader tests share: the fake SSO (in a thread) and the fake ESI with its character routes,
an app wired to both, accounts, and linking a character through the real SSO flow."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt

from pentad.apps.market.esi.resource import ESI_CLIENT
from pentad.apps.market.ingest.character import SyncOutcome, sync_character
from pentad.core.auth.models import User
from pentad.core.platform import Platform
from tests.factories import bearer, create_user, issue_api_key
from tests.fakes.market.esi_characters import CharacterEsi
from tests.fakes.market.sso import FakeSso

CLIENT_ID = "pentad-market-trader"
CALLBACK = "/market/sso/callback"
TRADER, ALT = 2112625428, 95465499


def token_verifier(sso: FakeSso) -> Any:
    """How the fake ESI checks a bearer token: the fake SSO's signature, audience and expiry."""

    def verify(token: str) -> tuple[int, list[str]] | None:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = next((k for k in sso.keys.values() if k.kid == kid), None)
            if key is None:
                return None
            claims = jwt.decode(
                token, key.private.public_key(), algorithms=[key.algorithm], audience="EVE Online",
                issuer=sso.base_url,
            )  # fmt: skip
        except jwt.PyJWTError:
            return None
        scopes = claims.get("scp", [])
        return int(str(claims["sub"]).rsplit(":", 1)[1]), [scopes] if isinstance(scopes, str) else list(
            scopes
        )

    return verify


class Account(dict[str, str]):
    user: User


async def account(platform: Platform, roles: tuple[str, ...] = ("member",)) -> Account:
    user = await create_user(platform, roles=roles)
    headers = Account(bearer(await issue_api_key(platform, user)))
    headers.user = user
    return headers


async def link(client: httpx.AsyncClient, who: dict[str, str], character: int, sso: FakeSso) -> uuid.UUID:
    """Link `character` to the account through the SSO flow (start → consent → callback)."""
    sso.login_as(character)
    start = await client.get("/api/market/sso/start", headers=who)
    assert start.status_code == 302, start.text
    async with httpx.AsyncClient() as browser:
        consent = await browser.get(start.headers["location"])
    assert consent.status_code == 302, consent.text
    back = {k: v[0] for k, v in parse_qs(urlsplit(consent.headers["location"]).query).items()}
    done = await client.get(CALLBACK, headers=who, params=back)
    assert done.status_code == 303, done.text
    listed = (await client.get("/api/market/characters", headers=who)).json()
    return uuid.UUID(next(item["id"] for item in listed if item["character_id"] == character))


async def sync(platform: Platform, link_id: uuid.UUID) -> SyncOutcome:
    client = platform.resource(ESI_CLIENT)
    assert client is not None
    return await sync_character(platform, client, link_id)


__all__ = [
    "ALT",
    "CLIENT_ID",
    "TRADER",
    "Account",
    "CharacterEsi",
    "account",
    "link",
    "sync",
    "token_verifier",
]
