"""publish(session, topic, model): sent after the commit, in order, never on rollback."""

from __future__ import annotations

from pathlib import Path

import pytest

from pentad.app import create_app
from pentad.core.config import DatabaseSettings
from pentad.core.db.engine import Database
from pentad.core.platform import Platform
from pentad.core.realtime.hub import UnknownTopic
from pentad.core.realtime.publish import publish
from tests.conftest import make_settings
from tests.core.realtime.realtime_app import APP, Note


class Rollback(Exception):
    pass


@pytest.fixture
def platform(tmp_path: Path, database_url: str, database: Database) -> Platform:
    app = create_app(make_settings(tmp_path, database_url), database=database, apps=[APP])
    platform: Platform = app.state.platform
    return platform


async def frames(platform: Platform, topic: str) -> list[str]:
    """Every event of `topic` kept in the broker's history."""
    spec = platform.hub.match(topic).spec
    epoch = (await platform.hub.broker.history(topic, None, None, spec)).epoch
    return [frame for _, frame in (await platform.hub.broker.history(topic, 0, epoch, spec)).frames]


async def test_events_are_published_after_the_commit_in_order(platform: Platform) -> None:
    async with platform.database.transaction() as session:
        publish(session, "test.room.p1", Note(text="first"))
        publish(session, "test.room.p1", Note(text="second"))
        assert await frames(platform, "test.room.p1") == []
    published = await frames(platform, "test.room.p1")
    assert [frame.rsplit('"data":', 1)[1] for frame in published] == [
        '{"text":"first"}}',
        '{"text":"second"}}',
    ]


async def test_nothing_is_published_when_the_transaction_rolls_back(platform: Platform) -> None:
    async def fail_after_publishing() -> None:
        async with platform.database.transaction() as session:
            publish(session, "test.room.p2", Note(text="never"))
            raise Rollback

    with pytest.raises(Rollback):
        await fail_after_publishing()
    assert await frames(platform, "test.room.p2") == []


async def test_the_payload_is_taken_when_publish_is_called(platform: Platform) -> None:
    note = Note(text="as it was")
    async with platform.database.transaction() as session:
        publish(session, "test.room.p3", note)
        note.text = "changed later"
    assert '"as it was"' in (await frames(platform, "test.room.p3"))[0]


async def test_unknown_topics_fail_at_once(platform: Platform) -> None:
    async with platform.database.transaction() as session:
        with pytest.raises(UnknownTopic):
            publish(session, "no.such.topic", Note(text="x"))


async def test_a_session_of_no_platform_cannot_publish(database_url: str) -> None:
    stray = Database.from_settings(DatabaseSettings(url=database_url))  # type: ignore[call-arg]
    try:
        async with stray.transaction(writes=False) as session:
            with pytest.raises(RuntimeError, match="no realtime hub"):
                publish(session, "test.room.p4", Note(text="x"))
    finally:
        await stray.dispose()
