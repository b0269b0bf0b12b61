"""Readiness checks that apps add to /readyz (`AppSpec.health_checks`), e.g. "the RTMP listener accepts"
or "the ESI API answered in the last ten minutes".

A check gets a narrow context (settings and database, not the whole platform) and raises to say "not
ready"; it has READINESS_TIMEOUT_SECONDS to answer. Its reason goes to the log, never to the caller:
/readyz is public.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pentad.core.config import Settings
    from pentad.core.db.engine import Database


@dataclass(frozen=True)
class HealthContext:
    settings: Settings
    database: Database


@dataclass(frozen=True)
class HealthCheck:
    """`name` shows in /readyz as `<app>.<name>`; `probe` returns when ready and raises when not."""

    name: str
    probe: Callable[[HealthContext], Awaitable[None]]
