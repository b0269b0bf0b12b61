"""The AI advisor over HTTP, with the official SDKs driven against fake Anthropic and OpenAI APIs on
loopback (tests/fakes/market/): tool calls grounded on stored books, the failover order Anthropic ->
OpenAI -> offline for every kind of failure, the Server-Sent Events stream with its reset, the one-hour
cache, the daily token budget, own keys encrypted at rest and never echoed, and the deny side."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from pentad.apps.market import advisor_endpoints
from pentad.apps.market.advisor import grounding
from pentad.apps.market.ingest import store
from pentad.apps.market.ingest.stats import Order, book_stats
from pentad.apps.market.models import MarketAiKey, MarketAiMessage, MarketAiUsage
from pentad.core.config import Settings
from pentad.core.crypto import column_context
from pentad.core.db.engine import Database
from pentad.core.platform import Platform
from tests.conftest import make_settings
from tests.factories import bearer, create_user, issue_api_key
from tests.fakes.market import anthropic_api, openai_api
from tests.fakes.market.llm_common import Text, ToolCall

# The advisor's providers, failover and budgets do not depend on the database engine: they run on one.
pytestmark = pytest.mark.one_engine

JITA_STATION, JITA_SYSTEM, JITA_REGION = 60003760, 30000142, 10000002
TRITANIUM = 34
CAPTURED = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)
PLATFORM_ANTHROPIC = "sk-ant-platform-0000000000000000000000"
PLATFORM_OPENAI = "sk-openai-platform-00000000000000000000"
OWN_KEY = "sk-ant-own-key-of-the-user-1234567890abcd"


@pytest.fixture(scope="session")
async def fake_anthropic() -> AsyncIterator[tuple[anthropic_api.FakeAnthropic, str]]:
    fake = anthropic_api.FakeAnthropic()
    async for url in anthropic_api.serving(fake):
        yield fake, url


@pytest.fixture(scope="session")
async def fake_openai() -> AsyncIterator[tuple[openai_api.FakeOpenAI, str]]:
    fake = openai_api.FakeOpenAI()
    async for url in openai_api.serving(fake):
        yield fake, url


@pytest.fixture
def claude(fake_anthropic: tuple[anthropic_api.FakeAnthropic, str]) -> anthropic_api.FakeAnthropic:
    fake_anthropic[0].script.reset()
    return fake_anthropic[0]


@pytest.fixture
def gpt(fake_openai: tuple[openai_api.FakeOpenAI, str]) -> openai_api.FakeOpenAI:
    fake_openai[0].script.reset()
    return fake_openai[0]


@pytest.fixture
def market_overrides() -> dict[str, Any]:
    """Market settings a test changes (parametrize it)."""
    return {}


@pytest.fixture
def settings(
    tmp_path: Path,
    database_url: str,
    fake_anthropic: tuple[anthropic_api.FakeAnthropic, str],
    fake_openai: tuple[openai_api.FakeOpenAI, str],
    market_overrides: dict[str, Any],
) -> Settings:
    market = {
        "anthropic_api_key": PLATFORM_ANTHROPIC, "anthropic_model": "claude-test",
        "anthropic_base_url": fake_anthropic[1], "openai_api_key": PLATFORM_OPENAI,
        "openai_model": "gpt-test",
        "openai_base_url": f"{fake_openai[1]}/v1", "ai_first_token_timeout": 3, "ai_total_timeout": 30,
        "ai_breaker_failures": 100,
    } | market_overrides  # fmt: skip
    return make_settings(tmp_path, database_url, apps=["market"], ratelimit={"enabled": False}, market=market)


@pytest.fixture
def database(static_db: Database) -> Database:
    return static_db


async def _asker(platform: Platform, scopes: tuple[str, ...] = ("*",)) -> dict[str, str]:
    return bearer(await issue_api_key(platform, await create_user(platform), scopes))


async def _store_jita(database: Database, captured: datetime = CAPTURED) -> None:
    old = captured - timedelta(days=2)
    orders = [
        Order(1, TRITANIUM, JITA_STATION, JITA_SYSTEM, False, 4.00, 1000, 1000, 1, "region", old, 90, 1),
        Order(2, TRITANIUM, JITA_STATION, JITA_SYSTEM, True, 3.00, 500, 700, 1, "station", old, 90, 1),
    ]
    async with database.transaction() as session:
        await store.store_snapshot(
            session, region_id=JITA_REGION, captured_at=captured, last_modified=None, expires_at=None,
            pages=1,
            etags={}, orders=orders, stats=book_stats(orders, captured),
        )  # fmt: skip


def _last_tool_result(body: dict[str, Any]) -> dict[str, Any]:
    """The last tool result in a request (Anthropic's tool_result block or OpenAI's tool message)."""
    for message in reversed(body["messages"]):
        content = message.get("content")
        if message.get("role") == "tool":
            return dict(json.loads(content))
        if isinstance(content, list):
            for block in content:
                if block.get("type") == "tool_result":
                    return dict(json.loads(block["content"]))
    raise AssertionError("no tool result in the request")


def _quote_best_trade(body: dict[str, Any]) -> str:
    trade = _last_tool_result(body)["trades"][0]
    return f"Trade {trade['type']}: about {trade['daily_profit_isk']} ISK a day."


def _grounded_script() -> list[Any]:
    return [ToolCall("station_margins", {"hub": "jita", "accounting": 5}), Text(_quote_best_trade)]


async def _ask(
    client: httpx.AsyncClient, headers: dict[str, str], question: str, **extra: Any
) -> httpx.Response:
    return await client.post("/api/market/advisor/ask", json={"question": question, **extra}, headers=headers)


async def test_claude_answers_through_a_tool_call_grounded_on_the_book(
    platform: Platform, client: httpx.AsyncClient, database: Database, claude: Any, gpt: Any
) -> None:
    await _store_jita(database)
    headers = await _asker(platform)
    claude.script.turns.extend(_grounded_script())
    answer = await _ask(client, headers, "What should I station trade in Jita?")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["provider"], body["grounded"], body["cached"], body["attempts"]) == (
        "anthropic",
        True,
        False,
        [],
    )
    assert body["tool_calls"] == [{"name": "station_margins", "input": {"hub": "jita", "accounting": 5}}]
    # The scan's own figure for Tritanium, quoted by the model from the tool result.
    scan = await client.get(
        "/api/market/hubs/jita/station-trading", params={"accounting": 5}, headers=headers
    )
    expected = scan.json()["trades"][0]["daily_profit"]
    assert body["text"] == f"Trade Tritanium: about {expected} ISK a day."
    # Two requests through the SDK: the question with the tools offered, then the tool result.
    first, second = claude.script.requests
    assert first["stream"] is True
    offered = {tool["name"] for tool in first["tools"]}
    assert offered >= {
        "station_margins",
        "hauling_routes",
        "execution_price",
        "price_history",
        "my_orders",
        "pnl",
    }
    assert "tool_result" in json.dumps(second["messages"][-1])
    assert claude.script.api_keys == [PLATFORM_ANTHROPIC] * 2
    assert gpt.script.requests == []
    async with database.transaction(writes=False) as session:
        usage = (await session.scalars(select(MarketAiUsage))).one()
        stored = (
            await session.scalars(select(MarketAiMessage).where(MarketAiMessage.role == "assistant"))
        ).one()
    assert (usage.provider, usage.own_key, usage.tokens_in + usage.tokens_out) == (
        "anthropic", False, body["tokens_in"] + body["tokens_out"])  # fmt: skip
    assert usage.tokens_in > 0
    assert (stored.provider, stored.grounded, stored.text) == ("anthropic", True, body["text"])
    conversation = await client.get(
        f"/api/market/advisor/conversations/{body['conversation_id']}", headers=headers
    )
    assert [m["role"] for m in conversation.json()["messages"]] == ["user", "assistant"]


async def test_an_invented_price_is_flagged_and_not_cached(
    platform: Platform, client: httpx.AsyncClient, database: Database, claude: Any, gpt: Any
) -> None:
    await _store_jita(database)
    headers = await _asker(platform)
    claude.script.turns.extend(
        [ToolCall("station_margins", {"hub": "jita"}), Text("Buy PLEX at 4,123,456.78 ISK.")]
    )
    body = (await _ask(client, headers, "Anything good?")).json()
    assert (body["provider"], body["grounded"]) == ("anthropic", False)
    claude.script.turns.extend(_grounded_script())
    again = (await _ask(client, headers, "Anything good?")).json()
    assert (again["cached"], again["grounded"]) == (False, True)


@pytest.mark.parametrize("fault", ["overloaded", "429", "500", "midstream", "hang", "garbage", "truncated"])
async def test_claude_failing_in_any_way_hands_over_to_openai(
    platform: Platform, client: httpx.AsyncClient, database: Database, claude: Any, gpt: Any, fault: str
) -> None:
    await _store_jita(database)
    headers = await _asker(platform)
    claude.script.faults.append(fault)
    claude.script.turns.extend([Text("Half an answer that never ends")] if fault != "garbage" else [])
    gpt.script.turns.extend(_grounded_script())
    answer = await _ask(client, headers, "What should I trade?")
    body = answer.json()
    assert answer.status_code == 200
    assert (body["provider"], body["grounded"]) == ("openai", True)
    (attempt,) = body["attempts"]
    assert attempt["provider"] == "anthropic"
    expected = {"overloaded": "overloaded (529)", "429": "rate limited (429)", "500": "HTTP 500",
                "hang": "timeout", "truncated": "stream ended early"}  # fmt: skip
    if fault in expected:
        assert attempt["reason"] == expected[fault]
    else:  # an error event inside the 200 stream; bytes that are not events
        assert attempt["reason"] in ("overloaded (in stream)", "error event in stream", "unreadable stream")
    assert "Half an answer" not in body["text"]
    assert len(gpt.script.requests) == 2
    assert gpt.script.requests[0]["stream_options"] == {"include_usage": True}
    assert gpt.script.api_keys == [PLATFORM_OPENAI] * 2
    async with database.transaction(writes=False) as session:
        stored = (
            await session.scalars(select(MarketAiMessage).where(MarketAiMessage.role == "assistant"))
        ).one()
    assert stored.error == f"anthropic: {attempt['reason']}"


async def test_when_both_fail_the_offline_answer_quotes_the_data(
    platform: Platform, client: httpx.AsyncClient, database: Database, claude: Any, gpt: Any
) -> None:
    await _store_jita(database)
    headers = await _asker(platform)
    claude.script.faults.append("overloaded")
    gpt.script.faults.append("garbage")
    body = (await _ask(client, headers, "What can I trade at Jita?")).json()
    assert body["provider"] == "offline"
    assert [a["provider"] for a in body["attempts"]] == ["anthropic", "openai"]
    assert body["grounded"] is True
    assert "Tritanium" in body["text"]
    assert "Offline answer" in body["text"]
    assert body["tool_calls"][0]["name"] == "station_margins"
    assert (body["tokens_in"], body["tokens_out"]) == (0, 0)


async def test_the_stream_shows_deltas_a_reset_on_failover_and_the_stored_answer(
    platform: Platform, client: httpx.AsyncClient, database: Database, claude: Any, gpt: Any
) -> None:
    await _store_jita(database)
    headers = await _asker(platform)
    claude.script.faults.append("midstream")
    claude.script.turns.append(Text("Jita is great because"))
    gpt.script.turns.append(Text("Ask me about a hub."))
    async with client.stream(
        "POST", "/api/market/advisor/ask/stream", json={"question": "Hello?"}, headers=headers
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = (await response.aread()).decode()
    events = []
    for block in raw.strip().split("\n\n"):
        head, data = block.split("\n")
        events.append((head.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "delta"  # Claude's first words arrive before its stream breaks
    reset = kinds.index("reset")
    assert events[reset][1] == {
        "provider": "anthropic",
        "reason": events[reset][1]["reason"],
        "next": "openai",
    }
    assert "".join(data["text"] for kind, data in events[reset:] if kind == "delta") == "Ask me about a hub."
    assert kinds[-1] == "done"
    assert events[-1][1]["provider"] == "openai"
    assert events[-1][1]["text"] == "Ask me about a hub."


async def test_an_asker_who_leaves_mid_answer_finds_the_answer_stored(
    app: Any, platform: Platform, database: Database, claude: Any, gpt: Any
) -> None:
    """The connection drops after Claude's first words (then Claude fails over to OpenAI): the answer is
    not cancelled with the request; it finishes and is stored in the conversation."""
    await _store_jita(database)
    headers = await _asker(platform)
    claude.script.faults.append("midstream")
    claude.script.turns.append(Text("Jita is great because"))
    gpt.script.turns.append(Text("Ask me about a hub."))
    first_words = asyncio.Event()
    asked = False

    async def receive() -> dict[str, Any]:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": json.dumps({"question": "Hello?"}).encode()}
        await first_words.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            first_words.set()

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/api/market/advisor/ask/stream", "raw_path": b"/api/market/advisor/ask/stream",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
        "headers": [(b"host", b"testserver"), (b"content-type", b"application/json"),
                    (b"authorization", headers["Authorization"].encode())],
    }  # fmt: skip
    await app(scope, receive, send)
    assert first_words.is_set()
    leftover = set(advisor_endpoints.DETACHED)
    assert leftover  # the request is over, its answer is not
    await asyncio.gather(*leftover)
    async with database.transaction(writes=False) as session:
        stored = (
            await session.scalars(select(MarketAiMessage).where(MarketAiMessage.role == "assistant"))
        ).one()
    assert (stored.text, stored.provider, stored.status) == ("Ask me about a hub.", "openai", "done")


async def test_the_same_question_on_the_same_books_is_answered_from_the_cache(
    platform: Platform, client: httpx.AsyncClient, database: Database, claude: Any, gpt: Any
) -> None:
    await _store_jita(database)
    headers = await _asker(platform)
    claude.script.turns.extend(_grounded_script())
    first = (await _ask(client, headers, "What should I trade in Jita?")).json()
    again = (await _ask(client, headers, "  what should I trade in JITA? ")).json()
    assert (again["cached"], again["provider"], again["text"]) == (True, "anthropic", first["text"])
    assert (again["tokens_in"], again["tokens_out"]) == (0, 0)
    assert len(claude.script.requests) == 2  # nothing asked again
    # A new book is new data: asked again.
    await _store_jita(database, CAPTURED + timedelta(minutes=1))
    claude.script.turns.extend(_grounded_script())
    fresh = (await _ask(client, headers, "What should I trade in Jita?")).json()
    assert fresh["cached"] is False
    assert len(claude.script.requests) == 4


@pytest.mark.parametrize("market_overrides", [{"ai_daily_tokens": 1}])
async def test_the_daily_budget_stops_the_models_with_a_clear_problem(
    platform: Platform, client: httpx.AsyncClient, database: Database, claude: Any, gpt: Any
) -> None:
    await _store_jita(database)
    headers = await _asker(platform)
    claude.script.turns.append(Text("Hello."))
    assert (await _ask(client, headers, "Hi")).json()["provider"] == "anthropic"
    usage = (await client.get("/api/market/advisor/usage", headers=headers)).json()
    assert usage["platform_tokens"] >= 1
    assert usage["platform_budget"] == 1
    refused = await _ask(client, headers, "Hi again")
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["code"] == "ai_budget_exhausted"
    assert len(claude.script.requests) == 1
    # The user's own key has its own budget: the advisor answers again, on their key.
    put = await client.put("/api/market/advisor/keys/anthropic", json={"key": OWN_KEY}, headers=headers)
    assert put.status_code == 200
    claude.script.turns.append(Text("On your key."))
    body = (await _ask(client, headers, "Hi again")).json()
    assert (body["provider"], body["own_key"]) == ("anthropic", True)
    assert claude.script.api_keys[-1] == OWN_KEY


async def test_own_keys_are_encrypted_never_echoed_and_used_first(
    platform: Platform, client: httpx.AsyncClient, database: Database, claude: Any, gpt: Any
) -> None:
    headers = await _asker(platform)
    put = await client.put("/api/market/advisor/keys/anthropic", json={"key": OWN_KEY}, headers=headers)
    assert put.status_code == 200
    listed = await client.get("/api/market/advisor/keys", headers=headers)
    assert [(k["provider"], k["last4"]) for k in listed.json()] == [("anthropic", "abcd")]
    for response in (put, listed):
        assert OWN_KEY not in response.text
    async with database.transaction(writes=False) as session:
        row = (await session.scalars(select(MarketAiKey))).one()
    assert OWN_KEY not in row.key
    assert (
        platform.keyring.decrypt(row.key, context=column_context("market_ai_keys", "key", row.id)) == OWN_KEY
    )
    claude.script.turns.append(Text("Answered on your key."))
    body = (await _ask(client, headers, "Hello")).json()
    assert (body["provider"], body["own_key"]) == ("anthropic", True)
    assert claude.script.api_keys == [OWN_KEY]
    assert OWN_KEY not in json.dumps(body)
    # A refused own key fails over to the platform's key, without showing the key anywhere.
    claude.script.valid_keys = {PLATFORM_ANTHROPIC}
    claude.script.turns.append(Text("Answered on the platform key."))
    body = (await _ask(client, headers, "Hello there")).json()
    assert (body["provider"], body["own_key"]) == ("anthropic", False)
    assert body["attempts"] == [{"provider": "anthropic", "reason": "key refused (401)"}]
    assert OWN_KEY not in json.dumps(body)
    bad = await client.put("/api/market/advisor/keys/openai", json={"key": "short"}, headers=headers)
    assert (bad.status_code, bad.json()["code"]) == (400, "ai_key_invalid")
    assert (await client.delete("/api/market/advisor/keys/anthropic", headers=headers)).status_code == 204
    gone = await client.delete("/api/market/advisor/keys/anthropic", headers=headers)
    assert (gone.status_code, gone.json()["code"]) == (404, "ai_key_not_found")


@pytest.mark.parametrize("market_overrides", [{"anthropic_api_key": None, "openai_api_key": None}])
async def test_without_providers_the_advisor_still_answers_offline(
    platform: Platform, client: httpx.AsyncClient, database: Database, claude: Any, gpt: Any
) -> None:
    await _store_jita(database)
    headers = await _asker(platform)
    body = (await _ask(client, headers, "How much does it cost to buy 100 'Tritanium' at jita?")).json()
    assert body["provider"] == "offline"
    assert body["attempts"] == []
    # 100 units from the one sell order at 4.00.
    assert "Buying 100 Tritanium at jita: 400.00 ISK in total, 4.00 ISK on average" in body["text"]
    assert body["grounded"] is True
    assert claude.script.requests == []


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api/market/advisor/ask"), ("POST", "/api/market/advisor/ask/stream"),
     ("GET", "/api/market/advisor/conversations"), ("GET", "/api/market/advisor/keys"),
     ("PUT", "/api/market/advisor/keys/anthropic"), ("DELETE", "/api/market/advisor/keys/openai"),
     ("GET", "/api/market/advisor/usage"), ("GET", f"/api/market/advisor/conversations/{uuid.uuid4()}")],
)  # fmt: skip
async def test_the_advisor_needs_its_permission(
    platform: Platform, client: httpx.AsyncClient, method: str, path: str
) -> None:
    body = {"question": "hi"} if "ask" in path else {"key": OWN_KEY} if method == "PUT" else None
    assert (await client.request(method, path, json=body)).status_code == 401
    no_advisor = await _asker(platform, scopes=("market.use",))
    denied = await client.request(method, path, json=body, headers=no_advisor)
    assert denied.status_code == 403
    assert denied.headers["content-type"].startswith("application/problem+json")


async def test_another_users_conversation_is_not_found(
    platform: Platform, client: httpx.AsyncClient, database: Database, claude: Any, gpt: Any
) -> None:
    owner = await _asker(platform)
    claude.script.turns.append(Text("Hi."))
    conversation = (await _ask(client, owner, "Hi")).json()["conversation_id"]
    other = await _asker(platform)
    for answer in (
        await client.get(f"/api/market/advisor/conversations/{conversation}", headers=other),
        await _ask(client, other, "Continue", conversation_id=conversation),
    ):
        assert (answer.status_code, answer.json()["code"]) == (404, "conversation_not_found")
    assert len(claude.script.requests) == 1
    for bad in ({"question": ""}, {"question": "x" * 2001}, {"question": "hi", "surprise": 1}):
        refused = await client.post("/api/market/advisor/ask", json=bad, headers=owner)
        assert refused.status_code == 422


@pytest.mark.one_engine
def test_grounding_finds_figures_missing_from_the_tool_results() -> None:
    results = [{"trades": [{"daily_profit_isk": "415.62", "units": 500}], "total": 1234567.0}]
    assert grounding.figures("15 jumps, 415.62 ISK, 1,234,567 ISK, 1.23m, level 5") == [
        Decimal("415.62"), Decimal("1234567"), Decimal("1230000.00")]  # fmt: skip
    assert grounding.ungrounded("Profit 415.6 ISK over 15 jumps, 1.23m in all, 500 units", results) == []
    assert grounding.ungrounded("Profit 415.62 ISK, then 999.99 ISK", results) == [Decimal("999.99")]
