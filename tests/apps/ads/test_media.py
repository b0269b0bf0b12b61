"""Image variants (widths 320-1280 in AVIF, WebP and the original format, rendered by `ads.render_variants`,
served immutable, offered as <picture> sources) and HTML5 creatives (a zip or an HTML file, checked on
upload, served in a CSP sandbox, framed by the loader with the signed click URL as clickTAG)."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import httpx
import pytest
from PIL import Image, features

from pentad.apps.ads.images import render
from pentad.core.platform import Platform
from pentad.core.storage import ObjectNotFound
from tests.apps.ads.serving import decide, setup
from tests.apps.ads.support import snapshot
from tests.factories import Account, run_due_jobs

SANDBOX = "sandbox allow-scripts allow-popups allow-popups-to-escape-sandbox"


def _image(width: int, height: int, fmt: str = "PNG", mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), 0).save(buffer, format=fmt)
    return buffer.getvalue()


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _form(**fields: Any) -> dict[str, str]:
    return {"name": "Banner", "destination_url": "https://shop.example.com/sale", **fields}


async def _pause_text_ad(client: httpx.AsyncClient, who: Account, creative_id: str) -> None:
    response = await client.patch(
        f"/api/ads/creatives/{creative_id}", json={"status": "paused"}, headers=who.headers
    )
    assert response.status_code == 200


def test_variants_are_never_wider_than_the_original_and_keep_its_shape() -> None:
    found = render(_image(700, 350, "JPEG"), "image/jpeg")

    formats = ["avif", "webp", "jpeg"] if features.check("avif") else ["webp", "jpeg"]
    assert sorted(found) == sorted((width, fmt) for width in (320, 640) for fmt in formats)
    with Image.open(io.BytesIO(found[(640, "jpeg")])) as image:
        assert (image.format, image.size) == ("JPEG", (640, 320))
    assert render(_image(100, 50), "image/png").keys() == {
        (100, fmt) for fmt in ["avif", "webp", "png"][-len(formats) :]
    }
    assert render(_image(100, 50, "GIF", "P"), "image/gif") == {}  # an animation would be lost
    palette = render(_image(400, 200, "PNG", "P"), "image/png")  # converted for AVIF and WebP
    assert sorted(palette) == sorted((320, fmt) for fmt in [*formats[:-1], "png"])


async def test_an_uploaded_image_gets_immutable_variants_offered_as_picture_sources(
    client: httpx.AsyncClient, owner: Account, platform: Platform
) -> None:
    ads = await setup(client, owner, zone={"width": 1000, "height": 500, "path_patterns": []})
    await _pause_text_ad(client, owner, ads.creative_id)
    uploaded = await client.post(
        f"/api/ads/campaigns/{ads.campaign_id}/creatives/image",
        data=_form(alt_text="Sale"),
        files={"file": ("ad.png", _image(1000, 500), "image/png")},
        headers=owner.headers,
    )
    assert uploaded.status_code == 201, uploaded.text
    creative_id = uploaded.json()["id"]
    await run_due_jobs(platform)

    shown = (await client.get(f"/api/ads/creatives/{creative_id}", headers=owner.headers)).json()
    formats = ["avif", "webp", "png"] if features.check("avif") else ["webp", "png"]
    assert shown["variants"] == {"widths": [320, 640, 960], "formats": formats}
    variant = await client.get(f"/ads/i/{creative_id}/640.webp")
    assert variant.status_code == 200
    assert variant.headers["content-type"] == "image/webp"
    assert variant.headers["cache-control"] == "public, max-age=31536000, immutable"
    with Image.open(io.BytesIO(variant.content)) as image:
        assert image.size == (640, 320)
    for missing in ("1280.png", "640.exe", "641.webp"):
        assert (await client.get(f"/ads/i/{creative_id}/{missing}")).status_code == 404, missing

    answer = (await decide(client, ads.zone_id, "/")).json()
    assert answer["ad"]["id"] == creative_id
    (first, *_), last = answer["ad"]["sources"], answer["ad"]["sources"][-1]
    assert first["type"] == f"image/{formats[0]}"
    assert last["srcset"] == ", ".join(
        f"{platform.base_url}/ads/i/{creative_id}/{w}.png {w}w" for w in (320, 640, 960)
    )

    deleted = await client.delete(f"/api/ads/creatives/{creative_id}", headers=owner.headers)
    assert deleted.status_code == 204
    with pytest.raises(ObjectNotFound):
        await platform.storage.get(f"ads/creatives/{creative_id}/640.webp")


async def test_a_decompression_bomb_is_refused_and_nothing_stored(
    client: httpx.AsyncClient, owner: Account, platform: Platform
) -> None:
    ads = await setup(client, owner)
    bomb = _image(8000, 6000, mode="1")  # 48 megapixels in a few kilobytes
    before = await snapshot(platform)

    refused = await client.post(
        f"/api/ads/campaigns/{ads.campaign_id}/creatives/image",
        data=_form(),
        files={"file": ("ad.png", bomb, "image/png")},
        headers=owner.headers,
    )

    assert len(bomb) < 100_000
    assert (refused.status_code, refused.json()["code"]) == (400, "unsupported_image")
    assert await snapshot(platform) == before


INDEX = (
    b"""<!doctype html><html><body><a id="go" href="#">Buy</a><script src="app.js"></script></body></html>"""
)
APP_JS = b"""document.getElementById('go').onclick = function () {
  window.open(new URLSearchParams(location.search).get('clickTAG'));
};"""


BANNER = _zip({"banner/index.html": INDEX, "banner/app.js": APP_JS})


async def test_an_html5_zip_is_served_in_a_sandbox_and_framed_with_its_click_url(
    client: httpx.AsyncClient, owner: Account, platform: Platform
) -> None:
    ads = await setup(client, owner, zone={"width": 300, "height": 250, "path_patterns": []})
    await _pause_text_ad(client, owner, ads.creative_id)
    uploaded = await client.post(
        f"/api/ads/campaigns/{ads.campaign_id}/creatives/html5",
        data=_form(width="300", height="250"),
        files={
            "file": ("ad.zip", _zip({"banner/index.html": INDEX, "banner/app.js": APP_JS}), "application/zip")
        },
        headers=owner.headers,
    )
    assert uploaded.status_code == 201, uploaded.text
    creative = uploaded.json()
    assert (creative["kind"], creative["variants"]["files"]) == ("html5", ["app.js", "index.html"])

    page = await client.get(f"/ads/h/{creative['id']}/index.html?clickTAG=x")
    script = await client.get(f"/ads/h/{creative['id']}/app.js")
    answer = (await decide(client, ads.zone_id, "/")).json()

    assert page.status_code == 200
    assert page.content == INDEX
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert SANDBOX in policy
    assert "frame-ancestors *" in policy
    assert "x-frame-options" not in page.headers
    assert script.headers["content-type"].startswith("text/javascript")
    assert answer["ad"]["html"] == f"{platform.base_url}/ads/h/{creative['id']}/index.html"
    assert answer["ad"]["click"].startswith(f"{platform.base_url}/ads/c/")
    assert (await client.get(answer["ad"]["click"].replace(platform.base_url, ""))).status_code == 302
    for missing in ("other.html", "%2e%2e/%2e%2e/index.html", "..%2findex.html", "index.exe"):
        assert (await client.get(f"/ads/h/{creative['id']}/{missing}")).status_code == 404, missing

    single = await client.post(
        f"/api/ads/campaigns/{ads.campaign_id}/creatives/html5",
        data=_form(width="300", height="250"),
        files={"file": ("ad.html", INDEX, "text/html")},
        headers=owner.headers,
    )
    assert single.json()["variants"]["files"] == ["index.html"]


@pytest.mark.parametrize(
    ("upload", "code"),
    [
        (_zip({"../index.html": INDEX}), "invalid_html5"),
        (_zip({"/etc/index.html": INDEX}), "invalid_html5"),
        (_zip({"index.html": INDEX, "tool.exe": b"MZ"}), "invalid_html5"),
        (_zip({"main.html": INDEX}), "invalid_html5"),
        (b"PK\x03\x04 not really a zip", "invalid_html5"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "invalid_html5"),
        (_zip({"index.html": INDEX, "pad.txt": b"0" * 6_000_000}), "html5_too_large"),
    ],
    ids=["zip-slip", "absolute", "executable", "no-index", "broken-zip", "not-html", "zip-bomb"],
)
async def test_a_bad_html5_upload_is_refused_and_nothing_stored(
    client: httpx.AsyncClient, owner: Account, platform: Platform, upload: bytes, code: str
) -> None:
    advertiser = (await client.post("/api/ads/advertisers", json={"name": "A"}, headers=owner.headers)).json()
    campaign = await client.post(
        f"/api/ads/advertisers/{advertiser['id']}/campaigns",
        json={"name": "C", "starts_at": "2026-12-01T00:00:00Z", "pricing": "cpm", "rate_micros": 1},
        headers=owner.headers,
    )
    before = await snapshot(platform)

    refused = await client.post(
        f"/api/ads/campaigns/{campaign.json()['id']}/creatives/html5",
        data=_form(width="300", height="250"),
        files={"file": ("ad.zip", upload, "application/zip")},
        headers=owner.headers,
    )

    assert refused.status_code == (413 if code == "html5_too_large" else 400), refused.text
    assert refused.json()["code"] == code
    assert await snapshot(platform) == before
    assert [obj async for obj in platform.storage.list("ads/")] == []
