"""The RTMP server's rules, in process with a recording StreamHost: the key is checked before any media is
taken, refused publishers get an error status and the door, drops and timeouts end the stream once, and a
hostile peer never gets more than a log line."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from structlog.testing import capture_logs

from pentad.apps.streams.media.engines.base import Drop, Publication
from pentad.apps.streams.media.frames import DATA, VIDEO, MediaFrame
from pentad.apps.streams.media.relay import StreamRelay
from pentad.apps.streams.media.rtmp import amf0
from pentad.apps.streams.media.rtmp.server import RtmpServer
from pentad.apps.streams.media.rtmp.session import SessionLimits
from tests.apps.streams.rtmp_peer import AAC_CONFIG, AVC_CONFIG, Publisher, audio, video

GOOD_KEY = "psk_" + "g" * 43


@dataclass
class Host:
    """Accepts GOOD_KEY only; records what the server asked."""

    opened: list[Publication] = field(default_factory=list)
    closed: list[tuple[Publication, str]] = field(default_factory=list)
    refused: int = 0
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    async def open_stream(self, raw_key: str, *, engine: str, peer: str, drop: Drop) -> Publication | None:
        if raw_key != GOOD_KEY:
            self.refused += 1
            return None
        camera = uuid.uuid4()
        publication = Publication(camera, uuid.uuid4(), uuid.uuid4(), engine, StreamRelay(camera), drop)
        self.opened.append(publication)
        return publication

    async def close_stream(self, publication: Publication, reason: str) -> None:
        publication.relay.close()
        self.closed.append((publication, reason))
        self.ended.set()


@pytest.fixture
async def served() -> AsyncIterator[tuple[RtmpServer, Host]]:
    host = Host()
    limits = SessionLimits(handshake_timeout=1, idle_timeout=1.5, keyframe_timeout=1)
    server = RtmpServer(host, address="127.0.0.1", port=0, engine="builtin", limits=limits, max_connections=4)
    await server.start()
    yield server, host
    await server.close()


async def _publisher(server: RtmpServer) -> Publisher:
    publisher = Publisher(server.port)
    await publisher.open()
    return publisher


async def test_a_good_key_publishes_frames_into_the_relay(served: tuple[RtmpServer, Host]) -> None:
    server, host = served
    publisher = await _publisher(server)
    replies = await publisher.publish(GOOD_KEY)
    assert replies[0][0] == "_result"
    assert replies[0][3]["code"] == "NetConnection.Connect.Success"
    assert replies[-1][3]["code"] == "NetStream.Publish.Start"
    (publication,) = host.opened
    subscription = publication.relay.subscribe()
    metadata = amf0.encode_all(
        "@setDataFrame", "onMetaData", amf0.EcmaArray(videocodecid=7.0, audiocodecid=10.0)
    )
    await publisher.data(metadata)
    await publisher.frame(MediaFrame.parse(VIDEO, 0, AVC_CONFIG))
    await publisher.frame(MediaFrame.parse(8, 0, AAC_CONFIG))
    await publisher.frame(video(0, keyframe=True))
    await publisher.frame(audio(10))
    await publisher.frame(video(33, keyframe=False))
    await publisher.command("FCUnpublish", None, GOOD_KEY)
    await publisher.command("deleteStream", None, 1.0)
    await asyncio.wait_for(host.ended.wait(), 10)
    received = [frame async for frame in subscription]
    assert [(f.kind, f.timestamp, f.keyframe, f.config) for f in received] == [
        (DATA, 0, False, True),
        (VIDEO, 0, False, True),
        (8, 0, False, True),
        (VIDEO, 0, True, False),
        (8, 10, False, False),
        (VIDEO, 33, False, False),
    ]
    assert amf0.decode_all(received[0].payload)[0] == "onMetaData"  # @setDataFrame taken off
    assert publication.relay.metadata == {"videocodecid": 7.0, "audiocodecid": 10.0}
    assert host.closed == [(publication, "unpublished")]
    await publisher.close()


async def test_a_refused_key_gets_an_error_and_the_door(served: tuple[RtmpServer, Host]) -> None:
    server, host = served
    publisher = await _publisher(server)
    wrong = "psk_" + "w" * 43
    with capture_logs() as logs:
        replies = await publisher.publish(wrong)
        # Media sent anyway is never read into a relay: there is none, and the connection closes.
        await publisher.frame(video(0, keyframe=True))
        assert await publisher.closed_by_server()
    assert replies[-1][3]["level"] == "error"
    assert replies[-1][3]["code"] == "NetStream.Publish.BadName"
    assert host.refused == 1
    assert not host.opened
    assert wrong not in repr(logs)
    await publisher.close()


async def test_an_unknown_application_is_rejected(served: tuple[RtmpServer, Host]) -> None:
    server, host = served
    publisher = await _publisher(server)
    with capture_logs() as logs:
        replies = await publisher.publish(GOOD_KEY, app="other")
        assert await publisher.closed_by_server()
    assert replies[-1][0] == "_error"
    assert any(log["event"] == "rtmp_rejected" and log["reason"] == "unknown_application" for log in logs)
    assert not host.opened
    await publisher.close()


async def test_the_host_drops_a_live_publisher(served: tuple[RtmpServer, Host]) -> None:
    server, host = served
    publisher = await _publisher(server)
    await publisher.publish(GOOD_KEY)
    await publisher.frame(video(0, keyframe=True))
    (publication,) = host.opened
    assert server.publications() == {publication.camera_id: publication}
    await publication.drop("key_revoked")
    assert await publisher.closed_by_server()
    await asyncio.wait_for(host.ended.wait(), 10)
    assert host.closed == [(publication, "key_revoked")]
    assert server.publications() == {}
    await publisher.close()


async def test_a_stream_without_keyframes_is_ended(served: tuple[RtmpServer, Host]) -> None:
    server, host = served
    publisher = await _publisher(server)
    await publisher.publish(GOOD_KEY)
    for n in range(5):
        await publisher.frame(video(n * 33, keyframe=False))
    await asyncio.wait_for(host.ended.wait(), 10)
    assert host.closed[0][1] == "no_keyframe"
    await publisher.close()


async def test_a_silent_publisher_is_dropped(served: tuple[RtmpServer, Host]) -> None:
    server, host = served
    publisher = await _publisher(server)
    await publisher.publish(GOOD_KEY)
    await publisher.frame(video(0, keyframe=True))
    await asyncio.wait_for(host.ended.wait(), 10)
    assert host.closed[0][1] == "idle_timeout"
    await publisher.close()


async def test_a_publisher_above_the_bitrate_limit_is_dropped(served: tuple[RtmpServer, Host]) -> None:
    server, host = served
    server.limits = SessionLimits(
        handshake_timeout=1, idle_timeout=5, keyframe_timeout=5, max_bitrate_kbps=100, bitrate_window=0.2
    )
    publisher = await _publisher(server)
    await publisher.publish(GOOD_KEY)
    big = MediaFrame.parse(VIDEO, 0, b"\x17\x01\x00\x00\x00" + b"\x00" * 20_000)  # 160 kbit a frame
    with capture_logs() as logs:
        async with asyncio.timeout(30):
            while not host.ended.is_set():
                with contextlib.suppress(ConnectionError):
                    await publisher.frame(big)
                await asyncio.sleep(0.02)
    assert host.closed[0][1] == "bitrate_exceeded"
    assert any(log["event"] == "rtmp_bitrate_exceeded" for log in logs)
    await publisher.close()


async def test_connections_beyond_the_cap_are_closed(served: tuple[RtmpServer, Host]) -> None:
    server, _ = served
    publishers = [await _publisher(server) for _ in range(4)]
    with capture_logs() as logs:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert await reader.read(100) == b""
    writer.close()
    assert any(log.get("reason") == "too_many_connections" for log in logs)
    for publisher in publishers:
        await publisher.close()
