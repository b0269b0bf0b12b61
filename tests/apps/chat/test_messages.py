"""Messages: sending (idempotently), history and resume, threads, reactions, edits, deletes, pins, types."""

from __future__ import annotations

import uuid
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from pentad.apps.chat.models import ChatMessage, ChatMessageEdit
from pentad.apps.chat.settings import ChatSettings
from pentad.core.platform import Platform
from tests.apps.chat.factories import ChatTenantFixture, ChatUserFixture, send
from tests.apps.chat.support import audit_events, insert_messages


async def history(
    client: httpx.AsyncClient, user: ChatUserFixture, channel_id: str, **params: Any
) -> dict[str, Any]:
    response = await client.get(
        f"/api/chat/channels/{channel_id}/messages", params=params, headers=user.headers
    )
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def sync(
    client: httpx.AsyncClient, user: ChatUserFixture, channel_id: str, **params: Any
) -> dict[str, Any]:
    response = await client.get(f"/api/chat/channels/{channel_id}/sync", params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


@pytest.fixture
async def alice(tenant: ChatTenantFixture) -> ChatUserFixture:
    return await tenant.user("alice")


@pytest.fixture
async def bob(tenant: ChatTenantFixture) -> ChatUserFixture:
    return await tenant.user("bob")


@pytest.fixture
async def channel(tenant: ChatTenantFixture, alice: ChatUserFixture, bob: ChatUserFixture) -> str:
    return str((await tenant.channel(alice, bob, kind="private", name="room"))["id"])


async def test_a_message_is_rendered_and_records_its_mentions(
    client: httpx.AsyncClient,
    tenant: ChatTenantFixture,
    alice: ChatUserFixture,
    bob: ChatUserFixture,
    channel: str,
) -> None:
    await tenant.user("carol")  # not a member: mentioning her does not reach her
    dave = await tenant.user("dave")
    await client.post(
        f"/api/chat/channels/{channel}/members", json={"user_ids": [str(dave.id)]}, headers=alice.headers
    )
    response = await client.post(
        f"/api/chat/channels/{channel}/messages",
        json={"text": "**hi** @bob and @carol", "mentioned_user_ids": [str(dave.id)]},
        headers=alice.headers,
    )
    assert response.status_code == 201, response.text
    message = response.json()
    assert message["html"].startswith("<p><strong>hi</strong> ")
    assert 'data-handle="bob"' in message["html"]
    assert set(message["mentioned_user_ids"]) == {str(bob.id), str(dave.id)}
    assert (message["seq"], message["revision"], message["user"]["id"]) == (1, 1, str(alice.id))
    assert message["mentions_channel"] is False
    got = (await client.get(f"/api/chat/messages/{message['id']}", headers=bob.headers)).json()
    assert got == message


async def test_a_resend_with_the_same_client_id_returns_the_original(
    client: httpx.AsyncClient, platform: Platform, alice: ChatUserFixture, bob: ChatUserFixture, channel: str
) -> None:
    url = f"/api/chat/channels/{channel}/messages"
    first = await client.post(url, json={"client_id": "c-1", "text": "once"}, headers=alice.headers)
    assert first.status_code == 201
    retry = await client.post(url, json={"client_id": "c-1", "text": "once"}, headers=alice.headers)
    assert (retry.status_code, retry.json()) == (200, first.json())
    theirs = await client.post(url, json={"client_id": "c-1", "text": "bob's own"}, headers=bob.headers)
    assert theirs.status_code == 201
    assert theirs.json()["id"] != first.json()["id"]

    async with platform.database.transaction(writes=False) as session:
        count = await session.scalar(
            select(func.count()).select_from(ChatMessage).where(ChatMessage.client_id == "c-1")
        )
    assert count == 2
    assert [m["text"] for m in (await history(client, alice, channel))["messages"]] == ["once", "bob's own"]

    elsewhere = (await client.post("/api/chat/channels", json={"name": "x"}, headers=alice.headers)).json()
    moved = await client.post(
        f"/api/chat/channels/{elsewhere['id']}/messages",
        json={"client_id": "c-1", "text": "once"},
        headers=alice.headers,
    )
    assert (moved.status_code, moved.json()["code"]) == (409, "client_id_reused")
    assert (await history(client, alice, elsewhere["id"]))["messages"] == []


async def test_history_pages_back_and_forward_by_sequence(
    client: httpx.AsyncClient, alice: ChatUserFixture, channel: str
) -> None:
    for number in range(1, 8):
        await send(client, alice, channel, f"m{number}")

    def texts(page: dict[str, Any]) -> list[str]:
        return [m["text"] for m in page["messages"]]

    newest = await history(client, alice, channel, limit=3)
    assert (texts(newest), newest["has_more"], newest["last_seq"]) == (["m5", "m6", "m7"], True, 7)
    older = await history(client, alice, channel, limit=3, before=5)
    assert (texts(older), older["has_more"]) == (["m2", "m3", "m4"], True)
    oldest = await history(client, alice, channel, limit=3, before=2)
    assert (texts(oldest), oldest["has_more"]) == (["m1"], False)
    forward = await history(client, alice, channel, limit=3, after=0)
    assert (texts(forward), forward["has_more"]) == (["m1", "m2", "m3"], True)
    end = await history(client, alice, channel, limit=3, after=4)
    assert (texts(end), end["has_more"]) == (["m5", "m6", "m7"], False)
    whole = await history(client, alice, channel)
    assert ([m["seq"] for m in whole["messages"]], whole["has_more"]) == (list(range(1, 8)), False)


async def test_thread_replies_live_in_their_thread(
    client: httpx.AsyncClient,
    tenant: ChatTenantFixture,
    alice: ChatUserFixture,
    bob: ChatUserFixture,
    channel: str,
) -> None:
    root = await send(client, alice, channel, "root")
    reply = await send(client, bob, channel, "reply", parent_id=root["id"])
    assert (reply["parent_id"], reply["seq"]) == (root["id"], 2)
    parent = (await client.get(f"/api/chat/messages/{root['id']}", headers=alice.headers)).json()
    assert (parent["reply_count"], parent["revision"], parent["seq"]) == (1, 2, 1)
    assert parent["last_reply_at"] is not None

    main = await history(client, alice, channel)
    assert [m["text"] for m in main["messages"]] == ["root"]
    replies = (await client.get(f"/api/chat/messages/{root['id']}/replies", headers=alice.headers)).json()
    assert [m["id"] for m in replies["messages"]] == [reply["id"]]
    changes = await sync(client, alice, channel, since=1)
    assert [m["id"] for m in changes["messages"]] in ([root["id"], reply["id"]], [reply["id"], root["id"]])

    nested = await client.post(
        f"/api/chat/channels/{channel}/messages",
        json={"text": "deeper", "parent_id": reply["id"]},
        headers=alice.headers,
    )
    assert (nested.status_code, nested.json()["code"]) == (400, "nested_thread")
    other = (await client.post("/api/chat/channels", json={"name": "other"}, headers=alice.headers)).json()
    astray = await client.post(
        f"/api/chat/channels/{other['id']}/messages",
        json={"text": "x", "parent_id": root["id"]},
        headers=alice.headers,
    )
    assert astray.status_code == 404
    replies_of_reply = await client.get(f"/api/chat/messages/{reply['id']}/replies", headers=alice.headers)
    assert replies_of_reply.status_code == 400

    # Deleting the first message closes the thread to new replies; what was said in it stays readable.
    await client.delete(f"/api/chat/messages/{root['id']}", headers=alice.headers)
    kept = await client.get(f"/api/chat/messages/{root['id']}/replies", headers=bob.headers)
    assert (kept.status_code, [m["id"] for m in kept.json()["messages"]]) == (200, [reply["id"]])
    closed = await client.post(
        f"/api/chat/channels/{channel}/messages",
        json={"text": "late", "parent_id": root["id"]},
        headers=bob.headers,
    )
    assert (closed.status_code, closed.json()["code"]) == (400, "message_deleted")


async def test_reactions_are_added_and_removed_idempotently(
    client: httpx.AsyncClient, alice: ChatUserFixture, bob: ChatUserFixture, channel: str
) -> None:
    message = await send(client, alice, channel, "react to me")
    url = f"/api/chat/messages/{message['id']}/reactions/👍"
    first = (await client.put(url, headers=alice.headers)).json()
    assert first["reactions"] == [{"emoji": "👍", "count": 1, "user_ids": [str(alice.id)]}]
    again = (await client.put(url, headers=alice.headers)).json()
    assert (again["reactions"], again["revision"]) == (first["reactions"], first["revision"])
    both = (await client.put(url, headers=bob.headers)).json()
    assert both["reactions"] == [{"emoji": "👍", "count": 2, "user_ids": [str(alice.id), str(bob.id)]}]
    party = (
        await client.put(f"/api/chat/messages/{message['id']}/reactions/party", headers=bob.headers)
    ).json()
    assert [(r["emoji"], r["count"]) for r in party["reactions"]] == [("👍", 2), ("party", 1)]

    removed = (await client.delete(url, headers=alice.headers)).json()
    assert removed["reactions"][0] == {"emoji": "👍", "count": 1, "user_ids": [str(bob.id)]}
    twice = await client.delete(url, headers=alice.headers)
    assert (twice.status_code, twice.json()["reactions"]) == (200, removed["reactions"])
    bad = await client.put(f"/api/chat/messages/{message['id']}/reactions/two%20words", headers=alice.headers)
    assert bad.status_code == 422


async def test_edits_keep_their_history_and_only_the_author_edits(
    client: httpx.AsyncClient, alice: ChatUserFixture, bob: ChatUserFixture, channel: str
) -> None:
    message = await send(client, alice, channel, "first")
    url = f"/api/chat/messages/{message['id']}"
    refused = await client.patch(url, json={"text": "bob was here"}, headers=bob.headers)
    assert (refused.status_code, refused.json()["code"]) == (403, "not_author")
    second = (await client.patch(url, json={"text": "*second*"}, headers=alice.headers)).json()
    assert (second["text"], second["html"]) == ("*second*", "<p><em>second</em></p>")
    assert second["edited_at"] is not None
    assert second["revision"] > message["revision"]
    same = (await client.patch(url, json={"text": "*second*"}, headers=alice.headers)).json()
    assert same["revision"] == second["revision"]
    await client.patch(url, json={"text": "third"}, headers=alice.headers)

    versions = (await client.get(f"{url}/history", headers=bob.headers)).json()
    assert [v["text"] for v in versions] == ["first", "*second*"]
    assert {v["edited_by"] for v in versions} == {str(alice.id)}
    assert [m["text"] for m in (await history(client, bob, channel))["messages"]] == ["third"]


async def test_a_delete_leaves_a_tombstone_without_its_content(
    client: httpx.AsyncClient, platform: Platform, alice: ChatUserFixture, bob: ChatUserFixture, channel: str
) -> None:
    await send(client, alice, channel, "before")
    message = await send(client, bob, channel, "secret *text*", type="note", payload={"k": "v"})
    await client.patch(
        f"/api/chat/messages/{message['id']}", json={"text": "edited secret"}, headers=bob.headers
    )
    await send(client, alice, channel, "after")
    alice_own = await send(client, alice, channel, "alice's")
    other = await client.delete(f"/api/chat/messages/{alice_own['id']}", headers=bob.headers)
    assert (other.status_code, other.json()["code"]) == (403, "channel_permission")

    deleted = await client.delete(f"/api/chat/messages/{message['id']}", headers=bob.headers)
    assert deleted.status_code == 200
    tombstone = deleted.json()
    assert (tombstone["text"], tombstone["html"], tombstone["payload"]) == ("", "", None)
    assert tombstone["deleted_at"] is not None
    page = (await history(client, alice, channel))["messages"]
    assert [(m["seq"], m["text"], m["deleted_at"] is not None) for m in page] == [
        (1, "before", False),
        (2, "", True),
        (4, "after", False),
        (5, "alice's", False),
    ]
    # Earlier versions go with it: a deleted message's history must not keep what was deleted.
    versions = await client.get(f"/api/chat/messages/{message['id']}/history", headers=alice.headers)
    assert versions.status_code == 200
    assert versions.json() == []
    async with platform.database.transaction(writes=False) as session:
        kept = await session.scalar(
            select(func.count())
            .select_from(ChatMessageEdit)
            .where(ChatMessageEdit.message_id == uuid.UUID(message["id"]))
        )
    assert kept == 0
    edit = await client.patch(
        f"/api/chat/messages/{message['id']}", json={"text": "back"}, headers=bob.headers
    )
    assert edit.status_code == 409
    again = await client.delete(f"/api/chat/messages/{message['id']}", headers=bob.headers)
    assert (again.status_code, again.json()["revision"]) == (200, tombstone["revision"])
    assert await audit_events(platform, "chat.message_deleted_by_moderator") == []


async def test_a_deleted_message_offers_its_files_no_more(
    client: httpx.AsyncClient, alice: ChatUserFixture, bob: ChatUserFixture, channel: str
) -> None:
    upload = await client.post(
        f"/api/chat/channels/{channel}/attachments",
        files={"file": ("plan.txt", b"the plan", "text/plain")},
        headers=alice.headers,
    )
    assert upload.status_code == 201, upload.text
    message = await send(client, alice, channel, "see file", attachment_ids=[upload.json()["id"]])
    assert [a["id"] for a in message["attachments"]] == [upload.json()["id"]]
    tombstone = (await client.delete(f"/api/chat/messages/{message['id']}", headers=alice.headers)).json()
    assert tombstone["attachments"] == []
    shown = (await history(client, bob, channel))["messages"][0]
    assert (shown["id"], shown["attachments"]) == (message["id"], [])


async def test_a_moderator_deletes_others_messages_and_is_audited(
    client: httpx.AsyncClient, platform: Platform, alice: ChatUserFixture, bob: ChatUserFixture, channel: str
) -> None:
    message = await send(client, bob, channel, "rude")
    response = await client.delete(
        f"/api/chat/messages/{message['id']}", headers=alice.headers
    )  # alice owns it
    assert response.status_code == 200
    assert response.json()["deleted_at"] is not None
    events = await audit_events(platform, "chat.message_deleted_by_moderator")
    assert [(e.resource_id, e.actor_id, e.details["author_id"]) for e in events] == [
        (message["id"], str(alice.id), str(bob.id))
    ]


async def test_pins(
    client: httpx.AsyncClient, alice: ChatUserFixture, bob: ChatUserFixture, channel: str
) -> None:
    message = await send(client, bob, channel, "important")
    refused = await client.put(f"/api/chat/messages/{message['id']}/pin", headers=bob.headers)
    assert refused.status_code == 403
    pinned = await client.put(f"/api/chat/messages/{message['id']}/pin", headers=alice.headers)
    assert pinned.json()["pinned_at"] is not None
    assert [
        m["id"] for m in (await client.get(f"/api/chat/channels/{channel}/pins", headers=bob.headers)).json()
    ] == [message["id"]]
    unpinned = await client.delete(f"/api/chat/messages/{message['id']}/pin", headers=alice.headers)
    assert unpinned.json()["pinned_at"] is None
    assert (await client.get(f"/api/chat/channels/{channel}/pins", headers=bob.headers)).json() == []

    gone = await send(client, bob, channel, "gone")
    await client.delete(f"/api/chat/messages/{gone['id']}", headers=bob.headers)
    late = await client.put(f"/api/chat/messages/{gone['id']}/pin", headers=alice.headers)
    assert (late.status_code, late.json()["code"]) == (409, "message_deleted")


async def test_direct_channel_members_pin_without_being_moderators(
    client: httpx.AsyncClient, alice: ChatUserFixture, bob: ChatUserFixture
) -> None:
    direct = (
        await client.post(
            "/api/chat/channels", json={"kind": "direct", "members": [str(bob.id)]}, headers=alice.headers
        )
    ).json()
    message = await send(client, alice, direct["id"], "remember")
    assert (
        await client.put(f"/api/chat/messages/{message['id']}/pin", headers=bob.headers)
    ).status_code == 200


async def test_custom_types_carry_json_payloads(
    client: httpx.AsyncClient, platform: Platform, alice: ChatUserFixture, bob: ChatUserFixture, channel: str
) -> None:
    poll = await send(client, alice, channel, "Lunch?", type="poll", payload={"options": ["pizza", "soup"]})
    assert (poll["type"], poll["payload"]) == ("poll", {"options": ["pizza", "soup"]})
    sealed = {"alg": "x25519-aes256gcm", "iv": "AAECAwQFBgcICQoL", "ct": "q83vEjRWeJA=", "to": [str(bob.id)]}
    secret = await send(client, alice, channel, "", type="e2e.v1", payload=sealed)
    assert (secret["text"], secret["html"], secret["payload"]) == ("", "", sealed)
    read = (await client.get(f"/api/chat/messages/{secret['id']}", headers=bob.headers)).json()
    assert read["payload"] == sealed

    url = f"/api/chat/channels/{channel}/messages"
    empty = await client.post(url, json={"text": "  "}, headers=alice.headers)
    assert (empty.status_code, empty.json()["code"]) == (400, "empty_message")
    limit = platform.app_settings(ChatSettings).max_payload_bytes
    big = await client.post(
        url, json={"type": "blob", "payload": {"data": "x" * limit}}, headers=alice.headers
    )
    assert (big.status_code, big.json()["code"]) == (400, "payload_too_large")
    length = platform.app_settings(ChatSettings).max_message_length
    assert (await client.post(url, json={"text": "x" * length}, headers=alice.headers)).status_code == 201
    long = await client.post(url, json={"text": "x" * (length + 1)}, headers=alice.headers)
    assert (long.status_code, long.json()["code"]) == (400, "message_too_long")
    huge = await client.post(url, json={"text": "x" * 100_001}, headers=alice.headers)
    assert huge.status_code == 422
    bad_type = await client.post(url, json={"text": "x", "type": "Not A Type"}, headers=alice.headers)
    assert bad_type.status_code == 422
    edit_too_big = await client.patch(
        f"/api/chat/messages/{poll['id']}", json={"payload": {"data": "x" * limit}}, headers=alice.headers
    )
    assert (edit_too_big.status_code, edit_too_big.json()["code"]) == (400, "payload_too_large")


async def test_a_client_resumes_a_thousand_missed_messages_through_sync(
    client: httpx.AsyncClient, platform: Platform, alice: ChatUserFixture, bob: ChatUserFixture, channel: str
) -> None:
    seen = await send(client, alice, channel, "seen")
    await insert_messages(platform, alice, channel, 1000)
    received: list[dict[str, Any]] = []
    since = seen["seq"]
    pages = 0
    while True:
        page = await sync(client, bob, channel, since=since, limit=1000)
        pages += 1
        received += page["messages"]
        assert page["last_seq"] == 1001
        if not page["has_more"]:
            break
        assert page["messages"]
        since = page["messages"][-1]["revision"]
    page_max = platform.app_settings(ChatSettings).history_page_max
    assert pages == -(-1000 // page_max)
    assert [m["text"] for m in received] == [f"m {n}" for n in range(1000)]
    assert [m["seq"] for m in received] == list(range(2, 1002))
    assert len({m["id"] for m in received}) == 1000
    assert (await sync(client, bob, channel, since=1001))["messages"] == []


async def test_sync_brings_edits_reactions_deletes_and_pins_after_a_point(
    client: httpx.AsyncClient, alice: ChatUserFixture, bob: ChatUserFixture, channel: str
) -> None:
    first = await send(client, alice, channel, "one")
    second = await send(client, alice, channel, "two")
    third = await send(client, bob, channel, "three")
    checkpoint = third["seq"]
    assert (await sync(client, bob, channel, since=checkpoint))["messages"] == []

    await client.put(f"/api/chat/messages/{first['id']}/reactions/👍", headers=bob.headers)
    await client.patch(f"/api/chat/messages/{second['id']}", json={"text": "two!"}, headers=alice.headers)
    await client.delete(f"/api/chat/messages/{third['id']}", headers=bob.headers)
    await client.put(f"/api/chat/messages/{second['id']}/pin", headers=alice.headers)
    fourth = await send(client, alice, channel, "four")

    changes = await sync(client, bob, channel, since=checkpoint)
    assert [m["id"] for m in changes["messages"]] == [first["id"], third["id"], second["id"], fourth["id"]]
    assert [m["revision"] for m in changes["messages"]] == [4, 6, 7, 8]
    by_id = {m["id"]: m for m in changes["messages"]}
    assert by_id[first["id"]]["reactions"][0]["emoji"] == "👍"
    assert (by_id[second["id"]]["text"], by_id[second["id"]]["pinned_at"] is not None) == ("two!", True)
    assert by_id[third["id"]]["deleted_at"] is not None
    assert changes["last_seq"] == 8
    assert [m["id"] for m in (await sync(client, bob, channel, since=7))["messages"]] == [fourth["id"]]


XSS_PAYLOADS = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](java&#x09;script:alert(1))",
    "[click](&#106;avascript:alert(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![x](javascript:alert(1))",
    '<a href="javascript:alert(1)">x</a>',
    "<svg onload=alert(1)>",
    '<iframe src="https://evil.example"></iframe>',
    '[a](https://ok.example "title" onmouseover="alert(1)")',
    "<javascript:alert(1)>",
    "`<script>` **<b onclick=alert(1)>b</b>**",
    '<div style="background:url(javascript:alert(1))">x</div>',
    "[x](vbscript:msgbox(1))",
]

SAFE_TAGS = {
    "p",
    "br",
    "strong",
    "em",
    "del",
    "s",
    "code",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "li",
    "a",
    "span",
}
SAFE_ATTRIBUTES = {"href", "class", "data-handle", "rel", "title", "start"}


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def assert_safe(html: str) -> None:
    """No element but the renderer's few, no event handler or style, links only to web and mail addresses."""
    assert "<script" not in html.lower(), html
    parser = _Tags()
    parser.feed(html)
    for tag, attributes in parser.tags:
        assert tag in SAFE_TAGS, html
        for name, value in attributes:
            assert name in SAFE_ATTRIBUTES, html
            if name == "href":
                assert (value or "").startswith(("https://", "http://", "mailto:")), html


@pytest.mark.parametrize("text", XSS_PAYLOADS)
async def test_markup_sent_through_the_api_comes_back_harmless(
    client: httpx.AsyncClient, alice: ChatUserFixture, bob: ChatUserFixture, channel: str, text: str
) -> None:
    message = await send(client, alice, channel, text)
    assert message["text"] == text
    assert_safe(message["html"])
    fetched = (await history(client, bob, channel))["messages"][-1]
    assert_safe(fetched["html"])
    edited = await client.patch(
        f"/api/chat/messages/{message['id']}", json={"text": f"edit {text}"}, headers=alice.headers
    )
    assert edited.status_code == 200
    assert_safe(edited.json()["html"])
