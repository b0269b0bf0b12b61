"""The job registry refuses declarations that cannot work; cron ticks are computed in UTC."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from pentad.core.apps import AppSpec
from pentad.core.context import JobContext
from pentad.core.jobs.registry import CronSpec, JobRegistry, JobSpec, RegistryError
from pentad.core.platform import Platform
from tests.conftest import make_settings


async def _noop(_context: JobContext, _payload: dict[str, Any]) -> None:
    return None


def test_lists_its_kinds() -> None:
    registry = JobRegistry([JobSpec("b.two", _noop), JobSpec("a.one", _noop)])
    assert [spec.name for spec in registry.specs] == ["a.one", "b.two"]
    assert registry.get("a.one") is not None
    assert registry.get("c.three") is None


@pytest.mark.parametrize(
    ("jobs", "cron", "problem"),
    [
        ([JobSpec("a.one", _noop), JobSpec("a.one", _noop)], [], "registered twice"),
        ([JobSpec("a.one", _noop)], [CronSpec("a.other", "* * * * *")], "unknown job"),
        ([JobSpec("a.one", _noop)], [CronSpec("a.one", "every day")], "invalid cron schedule"),
        ([JobSpec("a.one", _noop)], [CronSpec("a.one", "0 * * * *")] * 2, "twice"),
    ],
)
def test_refuses_what_cannot_work(jobs: list[JobSpec], cron: list[CronSpec], problem: str) -> None:
    with pytest.raises(RegistryError, match=problem):
        JobRegistry(jobs, cron)


def test_the_latest_tick_is_at_or_before_now() -> None:
    every_five = CronSpec("a.one", "*/5 * * * *")
    assert every_five.latest_tick(datetime(2026, 1, 1, 12, 7, 30, tzinfo=UTC)) == datetime(
        2026, 1, 1, 12, 5, tzinfo=UTC
    )
    on_the_tick = datetime(2026, 1, 1, 12, 10, tzinfo=UTC)
    assert every_five.latest_tick(on_the_tick) == on_the_tick


class _DeliverySettings(BaseModel):
    attempts: int = 8


@contextlib.asynccontextmanager
async def _platform(tmp_path: Path, **areas: Any) -> AsyncIterator[Platform]:
    """A platform with an app "delivery" whose settings are _DeliverySettings."""
    settings = make_settings(tmp_path, "sqlite+aiosqlite://", **areas)
    platform = Platform.build(
        settings, [AppSpec(name="delivery", title="Delivery", settings=_DeliverySettings)]
    )
    try:
        yield platform
    finally:
        await platform.close()


async def test_a_kind_may_allow_more_attempts_than_the_default(tmp_path: Path) -> None:
    async with _platform(tmp_path) as platform:
        assert JobSpec("a.one", _noop).attempts_allowed(platform, 5) == 5
        assert JobSpec("a.one", _noop, max_attempts=9).attempts_allowed(platform, 5) == 9


async def test_a_kind_may_take_its_attempt_limit_from_its_apps_settings(tmp_path: Path) -> None:
    spec = JobSpec("a.one", _noop, max_attempts=lambda c: c.app_settings(_DeliverySettings).attempts)
    async with _platform(tmp_path, delivery={"attempts": 3}) as platform:
        assert spec.attempts_allowed(platform, 5) == 3
