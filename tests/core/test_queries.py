"""Cross-app queries (AppSpec.queries): the caller passes a dict in its own transaction and gets the
provider's validated answer; bad input never reaches the handler, a bad answer never reaches the caller; a
provider that is installed but off is QueryUnavailable, a name nobody declares is UnknownQuery."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.app import create_app
from pentad.core import audit
from pentad.core.apps import AppSpec
from pentad.core.config import Settings
from pentad.core.context import AppContext
from pentad.core.db.engine import Database
from pentad.core.platform import Platform
from pentad.core.queries import Queries, QuerySpec, QueryUnavailable, UnknownQuery

REPORT = "reports.report"


class ActionsIn(BaseModel):
    resource_id: str = Field(min_length=1)
    limit: int = Field(10, ge=1, le=100)


class ActionsOut(BaseModel):
    resource_id: str
    actions: list[str]


calls: list[ActionsIn] = []


async def recent_actions(_context: AppContext, session: AsyncSession, query: ActionsIn) -> ActionsOut:
    calls.append(query)
    events = await audit.list_events(session, resource_type=REPORT, resource_id=query.resource_id)
    return ActionsOut(
        resource_id=query.resource_id, actions=[event.action for event in events][: query.limit]
    )


async def broken_answer(_context: AppContext, _session: AsyncSession, query: ActionsIn) -> Any:
    return {"resource_id": query.resource_id, "actions": "not a list"}


PROVIDER = AppSpec(
    "reports",
    "Reports",
    queries=[
        QuerySpec("reports.recent_actions", ActionsIn, ActionsOut, recent_actions),
        QuerySpec("reports.broken", ActionsIn, ActionsOut, broken_answer),
    ],
)


@pytest.fixture
def platform(settings: Settings, database: Database) -> Platform:
    calls.clear()
    built: Platform = create_app(settings, database=database, apps=[PROVIDER]).state.platform
    return built


async def test_a_query_answers_in_the_callers_transaction(platform: Platform) -> None:
    report = str(uuid.uuid4())
    async with platform.database.transaction() as session:
        audit.record(
            session, audit.SYSTEM, "report.viewed", resource_type="reports.report", resource_id=report
        )
        await session.flush()
        answer = await platform.query(session, "reports.recent_actions", {"resource_id": report, "limit": 5})
    assert answer == {"resource_id": report, "actions": ["report.viewed"]}
    assert calls == [ActionsIn(resource_id=report, limit=5)]


async def test_bad_input_never_reaches_the_handler(platform: Platform) -> None:
    async with platform.database.transaction() as session:
        with pytest.raises(ValidationError):
            await platform.query(session, "reports.recent_actions", {"resource_id": "", "limit": 500})
    assert calls == []


async def test_an_answer_that_breaks_the_output_model_never_reaches_the_caller(platform: Platform) -> None:
    async with platform.database.transaction() as session:
        with pytest.raises(ValidationError):
            await platform.query(session, "reports.broken", {"resource_id": "r1"})


async def test_a_disabled_provider_is_unavailable_and_an_undeclared_name_unknown(
    settings: Settings, database: Database
) -> None:
    caller = Platform.build(settings, [], installed=["chat", "reports"], database=database)
    async with caller.database.transaction() as session:
        with pytest.raises(QueryUnavailable) as unavailable:
            await caller.query(session, "reports.recent_actions", {"resource_id": "r1"})
        with pytest.raises(UnknownQuery):
            await caller.query(session, "report.recent_actions", {"resource_id": "r1"})
        with pytest.raises(UnknownQuery):
            await caller.query(session, "billing.invoices", {})
    assert (unavailable.value.status, unavailable.value.code) == (503, "query_unavailable")


def test_queries_are_checked_when_the_platform_is_built() -> None:
    spec = QuerySpec("reports.recent_actions", ActionsIn, ActionsOut, recent_actions)
    with pytest.raises(ValueError, match="outside its name space"):
        Queries([("ads", spec)])
    with pytest.raises(ValueError, match="declared twice"):
        Queries([("reports", spec), ("reports", spec)])
    with pytest.raises(ValueError, match="pydantic models"):
        Queries([("reports", QuerySpec("reports.raw", dict, ActionsOut, recent_actions))])  # type: ignore[arg-type]
