"""Ingest as apps' callbacks reach it: a job appends through its AppContext (`context.platform.ingest`), and
the flush gets the running platform as its context (settings, resources). Rows are collected by the flush
itself, so this runs in the test's rolled-back transaction on every engine."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from pydantic import BaseModel

from pentad.app import create_app
from pentad.core.apps import AppSpec
from pentad.core.config import Settings
from pentad.core.context import AppContext, JobContext, ResourceSpec
from pentad.core.db.engine import Database
from pentad.core.ingest import FlushContext, IngestStream, UnknownStream
from pentad.core.jobs.queue import enqueue
from pentad.core.jobs.registry import JobSpec
from pentad.core.platform import Platform
from tests.factories import run_due_jobs


class Counted(BaseModel):
    campaign: str
    clicks: int


class Sink:
    """Where the flush puts its batches: the app's resource, so the flush finds it in its context."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[Counted]]] = []


async def open_sink(_context: AppContext) -> Sink:
    return Sink()


SINK = ResourceSpec("test.sink", open_sink)


async def flush_to_sink(flush: FlushContext, rows: Sequence[BaseModel]) -> None:
    flush.context.resource(SINK).batches.append(
        (flush.stream.name, [Counted.model_validate(r) for r in rows])
    )


async def test_a_job_appends_through_its_context_and_the_flush_gets_the_platform(
    settings: Settings, database: Database
) -> None:
    job = f"test.count_{uuid.uuid4().hex[:8]}"

    async def count(context: JobContext, payload: dict[str, Any]) -> None:
        await context.platform.ingest.append("test.clicks", Counted(campaign=payload["campaign"], clicks=2))
        context.platform.ingest.append_nowait("test.clicks", Counted(campaign=payload["campaign"], clicks=3))
        with pytest.raises(UnknownStream):
            context.platform.ingest.append_nowait("test.views", Counted(campaign="x", clicks=1))

    spec = AppSpec(
        "test",
        "Test",
        jobs=[JobSpec(job, count)],
        ingest=[IngestStream("test.clicks", Counted, flush_to_sink, flush_interval=3600)],
        resources=[SINK],
    )
    platform: Platform = create_app(settings, database=database, apps=[spec]).state.platform
    await platform.open_resources()
    try:
        async with platform.database.transaction() as session:
            await enqueue(session, job, {"campaign": "spring"})
        await run_due_jobs(platform)
        assert await platform.ingest.flush() == 2
        assert platform.resource(SINK).batches == [
            ("test.clicks", [Counted(campaign="spring", clicks=2), Counted(campaign="spring", clicks=3)])
        ]
    finally:
        await platform.close()
