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
from tests.fakes.market.esi_characters import CharacterEsi, order
from tests.fakes.market.sso import FakeSso

CLIENT_ID = "pentad-market-trader"
CALLBACK = "/market/sso/callback"
TRADER, ALT = 2112625428, 95465499
TRITANIUM, PYERITE = 34, 35


def token_verifier(sso: FakeSso) -> Any:
    """How the fake ESI checks a bearer token: the fake SSO's signature, audience and expiry."""

    def verify(token: str) -> tuple[int, list[str]] | None:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = next((k for k in sso.keys.values() if k.kid == kid), None)
            if key is None:
                return None
            claims = jwt.decode(
                token,
                key.private.public_key(),
                algorithms=[key.algorithm],
                audience="EVE Online",
                issuer=sso.base_url,
            )
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


def trader_data(chars: CharacterEsi) -> None:
    data = chars.data(TRADER)
    data.orders = [
        order(5001, TRITANIUM, 5.5, volume_total=1000, volume_remain=400),
        order(5002, PYERITE, 9.0, is_buy=True, volume_total=200),
    ]
    data.history = [
        order(4001, TRITANIUM, 5.2, volume_total=50, volume_remain=0, state="expired"),
        order(4002, PYERITE, 11.0, volume_total=70, volume_remain=30, state="cancelled"),
    ]
    data.transactions = [
        tx(9001, "2026-02-01T10:00:00Z", TRITANIUM, 10, 100.0, True),
        tx(9002, "2026-02-02T10:00:00Z", TRITANIUM, 5, 120.0, True),
        tx(9003, "2026-02-03T10:00:00Z", TRITANIUM, 12, 150.0, False),
    ]
    data.journal = [
        journal(7001, "2026-02-03T10:00:00Z", "transaction_tax", -54.0, 9003, "market_transaction_id"),
        journal(7002, "2026-02-01T09:00:00Z", "brokers_fee", -30.0, 5001, "market_order_id"),
    ]
    data.skills = {16622: 4, 3446: 5, 16597: 3, 3443: 2}
    data.standings = [
        {"from_id": 1000035, "from_type": "npc_corp", "standing": 2.5},
        {"from_id": 500001, "from_type": "faction", "standing": -1.25},
    ]


def tx(tid: int, date: str, type_id: int, qty: int, price: float, is_buy: bool) -> dict[str, Any]:
    return {
        "client_id": 90000001,
        "date": date,
        "is_buy": is_buy,
        "is_personal": True,
        "journal_ref_id": tid + 1,
        "location_id": 60003760,
        "quantity": qty,
        "transaction_id": tid,
        "type_id": type_id,
        "unit_price": price,
    }


def journal(ref: int, date: str, ref_type: str, amount: float, context: int, kind: str) -> dict[str, Any]:
    return {
        "amount": amount,
        "balance": 1_000_000.0,
        "context_id": context,
        "context_id_type": kind,
        "date": date,
        "description": ref_type,
        "first_party_id": TRADER,
        "id": ref,
        "ref_type": ref_type,
    }


async def expire_routes(platform: Platform) -> None:
    """Every remembered ESI route state past its Expires (the next sync asks again, with its ETag)."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from pentad.apps.market.models import MarketEsiCache

    async with platform.database.transaction() as session:
        await session.execute(
            update(MarketEsiCache).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
