"""Creatives over the API: text ads, image uploads stored through core storage, destination URLs
limited to http and https, and who may add or change them."""

from __future__ import annotations

import io
import uuid
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image

from pentad.apps.ads.actions.creatives import do_delete_creative
from pentad.apps.ads.cli import _admin_context
from pentad.core.platform import Platform
from tests.apps.ads.support import create_advertiser, create_campaign, grant, snapshot
from tests.factories import Account


def png(width: int = 300, height: int = 250) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


async def _campaign(client: httpx.AsyncClient, who: Account) -> tuple[dict[str, str], dict[str, str]]:
    advertiser = await create_advertiser(client, who)
    return advertiser, await create_campaign(client, who, advertiser["id"])


def _upload(content: bytes, filename: str = "ad.png", content_type: str = "image/png", **fields: str) -> dict:
    data = {"name": "Banner", "destination_url": "https://shop.example.com/sale?utm_source=pentad", **fields}
    return {"data": data, "files": {"file": (filename, content, content_type)}}


async def test_a_text_creative_is_created_changed_and_deleted(
    client: httpx.AsyncClient, owner: Account
) -> None:
    _, campaign = await _campaign(client, owner)
    created = await client.post(
        f"/api/ads/campaigns/{campaign['id']}/creatives/text",
        json={
            "name": "Text",
            "destination_url": "http://shop.example.com/",
            "headline": "Sale",
            "body": "50 % off",
        },
        headers=owner.headers,
    )
    assert created.status_code == 201, created.text
    creative = created.json()
    assert (creative["kind"], creative["headline"], creative["image_url"]) == ("text", "Sale", None)

    paused = await client.patch(
        f"/api/ads/creatives/{creative['id']}", json={"status": "paused"}, headers=owner.headers
    )
    listed = await client.get(f"/api/ads/campaigns/{campaign['id']}/creatives", headers=owner.headers)
    deleted = await client.delete(f"/api/ads/creatives/{creative['id']}", headers=owner.headers)

    assert paused.json()["status"] == "paused"
    assert [c["id"] for c in listed.json()] == [creative["id"]]
    assert deleted.status_code == 204
    assert (
        await client.get(f"/api/ads/creatives/{creative['id']}", headers=owner.headers)
    ).status_code == 404


async def test_an_image_creative_is_stored_measured_and_readable_through_its_signed_link(
    client: httpx.AsyncClient, owner: Account, platform: Platform
) -> None:
    _, campaign = await _campaign(client, owner)
    image = png()
    created = await client.post(
        f"/api/ads/campaigns/{campaign['id']}/creatives/image",
        **_upload(image, content_type="application/octet-stream", alt_text="Red"),
        headers=owner.headers,
    )
    assert created.status_code == 201, created.text
    creative = created.json()
    assert (creative["width"], creative["height"], creative["content_type"]) == (300, 250, "image/png")
    assert creative["byte_size"] == len(image)

    link = urlsplit(creative["image_url"])
    fetched = await client.get(f"{link.path}?{link.query}")
    assert fetched.status_code == 200
    assert fetched.content == image

    stored = [obj.key async for obj in platform.storage.list("ads/creatives/")]

    async def delete_then_roll_back() -> None:
        async with platform.database.transaction() as session:
            await do_delete_creative(_admin_context(session, platform), uuid.UUID(creative["id"]))
            raise RuntimeError("the delete's transaction rolls back")

    with pytest.raises(RuntimeError):
        await delete_then_roll_back()
    assert [obj.key async for obj in platform.storage.list("ads/creatives/")] == stored != []
    assert (await client.get(f"{link.path}?{link.query}")).content == image

    deleted = await client.delete(f"/api/ads/creatives/{creative['id']}", headers=owner.headers)
    assert deleted.status_code == 204
    assert [obj.key async for obj in platform.storage.list("ads/creatives/")] == []


async def test_what_is_not_an_image_or_too_large_is_refused_and_nothing_stored(
    client: httpx.AsyncClient, owner: Account, platform: Platform
) -> None:
    _, campaign = await _campaign(client, owner)
    before = await snapshot(platform)
    path = f"/api/ads/campaigns/{campaign['id']}/creatives/image"

    text = await client.post(
        path, **_upload(b"<svg onload=alert(1)>", "x.svg", "image/svg+xml"), headers=owner.headers
    )
    truncated = await client.post(path, **_upload(png()[:100]), headers=owner.headers)
    too_big = await client.post(path, **_upload(b"\x89PNG" + b"0" * 2_097_200), headers=owner.headers)
    nul = await client.post(path, **_upload(png(), name="Ban\x00ner"), headers=owner.headers)

    assert (text.status_code, text.json()["code"]) == (400, "unsupported_image")
    assert (truncated.status_code, truncated.json()["code"]) == (400, "unsupported_image")
    assert (too_big.status_code, too_big.json()["code"]) == (413, "creative_too_large")
    assert nul.status_code == 422
    assert await snapshot(platform) == before
    assert [obj.key async for obj in platform.storage.list("ads/")] == []


async def test_destinations_must_be_http_or_https_urls(
    client: httpx.AsyncClient, owner: Account, platform: Platform
) -> None:
    _, campaign = await _campaign(client, owner)
    before = await snapshot(platform)
    bad = [
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "ftp://files.example.com/x",
        "//example.com/no-scheme",
        "/relative",
        "https://",
        "https://user:pass@example.com/",
        "https://exa mple.com/",
        "https://example.com:99999/",
        "https://example.com/" + "a" * 2048,
    ]
    for url in bad:
        text = await client.post(
            f"/api/ads/campaigns/{campaign['id']}/creatives/text",
            json={"name": "T", "destination_url": url, "headline": "H"},
            headers=owner.headers,
        )
        image = await client.post(
            f"/api/ads/campaigns/{campaign['id']}/creatives/image",
            **_upload(png(), destination_url=url),
            headers=owner.headers,
        )
        assert text.status_code == 422, url
        assert image.status_code == 422, url
    assert await snapshot(platform) == before


async def test_viewers_read_creatives_but_only_managers_change_them(
    client: httpx.AsyncClient, owner: Account, stranger: Account, platform: Platform
) -> None:
    advertiser, campaign = await _campaign(client, owner)
    creative = (
        await client.post(
            f"/api/ads/campaigns/{campaign['id']}/creatives/text",
            json={"name": "T", "destination_url": "https://a.example/", "headline": "H"},
            headers=owner.headers,
        )
    ).json()
    hidden = await client.get(f"/api/ads/creatives/{creative['id']}", headers=stranger.headers)
    await grant(platform, stranger, "ads.advertiser", advertiser["id"], "viewer")
    before = await snapshot(platform)

    seen = await client.get(f"/api/ads/creatives/{creative['id']}", headers=stranger.headers)
    changed = await client.patch(
        f"/api/ads/creatives/{creative['id']}", json={"name": "x"}, headers=stranger.headers
    )
    added = await client.post(
        f"/api/ads/campaigns/{campaign['id']}/creatives/image", **_upload(png()), headers=stranger.headers
    )
    deleted = await client.delete(f"/api/ads/creatives/{creative['id']}", headers=stranger.headers)

    assert hidden.status_code == 404
    assert seen.status_code == 200
    assert (changed.status_code, added.status_code, deleted.status_code) == (403, 403, 403)
    assert await snapshot(platform) == before
