"""Stream health (media/health.py, actions/live.py, health_endpoints.py): the figures measured from a
relay's frames, the live events on the camera's topic (and who may not receive them), the REST view, HLS
viewers counted from playlist requests, and the Prometheus series."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from pentad.apps.streams import metrics
from pentad.apps.streams.actions.live import LiveSink, hls_viewers
from pentad.apps.streams.actions.publish import authorize_publish, end_session, start_session
from pentad.apps.streams.media.frames import AUDIO, VIDEO, MediaFrame
from pentad.apps.streams.media.health import FrameMeter, HealthMonitor, LiveStream, StreamHealth
from pentad.apps.streams.media.relay import MAX_QUEUE, StreamRelay
from pentad.apps.streams.media.service import MediaService
from pentad.apps.streams.media_endpoints import camera_hls_dir
from pentad.apps.streams.settings import StreamsSettings
from pentad.core.platform import Platform
from tests.apps.chat.sockets import connected
from tests.apps.streams.support import make_camera, make_key
from tests.factories import DEFAULT_PASSWORD, Account

AVC_KEY = bytes([0x17, 1, 0, 0, 0]) + b"\x00" * 995
AVC_INTER = bytes([0x27, 1, 0, 0, 0]) + b"\x00" * 245
AAC = bytes([0xAF, 1]) + b"\x00" * 98


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def feed(
    meter: FrameMeter, clock: Clock, *, seconds: float, fps: int = 30, gop: int = 30, start_ms: int = 0
) -> int:
    """`seconds` of video (keyframe every `gop` frames) and 50 audio frames a second; the next timestamp."""
    frames = round(seconds * fps)
    step = 1000 / fps
    for n in range(frames):
        ts = start_ms + round(n * step)
        payload = AVC_KEY if n % gop == 0 else AVC_INTER
        meter.observe(MediaFrame.parse(VIDEO, ts, payload))
        if n % 3 == 0:
            meter.observe(MediaFrame.parse(AUDIO, ts, AAC))
        clock.now += 1 / fps
    return start_ms + round(frames * step)


# ------------------------------------------------------------------ unit: the meter


def test_bitrate_frame_rate_and_keyframe_interval_come_from_the_frames() -> None:
    clock = Clock()
    meter = FrameMeter(clock)
    feed(meter, clock, seconds=6)
    health = meter.health(segment_seconds=1.0)
    assert health.fps == 30.0
    # per second: 1 keyframe of 1000 B, 29 others of 250 B, 10 audio frames of 100 B = 9250 B = 74 kbit/s
    assert health.bitrate_kbps == 74
    assert health.keyframe_interval_s == 1.0
    assert health.warnings == ()
    assert health.dropped_frames == 0


def test_a_keyframe_interval_longer_than_a_segment_is_a_warning() -> None:
    clock = Clock()
    meter = FrameMeter(clock)
    feed(meter, clock, seconds=7, gop=60)
    health = meter.health(segment_seconds=1.0)
    assert health.keyframe_interval_s == 2.0
    assert health.warnings == ("keyframe_interval",)
    assert "keyframe_interval" not in meter.health(segment_seconds=2.0).warnings


def test_gaps_in_the_timestamps_are_dropped_frames_and_silence_is_a_stall() -> None:
    clock = Clock()
    meter = FrameMeter(clock)
    after = feed(meter, clock, seconds=2)
    # five frames (167 ms) never sent: the next one comes six frame intervals later
    feed(meter, clock, seconds=1, start_ms=after + 167)
    assert meter.health(segment_seconds=1.0).dropped_frames == 5
    clock.now += 3
    health = meter.health(segment_seconds=1.0)
    assert "stalled" in health.warnings
    assert health.fps < 30


def test_a_stream_without_keyframes_is_a_warning() -> None:
    clock = Clock()
    meter = FrameMeter(clock)
    for n in range(200):
        meter.observe(MediaFrame.parse(VIDEO, n * 33, AVC_INTER))
        clock.now += 1 / 30
    health = meter.health(segment_seconds=1.0)
    assert health.keyframe_interval_s is None
    assert health.warnings == ("no_keyframe",)


def test_a_consumer_cut_off_for_lagging_is_counted() -> None:
    relay = StreamRelay(uuid.uuid4())
    relay.push(MediaFrame.parse(VIDEO, 0, AVC_KEY))
    slow = relay.subscribe()
    for n in range(MAX_QUEUE + 1):
        relay.push(MediaFrame.parse(VIDEO, 33 * (n + 1), AVC_INTER))
    assert slow.lagged
    assert relay.meter.consumer_drops == 1
    assert relay.meter.health(segment_seconds=1.0).consumer_drops == 1


def test_small_changes_are_not_news() -> None:
    base = StreamHealth(1000, 30.0, 1.0, 0, 0, (), 10.0)
    assert not StreamHealth(1030, 30.2, 1.0, 0, 0, (), 12.0).differs(base)
    assert StreamHealth(1100, 30.0, 1.0, 0, 0, (), 12.0).differs(base)
    assert StreamHealth(1000, 29.0, 1.0, 0, 0, (), 12.0).differs(base)
    assert StreamHealth(1000, 30.0, 1.0, 1, 0, (), 12.0).differs(base)
    assert StreamHealth(1000, 30.0, 1.0, 0, 0, ("stalled",), 12.0).differs(base)
    assert base.differs(None)


# ------------------------------------------------------------------ the platform: hub, REST, metrics


class _Stream:
    def __init__(self, camera_id: uuid.UUID, session_id: uuid.UUID) -> None:
        self.camera_id = camera_id
        self.session_id = session_id
        self.engine = "builtin"


@pytest.fixture
def clocked() -> tuple[FrameMeter, Clock]:
    clock = Clock()
    return FrameMeter(clock), clock


def _token(who: Account) -> str:
    return who.headers["Authorization"].removeprefix("Bearer ")


async def _live(client: httpx.AsyncClient, platform: Platform, owner: Account) -> tuple[str, uuid.UUID]:
    camera = await make_camera(client, owner)  # private
    key = await make_key(client, owner, camera["id"])
    grant = await authorize_publish(platform, key["key"])
    assert grant is not None
    return camera["id"], await start_session(platform, grant, engine="builtin")


def _series(platform: Platform, name: str) -> list[str]:
    return [line for line in platform.metrics.render().decode().splitlines() if line.startswith(name)]


@pytest.mark.one_engine
async def test_health_and_viewers_reach_the_cameras_topic_the_api_and_metrics(
    app: FastAPI,
    client: httpx.AsyncClient,
    platform: Platform,
    owner: Account,
    stranger: Account,
    hub: None,
    clocked: tuple[FrameMeter, Clock],
) -> None:
    meter, clock = clocked
    camera_id, session_id = await _live(client, platform, owner)
    camera = uuid.UUID(camera_id)
    streams: dict[uuid.UUID, tuple[LiveStream, FrameMeter]] = {camera: (_Stream(camera, session_id), meter)}
    webrtc = {camera: 0}

    async def count_webrtc(cameras: Any) -> dict[uuid.UUID, int]:
        return dict(webrtc)

    async def count_hls(cameras: Any) -> dict[uuid.UUID, int]:
        return await hls_viewers(platform, cameras)

    monitor = HealthMonitor(
        lambda: streams,
        LiveSink(platform),
        segment_seconds=1.0,
        viewer_counters={"hls": count_hls, "webrtc": count_webrtc},
    )
    topic = f"streams.camera.{camera_id}"
    path = f"/api/streams/cameras/{camera_id}/health"

    # Before any figure: live, no health yet. Others may not look.
    assert (await client.get(path, headers=owner.headers)).json() == {"live": True, "health": None}
    assert (await client.get(path, headers=stranger.headers)).status_code == 404
    assert (await client.get(path)).status_code == 401
    other = await make_camera(client, owner)
    other_token = (
        await client.post(f"/api/streams/cameras/{other['id']}/playback-token", headers=owner.headers)
    ).json()["token"]
    refused = await client.get(path, headers={"Authorization": f"Bearer {other_token}"})
    assert (refused.status_code, refused.json()["code"]) == (403, "playback_token_scope")

    async with connected(app, _token(owner)) as mine, connected(app, _token(stranger)) as theirs:
        assert (await mine.request("subscribe", topic=topic))["ok"]
        denied = await theirs.request("subscribe", topic=topic)
        assert denied["ok"] is False
        assert denied["error"]["code"] == "forbidden"

        feed(meter, clock, seconds=6, gop=60)
        # two HLS players (a third request by the first one counts once), one WebRTC viewer
        hls = camera_hls_dir(platform, camera)
        hls.mkdir(parents=True)
        (hls / "index.m3u8").write_text("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\nseg_000000.ts\n")
        token = (
            await client.post(f"/api/streams/cameras/{camera_id}/playback-token", headers=owner.headers)
        ).json()["token"]
        for agent in ("player-a", "player-b", "player-a"):
            played = await client.get(
                f"/streams/media/{camera_id}/index.m3u8",
                headers={"User-Agent": agent},
                params={"token": token},
            )
            assert played.status_code == 200, played.text
        webrtc[camera] = 1
        assert await monitor.tick() == 1

        health = (await mine.event(topic))["data"]
        assert health["type"] == "camera.health"
        assert (health["camera_id"], health["session_id"]) == (camera_id, str(session_id))
        assert (health["fps"], health["keyframe_interval_s"]) == (30.0, 2.0)
        assert health["warnings"] == ["keyframe_interval"]
        assert health["viewers"] == {"hls": 2, "webrtc": 1}
        viewers = (await mine.event(topic))["data"]
        assert viewers == {
            "type": "camera.viewers",
            "camera_id": camera_id,
            "hls": 2,
            "webrtc": 1,
            "total": 3,
        }

        read = (await client.get(path, headers=owner.headers)).json()
        assert read["live"] is True
        assert read["health"] == health

        # Nothing changed: nothing is published; a change is.
        await monitor.tick()
        webrtc[camera] = 0
        await monitor.tick()
        assert (await mine.event(topic))["data"]["type"] == "camera.viewers"
        assert [e["data"]["type"] for e in mine.pending_events()] == []
        assert theirs.pending_events() == []

        label = f'camera="{camera_id}"'
        assert any(label in line for line in _series(platform, "pentad_streams_frame_rate"))
        assert any(
            label in line and 'protocol="hls"' in line for line in _series(platform, "pentad_streams_viewers")
        )
        assert 'pentad_streams_live{engine="builtin"} 1.0' in _series(platform, "pentad_streams_live")

        # The stream ends: its series and figures go.
        await end_session(platform, session_id, "publisher_left")
        streams.clear()
        await monitor.tick()
        assert not any(label in line for line in _series(platform, "pentad_streams_frame_rate"))
        assert 'pentad_streams_live{engine="builtin"} 0.0' in _series(platform, "pentad_streams_live")
        assert (await client.get(path, headers=owner.headers)).json() == {"live": False, "health": None}


class _Refusing:
    async def authorize(self, raw_key: str) -> None:
        return None


@pytest.mark.one_engine
async def test_refused_publishers_are_counted_by_reason(platform: Platform) -> None:
    refusals = metrics.refusals(platform)
    media = MediaService(
        StreamsSettings(),
        _Refusing(),  # type: ignore[arg-type]
        root=platform.data_dir,
        socket_dir=platform.data_dir,
        processes=None,  # type: ignore[arg-type]
        on_refused=lambda reason: refusals.labels(reason).inc(),
    )

    async def drop(reason: str) -> None:
        return None

    assert await media.open_stream("psk_wrong", engine="builtin", peer="127.0.0.1", drop=drop) is None
    assert 'pentad_streams_publish_refusals_total{reason="unknown_or_revoked_key"} 1.0' in _series(
        platform, "pentad_streams_publish_refusals_total"
    )


@pytest.mark.one_engine
async def test_the_health_page_is_for_those_who_may_view_the_camera(
    client: httpx.AsyncClient, platform: Platform, owner: Account, stranger: Account
) -> None:
    camera = await make_camera(client, owner)  # private
    path = f"/streams/cameras/{camera['id']}/health"
    anonymous = await client.get(path)
    assert anonymous.status_code in (302, 303)
    assert anonymous.headers["location"].startswith("/login")
    for who, status in ((stranger, 404), (owner, 200)):
        client.cookies.clear()
        signed_in = await client.post("/login", data={"email": who.user.email, "password": DEFAULT_PASSWORD})
        assert signed_in.status_code == 303
        page = await client.get(path)
        assert page.status_code == status
    assert f'data-topic="streams.camera.{camera["id"]}"' in page.text
    assert "/static/vendor/uplot/uPlot.iife.min.js" in page.text
