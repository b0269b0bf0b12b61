"""After-commit and after-rollback hooks.

Services never commit. They register side effects (hub publishes, jobs, mail) with `on_commit`; the owner
of the transaction (a request, a job, a CLI command) commits and then runs them. On rollback they are
dropped, so nothing is announced that did not happen.

What a service did outside the database before the commit (a file put in storage for the row it adds) it
undoes with `on_rollback`: the owner runs those hooks when the transaction rolls back or its commit fails,
and drops them once it has committed, so nothing refused leaves anything behind.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

AfterCommit = Callable[[], Awaitable[None]]

_HOOKS_KEY = "pentad.after_commit"
_UNDO_KEY = "pentad.after_rollback"
KEEP_KEY = "pentad.commit_on_error"

logger = structlog.get_logger("pentad.db")


def on_commit(session: AsyncSession, hook: AfterCommit) -> None:
    """Run `hook` once the session's transaction has committed; drop it on rollback."""
    session.info.setdefault(_HOOKS_KEY, []).append(hook)


def on_rollback(session: AsyncSession, hook: AfterCommit) -> None:
    """Run `hook` if the session's transaction rolls back (or its commit fails); drop it on commit."""
    session.info.setdefault(_UNDO_KEY, []).append(hook)


def commit_even_on_error(session: AsyncSession) -> None:
    """Keep this request's writes although it answers with an error (e.g. revoking a stolen token)."""
    session.info[KEEP_KEY] = True


async def run_after_commit(session: AsyncSession) -> None:
    hooks: list[AfterCommit] = session.info.pop(_HOOKS_KEY, [])
    session.info.pop(KEEP_KEY, None)
    session.info.pop(_UNDO_KEY, None)
    for hook in hooks:
        try:
            await hook()
        except Exception:
            logger.exception("after_commit_hook_failed")


async def run_after_rollback(session: AsyncSession) -> None:
    """The transaction rolled back: drop its after-commit hooks, run its after-rollback ones."""
    session.info.pop(_HOOKS_KEY, None)
    session.info.pop(KEEP_KEY, None)
    undo: list[AfterCommit] = session.info.pop(_UNDO_KEY, [])
    for hook in undo:
        try:
            await hook()
        except Exception:
            logger.exception("after_rollback_hook_failed")
