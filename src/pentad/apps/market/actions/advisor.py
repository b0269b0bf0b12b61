"""The AI advisor for one user: questions answered from the user's market data through tool calls.

`check_ask` (in the request's transaction) checks the conversation is the caller's and that some way to
answer is within budget; `run_answer` answers: the cache first (same user, same normalised question, same
order books: AI_CACHE_TTL), else the providers in order — the user's own Anthropic key, the platform's
Anthropic key, the user's own OpenAI key, the platform's — each skipped without a key and model, over its
day's token budget, or (platform keys) while its breaker is open after AI_BREAKER_FAILURES failures in a
row; a provider that fails mid-answer hands over to the next (the asker gets a `reset` event and the text
so far is dropped); when none answers, the offline answer from the same tools. `do_store_answer` then
writes the question, the answer (provider, tool calls, tokens, grounded, why others failed) and the day's
usage in the caller's transaction.

Own keys are stored encrypted (core crypto, bound to their row), listed as provider and last four
characters, decrypted only to hand to the SDK."""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.market.actions.context import MarketContext
from pentad.apps.market.advisor import grounding, offline
from pentad.apps.market.advisor.providers import (
    AnthropicProvider,
    Emit,
    OpenAIProvider,
    Provider,
    ProviderFailed,
    Timeouts,
)
from pentad.apps.market.advisor.tools import ToolBox
from pentad.apps.market.exceptions import AiBudgetExhausted, AiKeyInvalid, AiKeyNotFound, ConversationNotFound
from pentad.apps.market.models import (
    MarketAiConversation,
    MarketAiKey,
    MarketAiMessage,
    MarketAiUsage,
    MarketRegionState,
)
from pentad.apps.market.schemas import AdvisorAnswerRead, AdvisorAttempt, AdvisorToolCall
from pentad.apps.market.settings import MarketSettings
from pentad.core.audit import Actor
from pentad.core.auth.principal import Principal
from pentad.core.context import AppContext
from pentad.core.crypto import column_context

SYSTEM = (
    "You are a trading advisor for EVE Online's market. Answer from the user's data only: call the tools "
    "for every price, margin, volume, profit or route, and quote ISK figures exactly as the tools give "
    "them. Never state a price, margin or profit no tool gave you; if the data is missing or stale, say "
    "so. Mention how old the order book is when it matters. Be brief and concrete."
)
HISTORY_MESSAGES = 6
_KEY_SHAPE = re.compile(r"^[A-Za-z0-9_\-.:]{20,300}$")


def _key_context(key_id: uuid.UUID) -> str:
    return column_context("market_ai_keys", "key", key_id)


def _today() -> date:
    return datetime.now(UTC).date()


def _resets_at() -> str:
    return datetime.combine(_today() + timedelta(days=1), datetime.min.time()).strftime("%Y-%m-%d %H:%M")


# --- own keys ----------------------------------------------------------------------------------------------


async def list_keys(market: MarketContext) -> list[MarketAiKey]:
    rows = await market.session.scalars(
        select(MarketAiKey).where(MarketAiKey.user_id == user_of(market)).order_by(MarketAiKey.provider)
    )
    return list(rows)


def check_key(key: str) -> None:
    if not _KEY_SHAPE.match(key):
        raise AiKeyInvalid()


async def do_put_key(market: MarketContext, provider: str, key: str) -> MarketAiKey:
    """Store (or replace) the caller's own key for `provider`, encrypted; it is never answered again."""
    check_key(key)
    user_id = user_of(market)
    row = await market.session.scalar(
        select(MarketAiKey).where(MarketAiKey.user_id == user_id, MarketAiKey.provider == provider)
    )
    if row is None:
        row = MarketAiKey(id=uuid.uuid4(), user_id=user_id, provider=provider, key="", last4="")
        market.session.add(row)
    row.key = market.platform.keyring.encrypt(key, context=_key_context(row.id))
    row.last4 = key[-4:]
    row.verified_at = None
    await market.session.flush()
    return row


async def do_delete_key(market: MarketContext, provider: str) -> None:
    row = await market.session.scalar(
        select(MarketAiKey).where(MarketAiKey.user_id == user_of(market), MarketAiKey.provider == provider)
    )
    if row is None:
        raise AiKeyNotFound()
    await market.session.delete(row)
    await market.session.flush()


async def _own_keys(session: AsyncSession, platform: AppContext, user_id: uuid.UUID) -> dict[str, str]:
    rows = await session.scalars(select(MarketAiKey).where(MarketAiKey.user_id == user_id))
    return {row.provider: platform.keyring.decrypt(row.key, context=_key_context(row.id)) for row in rows}


# --- conversations -----------------------------------------------------------------------------------------


def user_of(market: MarketContext) -> uuid.UUID:
    assert market.user_id is not None, "the advisor routes require a user"
    return market.user_id


async def get_conversation(market: MarketContext, conversation_id: uuid.UUID) -> MarketAiConversation:
    row = await market.session.get(MarketAiConversation, conversation_id)
    if row is None or row.user_id != user_of(market):
        raise ConversationNotFound()
    return row


async def list_conversations(market: MarketContext) -> list[MarketAiConversation]:
    rows = await market.session.scalars(
        select(MarketAiConversation)
        .where(MarketAiConversation.user_id == user_of(market))
        .order_by(MarketAiConversation.updated_at.desc())
        .limit(100)
    )
    return list(rows)


async def list_messages(market: MarketContext, conversation_id: uuid.UUID) -> list[MarketAiMessage]:
    await get_conversation(market, conversation_id)
    rows = await market.session.scalars(
        select(MarketAiMessage)
        .where(MarketAiMessage.conversation_id == conversation_id)
        .order_by(MarketAiMessage.created_at, MarketAiMessage.id)
    )
    return list(rows)


# --- budget ------------------------------------------------------------------------------------------------


async def tokens_today(session: AsyncSession, user_id: uuid.UUID) -> dict[bool, int]:
    """Tokens the user spent today, by own_key."""
    rows = await session.execute(
        select(MarketAiUsage.own_key, func.sum(MarketAiUsage.tokens_in + MarketAiUsage.tokens_out))
        .where(MarketAiUsage.user_id == user_id, MarketAiUsage.day == _today())
        .group_by(MarketAiUsage.own_key)
    )
    spent = {False: 0, True: 0}
    for own_key, total in rows:
        spent[bool(own_key)] = int(total or 0)
    return spent


# --- asking ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What an answer may use, decided in the request's transaction."""

    user_id: uuid.UUID
    conversation_id: uuid.UUID | None
    history: list[tuple[str, str]]
    own_keys: dict[str, str] = field(repr=False)
    within_platform_budget: bool
    within_own_budget: bool
    fingerprint: str


def _configured(settings: MarketSettings) -> dict[str, tuple[str | None, str | None, str | None]]:
    """Per provider: (platform key, model, base URL)."""
    return {
        "anthropic": (
            settings.anthropic_api_key.get_secret_value() if settings.anthropic_api_key else None,
            settings.anthropic_model,
            settings.anthropic_base_url,
        ),
        "openai": (
            settings.openai_api_key.get_secret_value() if settings.openai_api_key else None,
            settings.openai_model,
            settings.openai_base_url,
        ),
    }


async def check_ask(market: MarketContext, conversation_id: uuid.UUID | None) -> Plan:
    """The caller's conversation (404 when not theirs), its recent messages, their own keys, today's
    spending, and the order books' version; 429 `ai_budget_exhausted` when a model could answer but every
    usable key is over its day's budget."""
    user_id = user_of(market)
    history: list[tuple[str, str]] = []
    if conversation_id is not None:
        await get_conversation(market, conversation_id)
        rows = await market.session.scalars(
            select(MarketAiMessage)
            .where(MarketAiMessage.conversation_id == conversation_id, MarketAiMessage.status == "done")
            .order_by(MarketAiMessage.created_at.desc(), MarketAiMessage.id.desc())
            .limit(HISTORY_MESSAGES)
        )
        history = [(row.role, row.text) for row in reversed(list(rows))]
        if history and history[0][0] != "user":
            history = history[1:]
    settings = market.settings
    own_keys = await _own_keys(market.session, market.platform, user_id)
    spent = await tokens_today(market.session, user_id)
    within_platform = spent[False] < settings.ai_daily_tokens
    within_own = spent[True] < settings.ai_byo_daily_tokens
    configured = _configured(settings)
    platform_usable = any(key and model for key, model, _ in configured.values())
    own_usable = any(configured[provider][1] for provider in own_keys if provider in configured)
    if (platform_usable or own_usable) and not (
        (platform_usable and within_platform) or (own_usable and within_own)
    ):
        raise AiBudgetExhausted(_resets_at())
    states = await market.session.scalars(
        select(MarketRegionState).where(
            MarketRegionState.region_id.in_([hub.region_id for hub in settings.hub_list])
        )
    )
    fingerprint = ",".join(sorted(f"{state.region_id}:{state.current_snapshot_id}" for state in states))
    return Plan(user_id, conversation_id, history, own_keys, within_platform, within_own, fingerprint)


def _providers(settings: MarketSettings, plan: Plan) -> list[Provider]:
    timeouts = Timeouts(
        settings.ai_connect_timeout, settings.ai_first_token_timeout, settings.ai_total_timeout
    )
    configured = _configured(settings)
    found: list[Provider] = []
    for name, kind in (("anthropic", AnthropicProvider), ("openai", OpenAIProvider)):
        platform_key, model, base_url = configured[name]
        if not model:
            continue
        own = plan.own_keys.get(name)
        if own and plan.within_own_budget:
            found.append(kind(own, model, base_url, timeouts, own_key=True))
        if platform_key and plan.within_platform_budget:
            found.append(kind(platform_key, model, base_url, timeouts, own_key=False))
    return found


def _breaker_key(provider: Provider) -> str:
    return f"market:ai_breaker:{provider.name}"


def normalise(question: str) -> str:
    return " ".join(re.findall(r"[\w.,']+", question.lower()))


@dataclass
class Answer:
    text: str
    provider: str
    own_key: bool
    cached: bool
    grounded: bool
    attempts: list[AdvisorAttempt]
    tool_calls: list[AdvisorToolCall]
    tokens_in: int
    tokens_out: int


async def run_answer(
    platform: AppContext, principal: Principal, actor: Actor, plan: Plan, question: str, emit: Emit
) -> Answer:
    """Answer `question` (never raises for a provider's failure: the offline answer is the floor)."""
    settings = platform.app_settings(MarketSettings)
    digest = hashlib.sha256(normalise(question).encode()).hexdigest()[:40]
    cache_key = f"market:advisor:{plan.user_id}:{digest}:{plan.fingerprint}"
    if settings.ai_cache_ttl > 0 and not plan.history:
        hit = await platform.cache.get(cache_key)
        if isinstance(hit, dict):
            await emit("delta", {"text": hit["text"]})
            return Answer(
                text=hit["text"], provider=hit["provider"], own_key=False, cached=True, grounded=True,
                attempts=[], tool_calls=[AdvisorToolCall.model_validate(c) for c in hit["tool_calls"]],
                tokens_in=0, tokens_out=0,
            )  # fmt: skip
    tools = ToolBox(platform, principal, actor)
    attempts: list[AdvisorAttempt] = []
    providers = _providers(settings, plan)
    answered = None
    used: Provider | None = None
    for index, provider in enumerate(providers):
        if not provider.own_key:
            failures = await platform.cache.get(_breaker_key(provider))
            if isinstance(failures, int) and failures >= settings.ai_breaker_failures:
                attempts.append(AdvisorAttempt(provider=provider.name, reason="skipped: failing lately"))
                continue
        tools.records.clear()
        try:
            answered = await provider.answer(
                SYSTEM, plan.history, question, tools, emit, settings.ai_max_tool_rounds
            )
        except ProviderFailed as failure:
            attempts.append(AdvisorAttempt(provider=provider.name, reason=failure.reason))
            if not provider.own_key:
                await platform.cache.incr(_breaker_key(provider), ttl=settings.ai_breaker_cooldown)
            following = next((p.name for p in providers[index + 1 :]), "offline")
            await emit("reset", {"provider": provider.name, "reason": failure.reason, "next": following})
            continue
        if not provider.own_key:
            await platform.cache.delete(_breaker_key(provider))
        used = provider
        break
    if answered is None or used is None:
        tools.records.clear()
        reason = "; ".join(f"{a.provider}: {a.reason}" for a in attempts) or "no AI provider is configured"
        body = await offline.answer(question, tools, [hub.key for hub in settings.hub_list])
        missing = grounding.ungrounded(body, [record.result for record in tools.records])
        text = f"{body}\n{offline.note(reason)}"
        await emit("delta", {"text": text})
        provider_name, own_key, tokens_in, tokens_out = "offline", False, 0, 0
    else:
        text, provider_name, own_key = answered.text, used.name, used.own_key
        tokens_in, tokens_out = answered.tokens_in, answered.tokens_out
        missing = grounding.ungrounded(text, [record.result for record in tools.records])
    calls = [AdvisorToolCall(name=r.name, input=r.input) for r in tools.records]
    answer = Answer(
        text=text, provider=provider_name, own_key=own_key, cached=False, grounded=not missing,
        attempts=attempts, tool_calls=calls, tokens_in=tokens_in, tokens_out=tokens_out,
    )  # fmt: skip
    if settings.ai_cache_ttl > 0 and not plan.history and answer.grounded and provider_name != "offline":
        cached = {"text": text, "provider": provider_name, "tool_calls": [c.model_dump() for c in calls]}
        await platform.cache.set(cache_key, cached, ttl=settings.ai_cache_ttl)
    return answer


async def do_store_answer(
    session: AsyncSession, plan: Plan, question: str, answer: Answer
) -> AdvisorAnswerRead:
    """Write the question, the answer and the usage (in the caller's transaction)."""
    conversation = None
    if plan.conversation_id is not None:
        conversation = await session.get(MarketAiConversation, plan.conversation_id)
    if conversation is None:
        conversation = MarketAiConversation(id=uuid.uuid4(), user_id=plan.user_id, title=question[:200])
        session.add(conversation)
        await session.flush()
    conversation.updated_at = datetime.now(UTC)
    now = datetime.now(UTC)
    session.add(MarketAiMessage(id=uuid.uuid4(), conversation_id=conversation.id, role="user", text=question,
                                status="done", created_at=now))  # fmt: skip
    errors = "; ".join(f"{a.provider}: {a.reason}" for a in answer.attempts)[:200] or None
    message = MarketAiMessage(
        id=uuid.uuid4(), conversation_id=conversation.id, role="assistant", text=answer.text, status="done",
        provider=answer.provider, tool_calls=[c.model_dump() for c in answer.tool_calls],
        tokens_in=answer.tokens_in, tokens_out=answer.tokens_out, grounded=answer.grounded, error=errors,
        created_at=now + timedelta(microseconds=1),
    )  # fmt: skip
    session.add(message)
    if answer.provider in ("anthropic", "openai") and (answer.tokens_in or answer.tokens_out):
        usage = await session.get(MarketAiUsage, (plan.user_id, _today(), answer.provider, answer.own_key))
        if usage is None:
            usage = MarketAiUsage(user_id=plan.user_id, day=_today(), provider=answer.provider,
                                  own_key=answer.own_key, tokens_in=0, tokens_out=0)  # fmt: skip
            session.add(usage)
        usage.tokens_in += answer.tokens_in
        usage.tokens_out += answer.tokens_out
    await session.flush()
    return AdvisorAnswerRead(
        conversation_id=conversation.id, message_id=message.id, text=answer.text,
        provider=answer.provider,
        own_key=answer.own_key, cached=answer.cached, grounded=answer.grounded, attempts=answer.attempts,
        tool_calls=answer.tool_calls, tokens_in=answer.tokens_in, tokens_out=answer.tokens_out,
    )  # fmt: skip


def usage_summary(settings: MarketSettings, spent: dict[bool, int]) -> dict[str, Any]:
    return {
        "day": _today().isoformat(), "platform_tokens": spent[False],
        "platform_budget": settings.ai_daily_tokens,
        "own_key_tokens": spent[True], "own_key_budget": settings.ai_byo_daily_tokens,
    }  # fmt: skip
