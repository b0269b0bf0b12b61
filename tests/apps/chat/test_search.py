"""Message search: matching, filters, paging, query sanitising, and above all who may find what."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from pentad.apps.chat import search as search_module
from pentad.apps.chat.models import ChatMessage
from pentad.apps.chat.search import SearchTerms, fts5_expression, parse_query
from pentad.core.errors import BadRequest
from pentad.core.platform import Platform
from tests.apps.chat.factories import ChatTenantFixture, ChatUserFixture, send


async def search(client: httpx.AsyncClient, user: ChatUserFixture, q: str, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/chat/search", params={"q": q, **params}, headers=user.headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def found(client: httpx.AsyncClient, user: ChatUserFixture, q: str, **params: Any) -> set[str]:
    """The texts of every hit, all pages."""
    texts: list[str] = []
    before = None
    while True:
        page = await search(client, user, q, limit=100, **({"before": before} if before else {}), **params)
        texts += [hit["message"]["text"] for hit in page["results"]]
        if not page["has_more"]:
            break
        before = page["next_before"]
    assert len(texts) == len(set(texts)), texts
    return set(texts)


async def set_columns(platform: Platform, message_id: str, **values: Any) -> None:
    async with platform.database.transaction() as session:
        await session.execute(
            update(ChatMessage).where(ChatMessage.id == uuid.UUID(message_id)).values(**values)
        )


# ---------------------------------------------------------------- query parsing


def test_parse_query_quotes_every_term_for_fts5() -> None:
    terms = parse_query('say "hi" NEAR(x) text:col OR a*b hello')
    assert terms == SearchTerms(("say", '"hi"', "NEAR(x)", "text:col", "OR", "a*b"), "hello")
    assert fts5_expression(terms) == ('"say" """hi""" "NEAR(x)" "text:col" "OR" "a*b" "hello"*')


def test_parse_query_prefixes_only_a_plain_last_word_of_three_letters() -> None:
    assert parse_query("hello wo").prefix is None
    assert parse_query("hello wo.").prefix is None
    assert parse_query("wor").prefix == "wor"
    assert parse_query("x\x00y").terms == ("x", "y")


@pytest.mark.parametrize("query", ["", "   ", "!!!", '"', "*", "- + ^", "\x00", "_"])
def test_parse_query_refuses_queries_without_words(query: str) -> None:
    with pytest.raises(BadRequest) as raised:
        parse_query(query)
    assert raised.value.code == "empty_query"


# ---------------------------------------------------------------- matching


async def test_finds_by_word_prefix_and_thread_reply(
    client: httpx.AsyncClient, tenant: ChatTenantFixture
) -> None:
    alice = await tenant.user("alice")
    channel = await tenant.channel(alice)
    fox = await send(client, alice, channel["id"], "The quick brown fox")
    await send(client, alice, channel["id"], "jumps over the lazy dogs")
    reply = await send(client, alice, channel["id"], "a fox reply in the thread", parent_id=fox["id"])

    page = await search(client, alice, "quick")
    assert [hit["message"]["id"] for hit in page["results"]] == [fox["id"]]
    hit = page["results"][0]
    assert hit["channel"] == {"id": channel["id"], "name": "general", "kind": "public"}
    assert hit["message"]["user"]["id"] == str(alice.id)
    assert page["has_more"] is False
    assert page["next_before"] is None

    assert await found(client, alice, "QUICK fox") == {"The quick brown fox"}
    assert await found(client, alice, "jum") == {"jumps over the lazy dogs"}
    assert await found(client, alice, "fox") == {"The quick brown fox", "a fox reply in the thread"}
    assert await found(client, alice, "quick dogs") == set()
    thread_hit = (await search(client, alice, "reply"))["results"][0]["message"]
    assert thread_hit["id"] == reply["id"]
    assert thread_hit["parent_id"] == fox["id"]


async def test_edits_are_reindexed_and_deletes_vanish(
    client: httpx.AsyncClient, tenant: ChatTenantFixture
) -> None:
    alice = await tenant.user("alice")
    channel = await tenant.channel(alice)
    message = await send(client, alice, channel["id"], "apple pie recipe")
    assert await found(client, alice, "apple") == {"apple pie recipe"}

    response = await client.patch(
        f"/api/chat/messages/{message['id']}", json={"text": "banana split recipe"}, headers=alice.headers
    )
    assert response.status_code == 200, response.text
    assert await found(client, alice, "apple") == set()
    assert await found(client, alice, "banana") == {"banana split recipe"}

    response = await client.delete(f"/api/chat/messages/{message['id']}", headers=alice.headers)
    assert response.status_code == 200, response.text
    assert await found(client, alice, "banana") == set()
    assert await found(client, alice, "recipe") == set()


# ---------------------------------------------------------------- filters


async def test_filters_by_channel_author_dates_and_attachments(
    client: httpx.AsyncClient, platform: Platform, tenant: ChatTenantFixture
) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    one = await tenant.channel(alice, bob, name="one")
    two = await tenant.channel(alice, bob, name="two")
    old = await send(client, alice, one["id"], "report old")
    await send(client, bob, one["id"], "report by bob")
    filed = await send(client, alice, two["id"], "report with file")
    await set_columns(platform, old["id"], created_at=datetime(2020, 1, 1, tzinfo=UTC))
    await set_columns(platform, filed["id"], has_attachments=True)
    everything = {"report old", "report by bob", "report with file"}

    assert await found(client, alice, "report") == everything
    assert await found(client, alice, "report", channel_id=one["id"]) == {"report old", "report by bob"}
    assert await found(client, alice, "report", author_id=str(bob.id)) == {"report by bob"}
    assert await found(client, alice, "report", has_attachment="true") == {"report with file"}
    assert await found(client, alice, "report", has_attachment="false") == {"report old", "report by bob"}
    assert await found(client, alice, "report", until="2021-01-01T00:00:00Z") == {"report old"}
    assert await found(client, alice, "report", since="2021-01-01T00:00:00") == everything - {"report old"}
    recent = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert await found(client, alice, "report", since=recent, author_id=str(alice.id)) == {"report with file"}
    assert await found(client, alice, "report", since="2020-01-02T00:00:00Z", until="2020-01-03") == set()


# ---------------------------------------------------------------- who may find what


async def test_searches_only_what_the_searcher_may_read(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, other_tenant: ChatTenantFixture
) -> None:
    alice, bob, carol = [await tenant.user(name) for name in ("alice", "bob", "carol")]
    stranger = await other_tenant.user("alice")

    async def post(author: ChatUserFixture, channel: dict[str, Any], label: str) -> dict[str, Any]:
        return await send(client, author, channel["id"], f"zebra {label}")

    joined_public = await tenant.channel(bob, alice, carol, name="joined-public")
    other_public = await tenant.channel(bob, name="other-public")
    joined_private = await tenant.channel(bob, alice, kind="private", name="joined-private")
    closed_private = await tenant.channel(bob, carol, kind="private", name="closed-private")
    invited_private = await tenant.channel(bob, kind="private", name="invited-private")
    alice_bob = await tenant.channel(alice, bob, kind="direct")
    bob_carol = await tenant.channel(bob, carol, kind="direct")
    bob_carol_group = await tenant.channel(bob, carol, kind="group", name="")
    alice_group = await tenant.channel(carol, alice, bob, kind="group", name="")
    banned_public = await tenant.channel(bob, alice, name="banned-public")
    banned_private = await tenant.channel(bob, alice, kind="private", name="banned-private")
    archived = await tenant.channel(bob, alice, name="archived")
    foreign_public = await other_tenant.channel(stranger, name="general")

    await post(bob, joined_public, "joined public")
    parent = await post(bob, joined_public, "thread parent")
    await send(client, carol, joined_public["id"], "zebra thread reply", parent_id=parent["id"])
    doomed = await post(alice, joined_public, "deleted")
    await post(bob, other_public, "other public")
    await post(bob, joined_private, "joined private")
    await post(bob, closed_private, "closed private")
    await post(bob, invited_private, "invited private")
    await post(alice, alice_bob, "direct mine")
    await post(bob, bob_carol, "direct theirs")
    await post(carol, bob_carol_group, "group theirs")
    await post(carol, alice_group, "group mine")
    await post(bob, banned_public, "banned public")
    await post(bob, banned_private, "banned private")
    await post(bob, archived, "archived")
    await post(stranger, foreign_public, "other tenant")

    response = await client.post(
        f"/api/chat/channels/{invited_private['id']}/invites",
        json={"user_ids": [str(alice.id)]},
        headers=bob.headers,
    )
    assert response.status_code == 200, response.text
    response = await client.delete(f"/api/chat/messages/{doomed['id']}", headers=alice.headers)
    assert response.status_code == 200, response.text
    for channel in (banned_public, banned_private):
        response = await client.post(
            f"/api/chat/channels/{channel['id']}/restrictions",
            json={"user_id": str(alice.id), "kind": "ban"},
            headers=bob.headers,
        )
        assert response.status_code == 201, response.text
    response = await client.put(f"/api/chat/channels/{archived['id']}/archive", headers=bob.headers)
    assert response.status_code == 200, response.text

    readable = {
        "zebra joined public",
        "zebra thread parent",
        "zebra thread reply",
        "zebra other public",
        "zebra joined private",
        "zebra direct mine",
        "zebra group mine",
        "zebra archived",
    }
    assert await found(client, alice, "zebra") == readable
    assert await found(client, alice, "zeb") == readable
    assert await found(client, stranger, "zebra") == {"zebra other tenant"}
    assert await found(client, bob, "zebra") == readable | {
        "zebra closed private",
        "zebra invited private",
        "zebra direct theirs",
        "zebra group theirs",
        "zebra banned public",
        "zebra banned private",
    }

    # Asking for one channel goes through the same check as reading it.
    for channel, status in (
        (closed_private, 404),
        (invited_private, 404),
        (bob_carol, 404),
        (foreign_public, 404),
        (banned_public, 403),
        (banned_private, 404),
    ):
        response = await client.get(
            "/api/chat/search", params={"q": "zebra", "channel_id": channel["id"]}, headers=alice.headers
        )
        assert response.status_code == status, (channel["name"], response.text)
        assert "zebra" not in response.text
    assert await found(client, alice, "zebra", channel_id=other_public["id"]) == {"zebra other public"}
    assert await found(client, alice, "zebra", author_id=str(carol.id)) == {
        "zebra thread reply",
        "zebra group mine",
    }


async def test_a_tenant_wide_ban_finds_nothing(client: httpx.AsyncClient, tenant: ChatTenantFixture) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    channel = await tenant.channel(bob, alice)
    await send(client, bob, channel["id"], "secret plans")
    assert await found(client, alice, "plans") == {"secret plans"}

    response = await client.post(
        "/api/chat/server/restrictions", json={"user_id": "alice", "kind": "ban"}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    response = await client.get("/api/chat/search", params={"q": "plans"}, headers=alice.headers)
    assert response.status_code in (200, 403), response.text
    assert "secret" not in response.text


async def test_search_needs_a_chat_user(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/chat/search", params={"q": "anything"})
    assert response.status_code == 401


# ---------------------------------------------------------------- bad input


ODD_QUERIES = [
    '"',
    '"unbalanced',
    "zebra*",
    "*",
    "NEAR(zebra stripes)",
    "zebra OR lion",
    "zebra AND NOT lion",
    "text:zebra",
    "chat_messages_fts:zebra",
    "^zebra",
    "(zebra",
    "zebra)",
    "-zebra",
    "+zebra",
    "zebra:*",
    "zebra & lion | !tiger",
    "'zebra'",
    "zebra\\",
    "%",
    "_",
    "100%",
    "a_b",
    "zebra; DROP TABLE chat_messages; --",
    "\x00zebra",
    "zeb\x00ra",
    "\u200b",
    "😀 zebra",
    "ﬁ zébra",
    "zebra " * 40,
]


async def test_special_characters_never_break_the_search(
    client: httpx.AsyncClient, tenant: ChatTenantFixture
) -> None:
    alice = await tenant.user("alice")
    channel = await tenant.channel(alice)
    await send(client, alice, channel["id"], "zebra stripes")
    for query in ODD_QUERIES:
        response = await client.get("/api/chat/search", params={"q": query}, headers=alice.headers)
        if "\x00" in query:
            # The core refuses NUL everywhere (PostgreSQL cannot store it); see test_nul_characters.py.
            assert (response.status_code, response.json()["code"]) == (422, "validation_failed"), query
            continue
        assert response.status_code in (200, 400), (query, response.text)
        if response.status_code == 400:
            assert response.json()["code"] == "empty_query", query


async def test_quoted_and_operator_words_are_searched_literally(
    client: httpx.AsyncClient, tenant: ChatTenantFixture
) -> None:
    alice = await tenant.user("alice")
    channel = await tenant.channel(alice)
    await send(client, alice, channel["id"], "zebra stripes")
    await send(client, alice, channel["id"], "lion mane")
    assert await found(client, alice, '"zebra"') == {"zebra stripes"}
    assert await found(client, alice, "zebra OR lion") == set()
    assert await found(client, alice, "NEAR lion") == set()


@pytest.mark.parametrize("query", [None, "", "   ", "!?!"])
async def test_a_blank_query_is_refused(
    client: httpx.AsyncClient, tenant: ChatTenantFixture, query: str | None
) -> None:
    alice = await tenant.user("alice")
    params = {} if query is None else {"q": query}
    response = await client.get("/api/chat/search", params=params, headers=alice.headers)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "empty_query"


# ---------------------------------------------------------------- paging


async def test_pages_newest_first(client: httpx.AsyncClient, tenant: ChatTenantFixture) -> None:
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    one = await tenant.channel(alice, bob, name="one")
    two = await tenant.channel(bob, alice, name="two")
    sent = []
    for n in range(23):
        author, channel = (alice, one) if n % 2 else (bob, two)
        sent.append((await send(client, author, channel["id"], f"page item {n}"))["id"])
        await send(client, author, channel["id"], f"noise {n}")

    async def pages(limit: int, **params: Any) -> tuple[list[int], list[str]]:
        sizes, ids, before = [], [], None
        while True:
            cursor = {"before": before} if before else {}
            page = await search(client, alice, "item", limit=limit, **cursor, **params)
            sizes.append(len(page["results"]))
            ids += [hit["message"]["id"] for hit in page["results"]]
            if not page["has_more"]:
                assert page["next_before"] is None
                return sizes, ids
            before = page["next_before"]

    assert await pages(10) == ([10, 10, 3], sent[::-1])
    assert await pages(5, author_id=str(alice.id)) == ([5, 5, 1], sent[1::2][::-1])
    assert await pages(23) == ([23], sent[::-1])

    for cursor in ("not a cursor", "%%%", "9" * 40, base64.urlsafe_b64encode(b"9" * 40).decode(), "_w"):
        response = await client.get(
            "/api/chat/search", params={"q": "item", "before": cursor}, headers=alice.headers
        )
        assert response.status_code == 400, (cursor, response.text)
        assert response.json()["code"] == "bad_cursor"


@pytest.mark.parametrize(
    ("index_rows_max", "scan_rows_max"),
    [(0, 10_000), (0, 3)],
    ids=["scan-newest-first", "scan-then-index"],
)
async def test_every_postgresql_plan_finds_the_same(
    monkeypatch: pytest.MonkeyPatch,
    client: httpx.AsyncClient,
    platform: Platform,
    tenant: ChatTenantFixture,
    index_rows_max: int,
    scan_rows_max: int,
) -> None:
    """PostgreSQL picks a plan by the estimated number of matches; force the others."""
    if platform.database.dialect != "postgresql":
        pytest.skip("only PostgreSQL chooses between plans")
    monkeypatch.setattr(search_module, "INDEX_ROWS_MAX", index_rows_max)
    monkeypatch.setattr(search_module, "SCAN_ROWS_MAX", scan_rows_max)
    alice, bob = await tenant.user("alice"), await tenant.user("bob")
    shared = await tenant.channel(bob, alice, kind="private", name="shared")
    closed = await tenant.channel(bob, kind="private", name="closed")
    expected = []
    for n in range(7):
        expected.append((await send(client, bob, shared["id"], f"kiwi {n}"))["id"])
        await send(client, bob, shared["id"], f"noise {n}")
        await send(client, bob, closed["id"], f"kiwi closed {n}")

    ids: list[str] = []
    before = None
    while True:
        page = await search(client, alice, "kiwi", limit=3, **({"before": before} if before else {}))
        ids += [hit["message"]["id"] for hit in page["results"]]
        if not page["has_more"]:
            break
        before = page["next_before"]
    assert ids == expected[::-1]
    assert await found(client, alice, "kiw") == {f"kiwi {n}" for n in range(7)}
    assert await found(client, alice, "kiwi", channel_id=shared["id"]) == {f"kiwi {n}" for n in range(7)}
