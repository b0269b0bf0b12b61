"""The AI advisor's API (/api/market/advisor): ask (one JSON answer, or its Server-Sent Events stream),
conversations, own API keys, today's usage. Every route needs `market.advisor` and a user.

Asking checks the conversation and the budget in the request's transaction (404, 429 before anything is
streamed); the answer is then produced while the response streams — the request's transaction has
committed by then, so a model taking seconds holds no database lock — and stored in a transaction of its
own. `/ask` sends the stored answer as one JSON body; `/ask/stream` sends `delta` (text as it comes),
`tool` (a tool being called), `reset` (a provider failed: drop the text so far; `next` answers) and finally
`done` (the stored answer, as `/ask` answers it). An asker who goes away mid-answer does not lose it: the
answer finishes and is stored in the conversation (DETACHED).

The answer is produced within the request on purpose: the stream shows progress from the first token, and
the time without progress is bounded (AI_FIRST_TOKEN_TIMEOUT per provider, then the next one; the offline
answer needs no network), so no request sits silent for a minute."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.market.actions import advisor
from pentad.apps.market.actions.context import MarketContext
from pentad.apps.market.permissions import MARKET_ADVISOR
from pentad.apps.market.schemas import (
    AdvisorAnswerRead,
    AdvisorMessageRead,
    AdvisorQuestion,
    AdvisorUsageRead,
    AiKeyRead,
    AiKeyWrite,
    ConversationDetail,
    ConversationRead,
)
from pentad.core.auth.dependencies import db_session, request_actor, require_user
from pentad.core.auth.principal import Principal
from pentad.core.errors import problem_responses
from pentad.core.platform import get_platform
from pentad.core.policy import RateLimitClass, route_policy

logger = structlog.get_logger("pentad.market.advisor")
ADVISOR_LIMIT = RateLimitClass("market_advisor", "30/minute")
DETACHED: set[asyncio.Task[Any]] = set()
"""Answers whose asker went away (closed the page, lost the network): they still finish and are stored in
the conversation, so the tokens spent are not lost and a reload shows the answer."""


def _detach(task: asyncio.Task[Any]) -> None:
    DETACHED.add(task)

    def done(finished: asyncio.Task[Any]) -> None:
        DETACHED.discard(finished)
        if not finished.cancelled() and finished.exception() is not None:
            logger.warning("market_advisor_detached_answer_failed", error=type(finished.exception()).__name__)

    task.add_done_callback(done)


STORE_FAILED = b'event: error\ndata: {"detail": "The answer could not be stored; try again."}\n\n'

router = APIRouter(
    prefix="/api/market/advisor", tags=["market"], responses=problem_responses(400, 401, 403, 404, 422, 429)
)

Session = Annotated[AsyncSession, Depends(db_session)]
Asker = Annotated[Principal, Depends(require_user(MARKET_ADVISOR))]
Provider = Annotated[Literal["anthropic", "openai"], Path(description="The AI provider.")]


def _context(request: Request, session: AsyncSession, principal: Principal) -> MarketContext:
    return MarketContext(session, get_platform(request), principal, request_actor(request, principal))


async def _answer(
    request: Request, principal: Principal, plan: advisor.Plan, question: str, queue: asyncio.Queue[Any]
) -> AdvisorAnswerRead:
    platform = get_platform(request)
    actor = request_actor(request, principal)

    async def emit(kind: str, data: dict[str, Any]) -> None:
        await queue.put((kind, data))

    answer = await advisor.run_answer(platform, principal, actor, plan, question, emit)
    async with platform.database.transaction() as session:
        stored = await advisor.do_store_answer(session, plan, question, answer)
    await queue.put(("done", stored.model_dump(mode="json")))
    return stored


@router.post(
    "/ask",
    summary="Ask the advisor; the answer is grounded on your market data through tool calls",
    response_model=AdvisorAnswerRead,
)
@route_policy(rate_limit=ADVISOR_LIMIT)
async def ask(request: Request, session: Session, principal: Asker, body: AdvisorQuestion) -> Response:
    plan = await advisor.check_ask(_context(request, session, principal), body.conversation_id)

    async def respond() -> AsyncIterator[bytes]:
        task = asyncio.create_task(_answer(request, principal, plan, body.question, asyncio.Queue()))
        try:
            stored = await asyncio.shield(task)
        finally:
            if not task.done():
                _detach(task)
        yield stored.model_dump_json().encode()

    return StreamingResponse(respond(), media_type="application/json")


@router.post(
    "/ask/stream",
    summary="Ask the advisor and follow the answer as Server-Sent Events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "delta, tool, reset, done events."}
    },
)
@route_policy(rate_limit=ADVISOR_LIMIT)
async def ask_stream(request: Request, session: Session, principal: Asker, body: AdvisorQuestion) -> Response:
    plan = await advisor.check_ask(_context(request, session, principal), body.conversation_id)

    async def events() -> AsyncIterator[bytes]:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        task = asyncio.create_task(_answer(request, principal, plan, body.question, queue))
        try:
            while True:
                getter = asyncio.create_task(queue.get())
                await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    if task.exception() is not None:
                        yield STORE_FAILED
                        return
                    continue
                kind, data = getter.result()
                yield f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()
                if kind == "done":
                    return
        finally:
            if not task.done():
                _detach(task)

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@router.get("/conversations", summary="Your advisor conversations, latest first")
async def list_conversations(request: Request, session: Session, principal: Asker) -> list[ConversationRead]:
    rows = await advisor.list_conversations(_context(request, session, principal))
    return [ConversationRead(id=row.id, title=row.title, updated_at=row.updated_at) for row in rows]


@router.get("/conversations/{conversation_id}", summary="One of your conversations with its messages")
async def get_conversation(
    request: Request, session: Session, principal: Asker, conversation_id: uuid.UUID
) -> ConversationDetail:
    market = _context(request, session, principal)
    row = await advisor.get_conversation(market, conversation_id)
    messages = await advisor.list_messages(market, conversation_id)
    return ConversationDetail(
        id=row.id, title=row.title, updated_at=row.updated_at,
        messages=[AdvisorMessageRead(id=m.id, role=m.role, text=m.text, status=m.status,
                                     provider=m.provider, grounded=m.grounded, error=m.error,
                                     created_at=m.created_at) for m in messages],
    )  # fmt: skip


@router.get("/keys", summary="Your own AI provider keys (provider and last four characters only)")
async def list_keys(request: Request, session: Session, principal: Asker) -> list[AiKeyRead]:
    rows = await advisor.list_keys(_context(request, session, principal))
    return [AiKeyRead(provider=r.provider, last4=r.last4, created_at=r.created_at) for r in rows]


@router.put("/keys/{provider}", summary="Store your own API key of a provider (encrypted; never shown again)")
async def put_key(
    request: Request, session: Session, principal: Asker, provider: Provider, body: AiKeyWrite
) -> AiKeyRead:
    row = await advisor.do_put_key(
        _context(request, session, principal), provider, body.key.get_secret_value()
    )
    return AiKeyRead(provider=provider, last4=row.last4, created_at=row.created_at)


@router.delete("/keys/{provider}", status_code=204, summary="Forget your own key of a provider")
async def delete_key(request: Request, session: Session, principal: Asker, provider: Provider) -> Response:
    await advisor.do_delete_key(_context(request, session, principal), provider)
    return Response(status_code=204)


@router.get("/usage", summary="AI tokens you spent today and your budgets")
async def usage(request: Request, session: Session, principal: Asker) -> AdvisorUsageRead:
    market = _context(request, session, principal)
    spent = await advisor.tokens_today(session, advisor.user_of(market))
    return AdvisorUsageRead.model_validate(advisor.usage_summary(market.settings, spent))
