"""H.264 reframing for WebRTC (media/webrtc/h264.py), ICE candidate rules (media/webrtc/ice.py) and the
WHIP tap turning received access units into relay frames (media/webrtc/hub.py), on real bytes from
ffmpeg's x264 where it matters. No database."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from typing import Any

import aioice.ice
import pytest
import structlog
from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack

from pentad.apps.streams.media.engines.base import Publication
from pentad.apps.streams.media.frames import DATA, VIDEO, MediaFrame
from pentad.apps.streams.media.relay import StreamRelay
from pentad.apps.streams.media.webrtc.h264 import (
    H264Error,
    annexb_nals,
    avcc_nals,
    avcc_to_annexb,
    build_avc_config,
    composition_offset,
    flv_sequence_header,
    flv_video_payload,
    nal_type,
    parse_avc_config,
)
from pentad.apps.streams.media.webrtc.hub import _h264_only, _KeyframeRequests, _tap, _WhipVideo
from pentad.apps.streams.media.webrtc.ice import filter_candidates, use_host_addresses
from pentad.apps.streams.media.webrtc.tracks import RelayVideoTrack
from tests.apps.streams.support import needs_ffmpeg

SPS = bytes.fromhex("6742c01e95a0280bfe5840")
PPS = bytes.fromhex("68ce3c80")
IDR = bytes.fromhex("65888040ffff")
SLICE = bytes.fromhex("419a2211")


def test_avc_config_round_trip() -> None:
    record = build_avc_config(SPS, PPS)
    config = parse_avc_config(record)
    assert config.sps == (SPS,)
    assert config.pps == (PPS,)
    assert config.length_size == 4
    assert config.profile_level_id == "42c01e"
    assert config.annexb == b"\x00\x00\x00\x01" + SPS + b"\x00\x00\x00\x01" + PPS


@pytest.mark.parametrize("record", [b"", b"\x02" + bytes(10), build_avc_config(SPS, PPS)[:-2]])
def test_a_broken_avc_config_is_refused(record: bytes) -> None:
    with pytest.raises(H264Error):
        parse_avc_config(record)


def test_avcc_and_annexb_convert_both_ways() -> None:
    avcc = len(IDR).to_bytes(4, "big") + IDR + len(SLICE).to_bytes(4, "big") + SLICE
    assert list(avcc_nals(avcc)) == [IDR, SLICE]
    annexb = avcc_to_annexb(avcc)
    assert annexb == b"\x00\x00\x00\x01" + IDR + b"\x00\x00\x00\x01" + SLICE
    assert annexb_nals(annexb) == [IDR, SLICE]
    # 3-byte start codes and trailing zero bytes too
    assert annexb_nals(
        b"\x00\x00\x01" + SPS + b"\x00\x00\x00\x01" + PPS + b"\x00\x00\x01" + IDR + b"\x00"
    ) == [
        SPS,
        PPS,
        IDR,
    ]
    with pytest.raises(H264Error):
        list(avcc_nals(b"\x00\x00\x00\x09abc"))
    assert [nal_type(n) for n in (SPS, PPS, IDR, SLICE)] == [7, 8, 5, 1]


def test_flv_bodies() -> None:
    header = flv_sequence_header(SPS, PPS)
    assert header[:2] == b"\x17\x00"
    assert parse_avc_config(header[5:]).sps == (SPS,)
    body = flv_video_payload([IDR], keyframe=True, cts=-40)
    assert body[:2] == b"\x17\x01"
    assert composition_offset(body) == -40
    assert flv_video_payload([SLICE], keyframe=False)[0] == 0x27


async def test_the_video_track_forwards_the_relays_h264_as_annexb_packets() -> None:
    relay = StreamRelay(uuid.uuid4())
    relay.push(flv_frame(VIDEO, 0, flv_sequence_header(SPS, PPS)))
    track = RelayVideoTrack(relay.subscribe())
    relay.push(flv_frame(VIDEO, 1000, flv_video_payload([IDR], keyframe=True, cts=0)))
    relay.push(flv_frame(VIDEO, 1033, flv_video_payload([SLICE], keyframe=False, cts=33)))
    first, second = await track.recv(), await track.recv()
    assert bytes(first) == b"\x00\x00\x00\x01" + SPS + b"\x00\x00\x00\x01" + PPS + b"\x00\x00\x00\x01" + IDR
    assert bytes(second) == b"\x00\x00\x00\x01" + SLICE
    assert first.pts == 0
    assert second.pts == (33 + 33) * 90  # decode time + composition offset, 90 kHz
    track.stop()
    assert relay.subscribers == 0


def flv_frame(kind: int, timestamp: int, payload: bytes) -> MediaFrame:
    return MediaFrame.parse(kind, timestamp, payload)


async def _no_drop(reason: str) -> None:
    return None


def test_the_whip_tap_makes_relay_frames_from_the_first_keyframe() -> None:
    relay = StreamRelay(uuid.uuid4())
    publication = Publication(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), "whip", relay, _no_drop)
    tap = _WhipVideo(publication)
    start = b"\x00\x00\x00\x01"
    tap("H264", start + SLICE, 0)  # before any keyframe and parameter set: dropped
    tap("VP8", b"whatever", 10)
    assert relay.frames_in == 0
    tap("H264", start + SPS + start + PPS + start + IDR, 90_000)
    tap("H264", start + SLICE, 93_000)
    assert relay.metadata["videocodecid"] == 7
    assert not relay.has_audio
    subscription = relay.subscribe()
    frames = [subscription._queue.get_nowait() for _ in range(subscription._queue.qsize())]
    assert [(f.kind, f.config, f.keyframe) for f in frames] == [
        (DATA, True, False),
        (VIDEO, True, False),
        (VIDEO, False, True),
        (VIDEO, False, False),
    ]
    assert parse_avc_config(frames[1].payload[5:]).pps == (PPS,)
    assert list(avcc_nals(frames[2].payload[5:])) == [IDR]
    assert [f.timestamp for f in frames[2:]] == [1000, 1033]


@needs_ffmpeg
def test_real_x264_output_survives_the_round_trip() -> None:
    """x264's Annex-B (what a WHIP browser sends, after RTP depayloading) -> FLV bodies -> Annex-B again."""
    done = subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=10", "-frames:v", "10",
         "-c:v", "libx264", "-g", "5", "-bsf:v", "h264_mp4toannexb", "-f", "h264", "-"],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    nals = annexb_nals(done.stdout)
    kinds = [nal_type(n) for n in nals]
    assert kinds.count(5) == 2
    sps = next(n for n in nals if nal_type(n) == 7)
    pps = next(n for n in nals if nal_type(n) == 8)
    media = [n for n in nals if nal_type(n) in (1, 5)]
    body = flv_video_payload(media, keyframe=True)
    assert annexb_nals(avcc_to_annexb(body[5:])) == media
    assert parse_avc_config(flv_sequence_header(sps, pps)[5:]).sps == (sps,)


def test_host_addresses_replace_aioices_choice() -> None:
    try:
        use_host_addresses(["127.0.0.1", "::1"])
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False) == ["127.0.0.1"]
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1", "::1"]
        with pytest.raises(ValueError, match="IPv4 or IPv6"):
            use_host_addresses(["not-an-address"])
    finally:
        use_host_addresses([])
    assert "127.0.0.1" not in aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False)


def test_remote_candidates_outside_the_allowed_networks_are_dropped() -> None:
    sdp = "\r\n".join(
        [
            "v=0",
            "m=video 9 UDP/TLS/RTP/SAVPF 96",
            "a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host",
            "a=candidate:2 1 udp 2130706431 10.0.0.7 50001 typ host",
            "a=candidate:3 1 udp 2130706431 3f2a1c.local 50002 typ host",
            "a=candidate:4 1 udp",
            "a=end-of-candidates",
        ]
    )
    kept = filter_candidates(sdp, ["127.0.0.0/8"])
    assert "127.0.0.1 50000" in kept
    assert "10.0.0.7" not in kept
    assert ".local" not in kept
    assert "candidate:4" not in kept
    assert "a=end-of-candidates" in kept
    assert filter_candidates(sdp, []) == sdp


class _Camera(VideoStreamTrack):
    """A browser-like camera: aiortc encodes its 320x240 frames as H.264 (a keyframe first, then only
    on demand or every few hundred frames)."""

    async def recv(self) -> Any:
        frame = await super().recv()
        return frame.reformat(width=320, height=240)


async def test_a_whip_publisher_whose_first_keyframe_is_lost_is_asked_for_another_at_once() -> None:
    """The first keyframe of a WHIP publisher can be lost (it is sent before this side's receiver is
    registered): a PLI goes out as soon as media comes without one, and the stream starts at the next."""
    relay = StreamRelay(uuid.uuid4())
    video = _WhipVideo(Publication(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), "whip", relay, _no_drop))
    lost: list[int] = []

    def lossy(codec: str, data: bytes, timestamp: int) -> None:
        if not lost and any(nal_type(nal) == 5 for nal in annexb_nals(data)):
            lost.append(timestamp)  # the first keyframe never arrives
            return
        video(codec, data, timestamp)

    use_host_addresses(["127.0.0.1"])
    publisher, server = RTCPeerConnection(), RTCPeerConnection()
    requests: asyncio.Task[None] | None = None
    try:
        publisher.addTransceiver(_Camera(), direction="sendonly")
        await publisher.setLocalDescription(await publisher.createOffer())
        await server.setRemoteDescription(RTCSessionDescription(publisher.localDescription.sdp, "offer"))
        assert _h264_only(server)
        await server.setLocalDescription(await server.createAnswer())
        (transceiver,) = server.getTransceivers()
        _tap(transceiver.receiver, lossy)
        # An interval far beyond the test: any keyframe request seen here is one of the early ones.
        asking = _KeyframeRequests(transceiver.receiver, video, 3600, structlog.get_logger("test"))
        requests = asyncio.create_task(asking.run())
        await publisher.setRemoteDescription(RTCSessionDescription(server.localDescription.sdp, "answer"))
        await asyncio.wait_for(relay.first_keyframe.wait(), 30)
    finally:
        if requests is not None:
            requests.cancel()
        await publisher.close()
        await server.close()
        use_host_addresses([])
    assert lost  # the first keyframe was there, and dropped
    assert asking.sent >= 1
    assert asking.failures == 0
    assert video.started
    assert video.skipped >= 1
    assert relay.metadata["videocodecid"] == 7
