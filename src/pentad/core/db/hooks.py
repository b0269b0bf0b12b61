"""After-commit hooks.

Services never commit. They register side effects (hub publishes, jobs, mail) with `on_commit`; the owner
of the transaction (a request, a job, a CLI command) commits and then runs them. On rollback they are
dropped, so nothing is announced that did not happen.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

AfterCommit = Callable[[], Awaitable[None]]

_HOOKS_KEY = "pentad.after_commit"
KEEP_KEY = "pentad.commit_on_error"

logger = structlog.get_logger("pentad.db")


def on_commit(session: AsyncSession, hook: AfterCommit) -> None:
    """Run `hook` once the session's transaction has committed; drop it on rollback."""
    session.info.setdefault(_HOOKS_KEY, []).append(hook)


def commit_even_on_error(session: AsyncSession) -> None:
    """Keep this request's writes although it answers with an error (e.g. revoking a stolen token)."""
    session.info[KEEP_KEY] = True


async def run_after_commit(session: AsyncSession) -> None:
    hooks: list[AfterCommit] = session.info.pop(_HOOKS_KEY, [])
    session.info.pop(KEEP_KEY, None)
    for hook in hooks:
        try:
            await hook()
        except Exception:
            logger.exception("after_commit_hook_failed")


def discard_after_commit(session: AsyncSession) -> None:
    session.info.pop(_HOOKS_KEY, None)
    session.info.pop(KEEP_KEY, None)
