"""Pentad's WebSocket protocol (core/realtime/wsserver.py): frames encoded once are the frames the
websockets library would send, and clients of a server with it or without it get the same events."""

from __future__ import annotations

from pathlib import Path

import pytest
from websockets.frames import Frame, Opcode

from pentad.core.realtime.wsserver import SERVE_PROTOCOL, encode_text_frame
from tests.core.realtime.conftest import live_server, peer, realtime_settings, room_member
from tests.core.realtime.realtime_app import Note
from tests.factories import issue_api_key


@pytest.mark.parametrize("length", [0, 125, 126, 65_535, 65_536, 70_000])
def test_a_text_frame_is_encoded_as_websockets_encodes_it(length: int) -> None:
    text = ("é" * length)[: length // 2] + "x" * (length - length // 2)
    expected = Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])
    assert encode_text_frame(text) == expected


@pytest.mark.parametrize("ws", ["auto", SERVE_PROTOCOL])
async def test_subscribers_get_every_event_in_order_with_either_protocol(
    tmp_path: Path, realtime_database_url: str, ws: str
) -> None:
    settings = realtime_settings(tmp_path, realtime_database_url, max_message_bytes=200_000)
    async with live_server(settings, ws=ws) as server:
        user = await room_member(server.platform, "r1")
        key = await issue_api_key(server.platform, user)
        # Sizes across the three length encodings of a frame header.
        texts = [str(n) * size for n, size in enumerate([1, 125, 126, 1000, 65_536, 3, 100_000])]
        async with peer(server, key) as first, peer(server, key) as second:
            for client in (first, second):
                assert (await client.request("subscribe", topic="test.room.r1"))["ok"]
            for text in texts:
                await server.platform.hub.publish("test.room.r1", Note(text=text))
            for client in (first, second):
                events = [await client.recv_op("event") for _ in texts]
                assert [event["data"]["text"] for event in events] == texts
                assert [event["seq"] for event in events] == list(range(1, len(texts) + 1))
            # The fast path is what `pentad serve` uses; uvicorn's own protocol gets the ASGI send.
            writers = {c._write_frame is not None for c in server.platform.hub.connections}
            assert writers == {ws == SERVE_PROTOCOL}
