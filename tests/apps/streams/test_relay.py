"""The relay: a consumer joining mid-stream starts with the configuration and the current GOP, at a
keyframe; a slow consumer is cut off instead of growing memory; the end reaches everyone."""

from __future__ import annotations

import uuid

from pentad.apps.streams.media import relay as relay_module
from pentad.apps.streams.media.frames import AUDIO, DATA, VIDEO, MediaFrame
from pentad.apps.streams.media.relay import StreamRelay
from pentad.apps.streams.media.rtmp import amf0
from tests.apps.streams.rtmp_peer import AAC_CONFIG, AVC_CONFIG, audio, video


def _feed(relay: StreamRelay, *frames: MediaFrame) -> None:
    for frame in frames:
        relay.push(frame)


async def _drain(relay: StreamRelay, subscription: relay_module.Subscription) -> list[MediaFrame]:
    relay.close()
    return [frame async for frame in subscription]


async def test_a_late_consumer_starts_at_the_last_keyframe() -> None:
    relay = StreamRelay(uuid.uuid4())
    meta = MediaFrame.parse(DATA, 0, amf0.encode_all("onMetaData", amf0.EcmaArray(videocodecid=7.0)))
    avc, aac = MediaFrame.parse(VIDEO, 0, AVC_CONFIG), MediaFrame.parse(AUDIO, 0, AAC_CONFIG)
    _feed(relay, meta, avc, aac, video(0, keyframe=True), audio(5), video(33, keyframe=False))
    _feed(relay, video(1000, keyframe=True), audio(1005), video(1033, keyframe=False))
    late = relay.subscribe()
    _feed(relay, audio(1040))
    received = await _drain(relay, late)
    assert received == [
        meta,
        avc,
        aac,
        video(1000, keyframe=True),
        audio(1005),
        video(1033, keyframe=False),
        audio(1040),
    ]
    assert (relay.keyframes, relay.frames_in) == (2, 10)
    assert relay.has_video
    assert relay.has_audio  # not in the metadata, but its configuration came


async def test_a_consumer_before_the_first_keyframe_waits_for_one() -> None:
    relay = StreamRelay(uuid.uuid4())
    early = relay.subscribe()
    _feed(relay, audio(0), video(0, keyframe=False), video(33, keyframe=True), audio(40))
    assert await _drain(relay, early) == [video(33, keyframe=True), audio(40)]
    assert relay.first_keyframe.is_set()


async def test_a_slow_consumer_is_cut_off_and_the_rest_go_on(monkeypatch: object) -> None:
    relay = StreamRelay(uuid.uuid4())
    slow = relay.subscribe(from_keyframe=False)
    for n in range(relay_module.MAX_QUEUE + 5):
        relay.push(audio(n))
    assert slow.lagged
    assert relay.subscribers == 0
    fresh = relay.subscribe(from_keyframe=False)
    relay.push(audio(99_999))
    assert [frame.timestamp for frame in await _drain(relay, fresh)] == [99_999]
    assert len([frame async for frame in slow]) == relay_module.MAX_QUEUE


async def test_subscribing_to_an_ended_stream_gives_what_it_holds() -> None:
    relay = StreamRelay(uuid.uuid4())
    _feed(relay, video(0, keyframe=True))
    relay.close()
    relay.push(video(33, keyframe=False))  # after the end: ignored
    assert [frame async for frame in relay.subscribe()] == [video(0, keyframe=True)]
