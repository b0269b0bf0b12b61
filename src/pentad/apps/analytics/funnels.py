"""Funnels: ordered steps (2 to 8), each a goal or a pageview path pattern, and how far visitors get.

A funnel's `scope` is `visit` (the steps must happen in order within one visit) or `day` (within one
day of a visitor: the visitor id is daily). Each unit (visit or visitor-day) walks its events in time
order and advances one step each time an event matches the next step; the report counts, per step, the
units that reached it, the distinct visitors among them, the conversion from the previous step and from
the first (percent) and the drop-off. Answered from raw events over the range (see filters.py), with
the range's filters applied to the visits first.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from pentad.apps.analytics.filters import RawVisit, Selection
from pentad.apps.analytics.goals import PAGEVIEW, GoalRule, compile_pattern
from pentad.apps.analytics.models import AnalyticsFunnel
from pentad.core.errors import AppError

MAX_FUNNELS: Final = 50


class FunnelInvalid(AppError):
    status, code = 422, "bad_funnel"


@dataclass(frozen=True)
class Step:
    label: str
    goal: GoalRule | None = None
    pattern: re.Pattern[str] | None = None
    path: str | None = None
    """The path pattern `pattern` was compiled from (`*` wildcards)."""

    def matches(self, event: dict[str, Any]) -> bool:
        if self.goal is not None:
            return self.goal.matches(event["name"], event["path"])
        assert self.pattern is not None
        return event["name"] == PAGEVIEW and self.pattern.fullmatch(event["path"]) is not None


def compile_steps(funnel: AnalyticsFunnel, goals: Sequence[GoalRule]) -> list[Step]:
    """The funnel's steps; a step naming a goal deleted since is a 422 `bad_funnel`."""
    by_id = {str(goal.id): goal for goal in goals}
    steps: list[Step] = []
    for number, raw in enumerate(funnel.steps, 1):
        if raw.get("goal_id") is not None:
            goal = by_id.get(str(raw["goal_id"]))
            if goal is None:
                raise FunnelInvalid(f"Step {number} names a goal that no longer exists; edit the funnel.")
            steps.append(Step(goal.name, goal=goal))
        else:
            path = str(raw["path"])
            steps.append(Step(f"Visit {path}", pattern=compile_pattern(path), path=path))
    return steps


@dataclass(frozen=True)
class StepResult:
    label: str
    units: int
    visitors: int
    conversion_rate: float | None
    """Percent of the previous step's units (the first step: of every unit in the range)."""
    overall_rate: float | None
    """Percent of the first step's units."""
    dropoff: int
    """Units that reached the previous step but not this one (0 for the first step)."""


def _units(selection: Selection, scope: str) -> Iterable[tuple[int, list[dict[str, Any]]]]:
    if scope == "visit":
        for visit in selection.visits:
            yield visit.visitor_id, visit.events
        return
    by_visitor: dict[int, list[RawVisit]] = defaultdict(list)
    for visit in selection.visits:
        by_visitor[visit.visitor_id].append(visit)
    for visitor, visits in by_visitor.items():
        yield visitor, [event for visit in visits for event in visit.events]


def report(selection: Selection, steps: Sequence[Step], scope: str) -> tuple[int, list[StepResult]]:
    """(units in the range, per-step results)."""
    reached = [0] * len(steps)
    visitors: list[set[int]] = [set() for _ in steps]
    total = 0
    for visitor, events in _units(selection, scope):
        total += 1
        position = 0
        for event in events:
            if position < len(steps) and steps[position].matches(event):
                reached[position] += 1
                visitors[position].add(visitor)
                position += 1
    return total, results(
        steps, total, [(count, len(seen)) for count, seen in zip(reached, visitors, strict=True)]
    )


def results(steps: Sequence[Step], total: int, counts: Sequence[tuple[int, int]]) -> list[StepResult]:
    """The report's steps from (units, visitors) reaching each step, of `total` units."""
    reached = [units for units, _ in counts]
    found: list[StepResult] = []
    for index, step in enumerate(steps):
        before = total if index == 0 else reached[index - 1]
        found.append(
            StepResult(
                label=step.label,
                units=reached[index],
                visitors=counts[index][1],
                conversion_rate=round(100 * reached[index] / before, 1) if before else None,
                overall_rate=round(100 * reached[index] / reached[0], 1) if reached[0] else None,
                dropoff=0 if index == 0 else reached[index - 1] - reached[index],
            )
        )
    return found
