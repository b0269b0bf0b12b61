"""Events leave in commit order: the publish queues, and concurrent writers on a real SQLite server."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from pentad.core.realtime import ordering
from pentad.core.realtime.ordering import PublishSequencer
from tests.core.realtime.conftest import (
    WAIT,
    ServeProcess,
    live_server,
    peer,
    realtime_settings,
    room_member,
    serve_environment,
)
from tests.core.realtime.realtime_app import ROOM_TOPIC
from tests.factories import bearer, issue_api_key


class Published:
    """A sequencer whose broker records what it was given, in order."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.tasks: set[asyncio.Task[Any]] = set()
        self.sequencer = PublishSequencer(self.publish, self.spawn)

    async def publish(self, topic: str, spec: object, data_json: str) -> tuple[int, str]:
        await asyncio.sleep(0)  # a broker round trip: later places must wait for it
        self.texts.append(f"{topic}:{data_json}")
        return len(self.texts), "epoch"

    def spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


async def test_places_are_published_in_reservation_order_whatever_order_they_are_filled_in() -> None:
    published = Published()
    reserve = published.sequencer.reserve
    first, second, third = (reserve("room.a", ROOM_TOPIC, text) for text in ("1", "2", "3"))
    other = reserve("room.b", ROOM_TOPIC, "b")
    third.fill()
    other.fill()
    await other.done
    assert published.texts == ["room.b:b"]  # another topic does not wait for room.a
    second.cancel()
    await asyncio.sleep(0.01)
    assert published.texts == ["room.b:b"]  # room.a's first place is still open
    first.fill()
    await asyncio.gather(first.done, second.done, third.done)
    assert published.texts == ["room.b:b", "room.a:1", "room.a:3"]


async def test_a_place_held_too_long_lets_later_events_pass_and_is_published_when_filled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ordering, "HOLD_SECONDS", 0.05)
    published = Published()
    lost = published.sequencer.reserve("room.a", ROOM_TOPIC, "lost")
    later = published.sequencer.reserve("room.a", ROOM_TOPIC, "later")
    later.fill()
    async with asyncio.timeout(WAIT):
        await later.done
    assert published.texts == ["room.a:later"]
    lost.fill()
    async with asyncio.timeout(WAIT):
        await lost.done
    assert published.texts == ["room.a:later", "room.a:lost"]


async def test_concurrent_writers_events_arrive_in_commit_order(
    tmp_path: Path, realtime_database_url: str
) -> None:
    """Twelve clients post notes to one room at once through `pentad serve` on SQLite; the subscriber sees
    the notes in the order they were stored, with consecutive sequence numbers."""
    room = uuid.uuid4().hex[:8]
    async with live_server(realtime_settings(tmp_path, realtime_database_url)) as local:
        key = await issue_api_key(local.platform, await room_member(local.platform, room))
    served = ServeProcess(serve_environment(tmp_path, realtime_database_url))
    senders, each = 12, 20
    try:
        await served.start()
        async with peer(served, key) as watcher:  # type: ignore[arg-type]
            assert (await watcher.request("subscribe", topic=f"test.room.{room}"))["ok"]

            async def send_notes(client: httpx.AsyncClient) -> list[int]:
                numbers = []
                for _ in range(each):
                    response = await client.post(f"/api/rtest/rooms/{room}/notes", headers=bearer(key))
                    assert response.status_code == 201, response.text
                    numbers.append(int(response.json()["text"]))
                return numbers

            async with httpx.AsyncClient(base_url=served.http_url, timeout=WAIT) as client:
                sent = await asyncio.gather(*(send_notes(client) for _ in range(senders)))
            assert sorted(n for numbers in sent for n in numbers) == list(range(1, senders * each + 1))
            events = [await watcher.recv_op("event") for _ in range(senders * each)]
    finally:
        await served.stop()
    assert [int(event["data"]["text"]) for event in events] == list(range(1, senders * each + 1))
    first = events[0]["seq"]
    assert [event["seq"] for event in events] == list(range(first, first + len(events)))
