"""After-commit hooks and the one-transaction-per-request middleware.

Services never commit. They register side effects (hub publishes, jobs, mail) with `on_commit`; the owner
of the transaction (a request, a job, a CLI command) commits and then runs them. On rollback they are
dropped, so nothing is announced that did not happen.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from pentad.core.db.engine import Database

AfterCommit = Callable[[], Awaitable[None]]

_HOOKS_KEY = "pentad.after_commit"
_KEEP_KEY = "pentad.commit_on_error"

logger = structlog.get_logger("pentad.db")


def on_commit(session: AsyncSession, hook: AfterCommit) -> None:
    """Run `hook` once the session's transaction has committed; drop it on rollback."""
    session.info.setdefault(_HOOKS_KEY, []).append(hook)


def commit_even_on_error(session: AsyncSession) -> None:
    """Keep this request's writes although it answers with an error (e.g. revoking a stolen token)."""
    session.info[_KEEP_KEY] = True


async def run_after_commit(session: AsyncSession) -> None:
    hooks: list[AfterCommit] = session.info.pop(_HOOKS_KEY, [])
    session.info.pop(_KEEP_KEY, None)
    for hook in hooks:
        try:
            await hook()
        except Exception:
            logger.exception("after_commit_hook_failed")


def discard_after_commit(session: AsyncSession) -> None:
    session.info.pop(_HOOKS_KEY, None)
    session.info.pop(_KEEP_KEY, None)


class RequestTransaction:
    """The request's lazily opened session; committed before the response starts."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._session: AsyncSession | None = None

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            self._session = self._database.sessionmaker()
        return self._session

    async def finish(self, *, success: bool) -> None:
        session = self._session
        if session is None:
            return
        self._session = None
        try:
            if success or session.info.get(_KEEP_KEY):
                await session.commit()
                await run_after_commit(session)
            else:
                await session.rollback()
                discard_after_commit(session)
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


def request_transaction(scope_state: Any) -> RequestTransaction:
    transaction: RequestTransaction = scope_state.transaction
    return transaction
