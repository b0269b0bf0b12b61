"""One transaction per request: the request's session is committed before the response starts.

The request's session ends there, also for a streaming response (chunked, Server-Sent Events): a body that
goes on for minutes must not pin a connection of the pool or keep a transaction open, so using the
request's session after the response started is an error, and a streaming body opens
`platform.database.transaction()` per unit of work (see core/realtime/live.py for long-lived requests)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pentad.core.db.engine import write_intent
from pentad.core.db.hooks import KEEP_KEY, run_after_commit, run_after_rollback

if TYPE_CHECKING:
    from pentad.core.db.engine import Database

READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
logger = structlog.get_logger("pentad.db")


class RequestTransaction:
    """The request's lazily opened session; committed before the response starts."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._session: AsyncSession | None = None
        self._finished = False

    @property
    def session(self) -> AsyncSession:
        if self._finished:
            raise RuntimeError(
                "the request's transaction ended when its response started: a streaming body opens "
                "platform.database.transaction() per unit of work"
            )
        if self._session is None:
            self._session = self._database.sessionmaker()
        return self._session

    async def finish(self, *, success: bool) -> None:
        self._finished = True
        session = self._session
        if session is None:
            return
        self._session = None
        keep = success or bool(session.info.get(KEEP_KEY))
        if not session.in_transaction() and not session.new and not session.dirty and not session.deleted:
            # Nothing reached the database (e.g. a credential served from the principal cache): skip the
            # commit's round trip, but keep the contract for any hook registered without a write.
            if keep:
                await run_after_commit(session)
            else:
                await run_after_rollback(session)
            return
        try:
            if keep:
                try:
                    await session.commit()
                except BaseException:
                    await run_after_rollback(session)
                    raise
                await run_after_commit(session)
            else:
                await session.rollback()
                await run_after_rollback(session)
        finally:
            await session.close()


class TransactionMiddleware:
    """Commits the request's session before the first byte of the response is sent.

    A response with status >= 400 rolls back unless a service asked to keep its writes. If the commit
    fails the client receives a 503 problem instead of the response it would have got, so nothing is
    reported as done that was not stored.
    """

    def __init__(self, app: ASGIApp, database: Database) -> None:
        self.app = app
        self.database = database

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        transaction = RequestTransaction(self.database)
        scope.setdefault("state", {})["transaction"] = transaction
        intent = write_intent(writes=scope["method"] not in READ_ONLY_METHODS)
        replaced = False

        async def send_after_commit(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return
            if message["type"] == "http.response.start":
                try:
                    await transaction.finish(success=message["status"] < 400)
                except Exception:
                    logger.exception("commit_failed")
                    replaced = True
                    await _send_commit_failure(send)
                    return
            await send(message)

        with intent:
            try:
                await self.app(scope, receive, send_after_commit)
            finally:
                await transaction.finish(success=False)


async def _send_commit_failure(send: Send) -> None:
    body = (
        b'{"type":"about:blank","title":"Service Unavailable","status":503,'
        b'"detail":"The change could not be stored; it was not applied. Try again.",'
        b'"code":"commit_failed"}'
    )
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"1"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})
