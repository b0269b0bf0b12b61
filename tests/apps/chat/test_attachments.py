"""Chat attachments: uploads with thumbnails, binding to messages, signed downloads, and the refusals."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image

from pentad.app import create_app
from pentad.apps.chat.spec import APP
from pentad.core.config import Settings
from pentad.core.db.engine import Database
from tests.apps.chat.factories import ChatTenantFixture, ChatUserFixture, create_tenant, send
from tests.conftest import make_settings

UPLOAD_LIMIT = 65_536
THUMBNAIL_SIZE = 64


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        apps=["chat"],
        chat={"upload_max_bytes": UPLOAD_LIMIT, "thumbnail_size": THUMBNAIL_SIZE},
    )


def image_bytes(width: int, height: int, image_format: str, **save: Any) -> bytes:
    image = Image.new("RGB", (width, height), (200, 30, 30))
    image.paste((20, 20, 220), (0, 0, width // 2, height))
    output = io.BytesIO()
    image.save(output, format=image_format, **save)
    return output.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a size without carrying the pixels: what a decompression bomb looks like first."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


async def upload(
    client: httpx.AsyncClient,
    user: ChatUserFixture,
    channel_id: Any,
    data: bytes,
    content_type: str = "image/png",
    filename: str = "picture.png",
) -> httpx.Response:
    return await client.post(
        f"/api/chat/channels/{channel_id}/attachments",
        files={"file": (filename, data, content_type)},
        headers=user.headers,
    )


async def fetch(client: httpx.AsyncClient, signed_url: str) -> httpx.Response:
    parts = urlsplit(signed_url)
    return await client.get(f"{parts.path}?{parts.query}")


async def test_image_upload_gets_a_small_thumbnail(
    client: httpx.AsyncClient, tenant: ChatTenantFixture
) -> None:
    alice = await tenant.user("alice")
    channel = await tenant.channel(alice)
    original = image_bytes(400, 200, "PNG")

    response = await upload(client, alice, channel["id"], original)

    assert response.status_code == 201, response.text
    ref = response.json()
    assert (ref["filename"], ref["content_type"], ref["size"]) == ("picture.png", "image/png", len(original))
    assert (ref["width"], ref["height"]) == (400, 200)
    thumbnail = await fetch(client, ref["thumbnail_url"])
    assert thumbnail.status_code == 200
    assert thumbnail.headers["content-type"] == "image/webp"
    assert len(thumbnail.content) < 2000
    with Image.open(io.BytesIO(thumbnail.content)) as small:
        assert small.format == "WEBP"
        assert small.size == (THUMBNAIL_SIZE, THUMBNAIL_SIZE // 2)


async def test_thumbnail_follows_exif_orientation(
    client: httpx.AsyncClient, tenant: ChatTenantFixture
) -> None:
    alice = await tenant.user("alice")
    channel = await tenant.channel(alice)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown turned a quarter clockwise
    photo = image_bytes(300, 100, "JPEG", exif=exif.tobytes())

    response = await upload(client, alice, channel["id"], photo, "image/jpeg", "photo.jpg")

    assert response.status_code == 201, response.text
    ref = response.json()
    assert (ref["width"], ref["height"]) == (100, 300)
    thumbnail = await fetch(client, ref["thumbnail_url"])
    with Image.open(io.BytesIO(thumbnail.content)) as small:
        assert small.size[0] < small.size[1] == THUMBNAIL_SIZE


async def test_sent_attachment_is_shown_with_a_working_signed_url(
    client: httpx.AsyncClient, tenant: ChatTenantFixture
) -> None:
    alice = await tenant.user("alice")
    bob = await tenant.user("bob")
    channel = await tenant.channel(alice, bob, kind="private", name="team")
    document = b"%PDF-1.7 a small document"
    ref = (
        await upload(client, alice, channel["id"], document, "application/pdf", "../../notes v2.pdf")
    ).json()
    assert ref["filename"] == "notes v2.pdf"
    assert ref["thumbnail_url"] is None
    assert ref["width"] is None

    message = await send(client, alice, channel["id"], "the notes", attachment_ids=[ref["id"]])

    assert [a["id"] for a in message["attachments"]] == [ref["id"]]
    history = await client.get(f"/api/chat/channels/{channel['id']}/messages", headers=bob.headers)
    (shown,) = history.json()["messages"][0]["attachments"]
    download = await fetch(client, shown["url"])
    assert download.status_code == 200
    assert download.content == document
    assert "notes v2.pdf" in download.headers["content-disposition"]


async def test_non_members_cannot_upload(client: httpx.AsyncClient, tenant: ChatTenantFixture) -> None:
    alice = await tenant.user("alice")
    mallory = await tenant.user("mallory")
    private = await tenant.channel(alice, kind="private", name="secret")
    public = await tenant.channel(alice, name="lobby")
    data = image_bytes(10, 10, "PNG")

    hidden = await upload(client, mallory, private["id"], data)
    outside = await upload(client, mallory, public["id"], data)
    anonymous = await client.post(
        f"/api/chat/channels/{public['id']}/attachments", files={"file": ("a.png", data, "image/png")}
    )

    assert hidden.status_code == 404
    assert outside.status_code == 403
    assert outside.json()["code"] == "not_a_member"
    assert anonymous.status_code == 401


async def test_attachments_of_others_cannot_be_sent(
    client: httpx.AsyncClient, tenant: ChatTenantFixture
) -> None:
    alice = await tenant.user("alice")
    bob = await tenant.user("bob")
    channel = await tenant.channel(alice, bob)
    other = await tenant.channel(alice, name="other")
    theirs = (await upload(client, alice, channel["id"], image_bytes(10, 10, "PNG"))).json()
    elsewhere = (await upload(client, alice, other["id"], image_bytes(10, 10, "PNG"))).json()

    stolen = await client.post(
        f"/api/chat/channels/{channel['id']}/messages",
        json={"text": "mine now", "attachment_ids": [theirs["id"]]},
        headers=bob.headers,
    )
    wrong_channel = await client.post(
        f"/api/chat/channels/{channel['id']}/messages",
        json={"text": "here", "attachment_ids": [elsewhere["id"]]},
        headers=alice.headers,
    )

    assert stolen.status_code == 400
    assert stolen.json()["code"] == "bad_attachment"
    assert wrong_channel.status_code == 400


async def test_too_large_upload_is_refused(client: httpx.AsyncClient, tenant: ChatTenantFixture) -> None:
    alice = await tenant.user("alice")
    channel = await tenant.channel(alice)

    response = await upload(
        client, alice, channel["id"], b"x" * (UPLOAD_LIMIT + 1), "application/octet-stream", "big.bin"
    )

    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


async def test_fake_and_broken_images_are_refused(
    client: httpx.AsyncClient, tenant: ChatTenantFixture
) -> None:
    alice = await tenant.user("alice")
    channel = await tenant.channel(alice)
    channel_id = channel["id"]

    fake = await upload(client, alice, channel_id, b"<html><script>alert(1)</script></html>")
    broken = await upload(client, alice, channel_id, b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    bomb = await upload(client, alice, channel_id, png_header_only(8000, 8000))
    huge = await upload(client, alice, channel_id, png_header_only(30000, 30000))

    assert fake.status_code == 415
    assert fake.json()["code"] == "content_type_mismatch"
    assert broken.status_code == 400
    assert broken.json()["code"] == "bad_image"
    assert bomb.status_code == 400
    assert "pixels" in bomb.json()["detail"]
    assert huge.status_code == 400


async def test_uploader_deletes_unsent_attachment(
    client: httpx.AsyncClient, tenant: ChatTenantFixture
) -> None:
    alice = await tenant.user("alice")
    bob = await tenant.user("bob")
    channel = await tenant.channel(alice, bob)
    unsent = (await upload(client, alice, channel["id"], image_bytes(10, 10, "PNG"))).json()
    sent = (await upload(client, alice, channel["id"], image_bytes(10, 10, "PNG"))).json()
    await send(client, alice, channel["id"], "one", attachment_ids=[sent["id"]])

    by_other = await client.delete(f"/api/chat/attachments/{unsent['id']}", headers=bob.headers)
    already_sent = await client.delete(f"/api/chat/attachments/{sent['id']}", headers=alice.headers)
    deleted = await client.delete(f"/api/chat/attachments/{unsent['id']}", headers=alice.headers)

    assert by_other.status_code == 404
    assert already_sent.status_code == 409
    assert deleted.status_code == 204
    assert (await fetch(client, unsent["url"])).status_code == 404
    assert (await fetch(client, unsent["thumbnail_url"])).status_code == 404
    late = await client.post(
        f"/api/chat/channels/{channel['id']}/messages",
        json={"text": "two", "attachment_ids": [unsent["id"]]},
        headers=alice.headers,
    )
    assert late.status_code == 400


async def test_uploads_may_be_larger_than_other_request_bodies(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    """The core's request-body limit (PENTAD_SECURITY__MAX_BODY_BYTES) would refuse most real photos; the
    attachment route declares the upload body limit and checks PENTAD_CHAT__UPLOAD_MAX_BYTES itself."""
    settings = make_settings(tmp_path, database_url, apps=["chat"], security={"max_body_bytes": 4096})
    app = create_app(settings, database=database, apps=[APP])
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        tenant = await create_tenant(app.state.platform, client)
        alice = await tenant.user("alice")
        channel = await tenant.channel(alice)
        big = b"%PDF-1.7\n" + b"0" * 20_000

        uploaded = await upload(client, alice, channel["id"], big, "application/pdf", "report.pdf")
        message = await client.post(
            f"/api/chat/channels/{channel['id']}/messages", json={"text": "y" * 4500}, headers=alice.headers
        )

    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["size"] == len(big)
    assert message.status_code == 413
