"""publish(session, topic, model): sent after the commit, in order, never on rollback; publish_now(context,
topic, model): sent at once without a transaction, in the same per-topic order."""

from __future__ import annotations

from pathlib import Path

import pytest

from pentad.app import create_app
from pentad.core.config import DatabaseSettings
from pentad.core.db.engine import Database
from pentad.core.platform import Platform
from pentad.core.realtime.hub import UnknownTopic
from pentad.core.realtime.publish import publish, publish_now
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


def texts(published: list[str]) -> list[str]:
    return [frame.rsplit('"data":', 1)[1] for frame in published]


async def test_publish_now_sends_at_once_without_waiting_for_an_open_transaction(platform: Platform) -> None:
    async with platform.database.transaction() as session:
        publish(session, "test.room.n1", Note(text="committed"))
        await publish_now(platform, "test.room.n1", Note(text="live"))
        assert texts(await frames(platform, "test.room.n1")) == ['{"text":"live"}}']
    await publish_now(platform, "test.room.n1", Note(text="after"))
    assert texts(await frames(platform, "test.room.n1")) == [
        '{"text":"live"}}',
        '{"text":"committed"}}',
        '{"text":"after"}}',
    ]


async def test_publish_now_refuses_unknown_topics_and_a_database_of_no_platform(
    platform: Platform, database_url: str
) -> None:
    with pytest.raises(UnknownTopic):
        await publish_now(platform, "no.such.topic", Note(text="x"))
    stray = Database.from_settings(DatabaseSettings(url=database_url))  # type: ignore[call-arg]

    class Stray:
        database = stray

    try:
        with pytest.raises(RuntimeError, match="not bound to a platform"):
            await publish_now(Stray(), "test.room.n2", Note(text="x"))  # type: ignore[arg-type]
    finally:
        await stray.dispose()
