"""The signed click redirect: a valid click token sends the browser to the creative's destination as
stored, and anything else gets a 400 page without a redirect."""

from __future__ import annotations

import base64
import time
import uuid

import httpx

from pentad.apps.ads.tokens import TokenKind, TokenSigner
from pentad.core.platform import Platform
from tests.apps.ads.support import create_advertiser, create_campaign
from tests.factories import Account

DESTINATION = "https://shop.example.com/sale?utm_source=pentad&x=1"


async def _creative(client: httpx.AsyncClient, owner: Account) -> dict[str, str]:
    advertiser = await create_advertiser(client, owner)
    campaign = await create_campaign(client, owner, advertiser["id"])
    response = await client.post(
        f"/api/ads/campaigns/{campaign['id']}/creatives/text",
        json={"name": "T", "destination_url": DESTINATION, "headline": "H"},
        headers=owner.headers,
    )
    result: dict[str, str] = response.json()
    return result


def _token(
    platform: Platform, creative_id: str, kind: TokenKind = "click", ttl: int = 600, **kwargs: float
) -> str:
    return TokenSigner(platform.signing_secret).sign(
        kind,
        impression_id=uuid.uuid4(),
        creative_id=uuid.UUID(creative_id),
        zone_id=uuid.uuid4(),
        ttl=ttl,
        **kwargs,
    )


async def test_a_valid_click_goes_to_the_stored_destination_whatever_the_url_says(
    client: httpx.AsyncClient, owner: Account, platform: Platform
) -> None:
    creative = await _creative(client, owner)
    token = _token(platform, creative["id"])

    response = await client.get(f"/ads/c/{token}?url=https://evil.example/&dest=https://evil.example/")

    assert response.status_code == 302
    assert response.headers["location"] == DESTINATION
    assert response.headers["cache-control"] == "no-store"


async def test_forged_tampered_expired_and_wrong_kind_tokens_get_a_400_page_and_no_redirect(
    client: httpx.AsyncClient, owner: Account, platform: Platform
) -> None:
    creative = await _creative(client, owner)
    good = _token(platform, creative["id"])
    raw = bytearray(base64.urlsafe_b64decode(good + "=="))
    raw[30] ^= 1
    tampered = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    forged = TokenSigner(b"not the platform secret").sign(
        "click",
        impression_id=uuid.uuid4(),
        creative_id=uuid.UUID(creative["id"]),
        zone_id=uuid.uuid4(),
        ttl=600,
    )
    expired = _token(platform, creative["id"], ttl=60, now=time.time() - 120)
    impression = _token(platform, creative["id"], kind="impression")

    for token in (tampered, forged, expired, impression, "garbage", "A" * 94):
        response = await client.get(f"/ads/c/{token}")
        assert response.status_code == 400, token
        assert "location" not in response.headers
        assert response.headers["content-type"].startswith("text/html")
        assert "does not work" in response.text


async def test_a_click_on_a_deleted_creative_is_a_404_page(
    client: httpx.AsyncClient, owner: Account, platform: Platform
) -> None:
    creative = await _creative(client, owner)
    token = _token(platform, creative["id"])
    await client.delete(f"/api/ads/creatives/{creative['id']}", headers=owner.headers)

    response = await client.get(f"/ads/c/{token}")

    assert response.status_code == 404
    assert "location" not in response.headers
