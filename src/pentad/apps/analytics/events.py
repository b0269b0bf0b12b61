"""Domain events of the analytics app (core/events.py), for other apps.

`analytics.goals_completed`: emitted by the ingest flush (in the transaction that stores the batch) once
per flushed batch whose events complete goals of a site, with at most MAX_COMPLETIONS completions (a larger
batch emits several). The ads app subscribes to it to count conversions; its shape is a contract.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Final

from pydantic import BaseModel, Field

from pentad.core.events import DomainEvent

MAX_COMPLETIONS: Final = 2000


class GoalCompletion(BaseModel):
    """One event that completed one goal."""

    goal_id: uuid.UUID
    goal_name: str
    visitor_id: int = Field(description="The core visitor id (daily-rotating, scope = the site's domain).")
    day: date = Field(description="The UTC day of the event (the visitor id's day).")
    ts: datetime = Field(description="When the event happened (UTC).")
    path: str
    source: str | None = None
    revenue_micros: int | None = None
    currency: str | None = None


class GoalsCompleted(BaseModel):
    """Payload of `analytics.goals_completed`: the completions of one site in one flushed batch."""

    site_domain: str
    completions: list[GoalCompletion] = Field(max_length=MAX_COMPLETIONS)


GOALS_COMPLETED = DomainEvent(
    "analytics.goals_completed",
    GoalsCompleted,
    "Stored events completed goals of a site (one event per flushed batch, at most 2,000 completions).",
)
DOMAIN_EVENTS = [GOALS_COMPLETED]
