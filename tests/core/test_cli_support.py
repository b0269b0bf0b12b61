"""The runner every `pentad` sub-command uses: its work is committed when it returns, rolled back when it
fails, and a refused action or a bad setting stops the command with one line, not a traceback. Runs once
(on SQLite): the helper does the same on every database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.core import audit
from pentad.core.cli_support import run_in_transaction
from pentad.core.config import Settings
from pentad.core.db.migrate import upgrade_async
from pentad.core.errors import NotFound
from pentad.core.platform import Platform
from tests.conftest import make_settings


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    folder = tmp_path_factory.mktemp("cli")
    url = f"sqlite+aiosqlite:///{folder / 'pentad.db'}"
    asyncio.run(upgrade_async(url))
    return make_settings(folder, url)


async def _actions(session: AsyncSession, _platform: Platform) -> list[str]:
    return [event.action for event in await audit.list_events(session, resource_type="cli-test")]


def test_the_work_is_committed_and_its_result_returned(settings: Settings) -> None:
    async def work(session: AsyncSession, platform: Platform) -> str:
        audit.record(session, audit.SYSTEM, "cli.kept", resource_type="cli-test")
        return platform.settings.environment

    assert run_in_transaction(work, apps=[], settings=settings) == "test"
    assert run_in_transaction(_actions, apps=[], settings=settings) == ["cli.kept"]


def test_a_refused_action_is_one_line_and_rolled_back(settings: Settings) -> None:
    async def work(session: AsyncSession, _platform: Platform) -> None:
        audit.record(session, audit.SYSTEM, "cli.undone", resource_type="cli-test")
        raise NotFound("No such tenant 'acme'.")

    with pytest.raises(click.ClickException) as stopped:
        run_in_transaction(work, apps=[], settings=settings)
    assert stopped.value.message == "No such tenant 'acme'."
    assert "cli.undone" not in run_in_transaction(_actions, apps=[], settings=settings)


def test_a_bad_key_ring_stops_before_any_work(settings: Settings, tmp_path: Path) -> None:
    broken = make_settings(tmp_path, settings.database.url, crypto={"keys": "k1:not-a-key"})
    ran = []

    async def work(_session: AsyncSession, _platform: Platform) -> None:
        ran.append(True)

    with pytest.raises(click.ClickException) as stopped:
        run_in_transaction(work, apps=[], settings=broken)
    assert stopped.value.message == "key 'k1' is not valid base64"
    assert ran == []
