"""WebRTC end to end (WHEP playback, WHIP ingest) against a real `pentad serve` (SQLite, the built-in RTMP
engine) with real ffmpeg publishers (a synthetic camera: test picture and a tone, H.264 + AAC) and aiortc
as the other peer, on loopback (WEBRTC__HOST_ADDRESSES=127.0.0.1, ALLOWED_PEER_NETWORKS=127.0.0.0/8).

- WHEP: aiortc decodes the forwarded H.264 (at the publisher's size) and the Opus audio; a private camera
  plays with its playback token (header or query) and with nothing else (the deny side); the viewer limit;
  a viewer that goes away without DELETE is cleaned up; DELETE, PATCH (405) and bad offers.
- WHIP: aiortc publishes H.264 and an Opus tone with the camera's key and the stream becomes HLS with AAC
  sound (ffprobe reads it) and plays over WHEP with Opus; a wrong, another camera's or a revoked key is
  refused before anything is stored; the key appears nowhere in the server's log.
"""

from __future__ import annotations

import array
import asyncio
import fractions
import math
import os
import secrets
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from aiortc.mediastreams import MediaStreamTrack

from pentad.apps.streams.media.webrtc.ice import use_host_addresses
from tests.apps.streams.support import (
    child,
    needs_ffmpeg,
    playlist_uris,
    probe_streams,
    publish_command,
    wait_for,
)
from tests.factories import free_port
from tests.servers import VENV_BIN, serving

pytestmark = [pytest.mark.slow, needs_ffmpeg]

MAX_VIEWERS = 3
READ_SECONDS = 30.0


@dataclass(frozen=True)
class Node:
    base_url: str
    data_dir: Path
    headers: dict[str, str]
    public_id: str
    private_id: str
    offline_id: str
    whip_id: str
    whip_key: str
    whip_key_id: str
    public_key: str

    @property
    def log(self) -> Path:
        return self.data_dir / "server.log"


def _pentad(env: dict[str, str], cwd: Path, *args: str) -> None:
    subprocess.run(
        [str(VENV_BIN / "pentad"), *args], env=env, cwd=cwd, check=True, capture_output=True, timeout=60
    )


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    data_dir = tmp_path_factory.mktemp("streams-webrtc")
    rtmp_port, http_port = free_port(), free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("PENTAD_")}
    env |= {
        "PENTAD_DATA_DIR": str(data_dir),
        "PENTAD_DATABASE__URL": f"sqlite+aiosqlite:///{data_dir / 'pentad.db'}",
        "PENTAD_LOG__LEVEL": "DEBUG",
        "PENTAD_APPS": "streams",
        "PENTAD_SERVER__BASE_URL": f"http://127.0.0.1:{http_port}",
        "PENTAD_RATELIMIT__ENABLED": "false",
        "PENTAD_STREAMS__RTMP_HOST": "127.0.0.1",
        "PENTAD_STREAMS__RTMP_PORT": str(rtmp_port),
        "PENTAD_STREAMS__WEBRTC__HOST_ADDRESSES": "127.0.0.1",
        "PENTAD_STREAMS__WEBRTC__ALLOWED_PEER_NETWORKS": "127.0.0.0/8",
        "PENTAD_STREAMS__WEBRTC__MAX_VIEWERS": str(MAX_VIEWERS),
    }
    email, password = "owner@example.com", secrets.token_urlsafe(18)
    _pentad(env, data_dir, "migrate")
    _pentad(env, data_dir, "user", "create", "--email", email, "--password", password, "--name", "Owner")
    with serving(env, data_dir, http_port, data_dir / "server.log") as base_url:
        login = httpx.post(f"{base_url}/api/auth/login", json={"email": email, "password": password})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        ids: dict[str, str] = {}
        keys: dict[str, dict[str, Any]] = {}
        for name, visibility, source in (
            ("public", "public", "rtmp"),
            ("private", "private", "rtmp"),
            ("offline", "public", "rtmp"),
            ("whip", "public", "whip"),
        ):
            made = httpx.post(
                f"{base_url}/api/streams/cameras",
                json={"name": name, "visibility": visibility, "source": source},
                headers=headers,
            )
            assert made.status_code == 201, made.text
            ids[name] = made.json()["id"]
            key = httpx.post(f"{base_url}/api/streams/cameras/{ids[name]}/keys", json={}, headers=headers)
            assert key.status_code == 201, key.text
            keys[name] = key.json()
        with (
            child(
                publish_command(f"rtmp://127.0.0.1:{rtmp_port}/live/{keys['public']['key']}"),
                data_dir / "publisher-public.log",
            ),
            child(
                publish_command(
                    f"rtmp://127.0.0.1:{rtmp_port}/live/{keys['private']['key']}", size="320x180"
                ),
                data_dir / "publisher-private.log",
            ),
        ):
            for name in ("public", "private"):
                query = "" if name == "public" else "?token=" + _token(base_url, headers, ids[name])
                wait_for(
                    lambda n=name, q=query: _playlist_ok(base_url, ids[n], q),
                    f"the {name} camera's HLS",
                    30,
                    log=data_dir / "server.log",
                )
            yield Node(
                base_url,
                data_dir,
                headers,
                ids["public"],
                ids["private"],
                ids["offline"],
                ids["whip"],
                keys["whip"]["key"],
                keys["whip"]["id"],
                keys["public"]["key"],
            )


def _playlist_ok(base_url: str, camera_id: str, query: str) -> bool:
    try:
        response = httpx.get(f"{base_url}/streams/media/{camera_id}/index.m3u8{query}", timeout=5)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and len(playlist_uris(response.text)) >= 2


def _token(base_url: str, headers: dict[str, str], camera_id: str) -> str:
    response = httpx.post(f"{base_url}/api/streams/cameras/{camera_id}/playback-token", headers=headers)
    assert response.status_code in (200, 201), response.text
    token: str = response.json()["token"]
    return token


@pytest.fixture(scope="module", autouse=True)
def loopback_candidates() -> Iterator[None]:
    """aiortc in this process (the test's peer) offers 127.0.0.1, which aioice leaves out by default."""
    use_host_addresses(["127.0.0.1"])
    yield
    use_host_addresses([])


@pytest.fixture
async def client(node: Node) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=node.base_url, timeout=30) as http:
        yield http


def _problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code


@dataclass
class Viewer:
    pc: RTCPeerConnection
    location: str
    tracks: dict[str, MediaStreamTrack]


async def _offer_pc(*, audio: bool = True) -> RTCPeerConnection:
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    if audio:
        pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    return pc


async def _watch(
    client: httpx.AsyncClient, camera_id: str, *, headers: dict[str, str] | None = None, query: str = ""
) -> Viewer:
    pc = await _offer_pc()
    tracks: dict[str, MediaStreamTrack] = {}
    pc.on("track", lambda track: tracks.__setitem__(track.kind, track))
    response = await client.post(
        f"/streams/whep/{camera_id}{query}",
        content=pc.localDescription.sdp,
        headers={"Content-Type": "application/sdp", **(headers or {})},
    )
    if response.status_code != 201:
        await pc.close()
        raise AssertionError(f"{response.status_code} {response.text}")
    assert response.headers["content-type"].startswith("application/sdp")
    await pc.setRemoteDescription(RTCSessionDescription(response.text, "answer"))
    return Viewer(pc, response.headers["location"], tracks)


async def _frames(track: MediaStreamTrack, count: int) -> list[Any]:
    frames = []
    while len(frames) < count:
        frames.append(await track.recv())
    return frames


async def _end(client: httpx.AsyncClient, viewer: Viewer) -> None:
    response = await client.delete(viewer.location)
    assert response.status_code == 200, response.text
    await viewer.pc.close()


async def test_whep_plays_the_rtmp_stream_h264_forwarded_with_opus_audio(
    node: Node, client: httpx.AsyncClient
) -> None:
    viewer = await _watch(client, node.public_id)
    assert viewer.location.startswith(f"/streams/whep/{node.public_id}/sessions/")
    assert set(viewer.tracks) == {"video", "audio"}
    video, audio = await asyncio.wait_for(
        asyncio.gather(_frames(viewer.tracks["video"], 45), _frames(viewer.tracks["audio"], 50)), READ_SECONDS
    )
    # Decoded pictures at the publisher's size (passthrough: no scaling, no re-encoding) that move on.
    assert {(frame.width, frame.height) for frame in video} == {(640, 360)}
    assert video[-1].pts > video[0].pts
    assert audio[0].sample_rate == 48_000
    # The tone is there: Opus decoded to something that is not silence.
    assert any(max(map(abs, array.array("h", bytes(frame.planes[0])))) > 1000 for frame in audio[-10:])
    sdp = viewer.pc.remoteDescription.sdp
    assert "H264/90000" in sdp
    assert "VP8" not in sdp
    assert "opus/48000" in sdp
    await _end(client, viewer)
    assert (await client.delete(viewer.location)).status_code == 404  # ended once


async def test_whep_of_a_private_camera_needs_that_cameras_token(
    node: Node, client: httpx.AsyncClient
) -> None:
    token = _token(node.base_url, node.headers, node.private_id)
    other = _token(node.base_url, node.headers, node.public_id)
    offer = (await _offer_pc()).localDescription.sdp
    sdp = {"Content-Type": "application/sdp"}
    url = f"/streams/whep/{node.private_id}"
    none = await client.post(url, content=offer, headers=sdp)
    _problem(none, 401, "playback_token_required")
    scoped = await client.post(url, content=offer, headers={**sdp, "Authorization": f"Bearer {other}"})
    _problem(scoped, 403, "playback_token_scope")
    forged = await client.post(
        url, content=offer, headers={**sdp, "Authorization": f"Bearer {token[:-3]}AAA"}
    )
    _problem(forged, 401, "playback_token_invalid")
    # API credentials do not stand in for a token (players send none), as on the HLS routes.
    owner = await client.post(url, content=offer, headers={**sdp, **node.headers})
    assert owner.status_code in (401, 403)

    for how in ({"headers": {"Authorization": f"Bearer {token}"}}, {"query": f"?token={token}"}):
        viewer = await _watch(client, node.private_id, **how)  # type: ignore[arg-type]
        (video,) = await asyncio.wait_for(asyncio.gather(_frames(viewer.tracks["video"], 5)), READ_SECONDS)
        assert (video[0].width, video[0].height) == (320, 180)
        await _end(client, viewer)


async def test_whep_refuses_what_it_cannot_play(node: Node, client: httpx.AsyncClient) -> None:
    offer = (await _offer_pc()).localDescription.sdp
    sdp = {"Content-Type": "application/sdp"}
    offline = await client.post(f"/streams/whep/{node.offline_id}", content=offer, headers=sdp)
    _problem(offline, 404, "stream_offline")
    unknown = await client.post(
        f"/streams/whep/{'0' * 8}-0000-4000-8000-{'0' * 12}", content=offer, headers=sdp
    )
    _problem(unknown, 404, "camera_not_found")
    json_body = await client.post(f"/streams/whep/{node.public_id}", json={"sdp": offer})
    assert json_body.status_code == 415
    garbage = await client.post(f"/streams/whep/{node.public_id}", content=b"hello", headers=sdp)
    _problem(garbage, 400, "bad_offer")
    assert garbage.headers["content-type"].startswith("application/problem+json")
    # An offer without H.264 (VP8 only) cannot be forwarded without re-encoding.
    vp8 = "\r\n".join(
        line for line in offer.split("\r\n") if "H264" not in line and "packetization-mode" not in line
    )
    assert "H264" not in vp8
    refused = await client.post(f"/streams/whep/{node.public_id}", content=vp8, headers=sdp)
    _problem(refused, 400, "no_h264")
    missing = await client.delete(f"/streams/whep/{node.public_id}/sessions/{'ab' * 16}")
    _problem(missing, 404, "webrtc_session_not_found")
    bad_id = await client.delete(f"/streams/whep/{node.public_id}/sessions/nope")
    assert bad_id.status_code == 404
    patch = await client.patch(
        f"/streams/whep/{node.public_id}/sessions/{'ab' * 16}",
        content=b"a=candidate:1 1 udp 1 127.0.0.1 9 typ host",
        headers={"Content-Type": "application/trickle-ice-sdpfrag"},
    )
    assert patch.status_code == 405


async def test_whep_viewer_limit_and_cleanup_of_viewers_that_leave(
    node: Node, client: httpx.AsyncClient
) -> None:
    viewers = [await _watch(client, node.public_id) for _ in range(MAX_VIEWERS)]
    await asyncio.wait_for(asyncio.gather(*(_frames(v.tracks["video"], 1) for v in viewers)), READ_SECONDS)
    offer = (await _offer_pc()).localDescription.sdp
    full = await client.post(
        f"/streams/whep/{node.public_id}", content=offer, headers={"Content-Type": "application/sdp"}
    )
    _problem(full, 503, "webrtc_capacity")
    # One viewer goes away without DELETE (closes its peer connection): its place is freed.
    gone = viewers.pop()
    await gone.pc.close()

    async def freed() -> None:
        while (await client.delete(gone.location)).status_code != 404:  # noqa: ASYNC110
            await asyncio.sleep(0.2)

    await asyncio.wait_for(freed(), READ_SECONDS)
    again = await _watch(client, node.public_id)
    for viewer in [*viewers, again]:
        await _end(client, viewer)


class _Camera(VideoStreamTrack):
    """A browser-like camera: 320x240 frames at 30 fps (aiortc encodes them as H.264)."""

    async def recv(self) -> Any:
        frame = await super().recv()
        return frame.reformat(width=320, height=240)


class _Tone(MediaStreamTrack):
    """A browser-like microphone: a 440 Hz tone, 20 ms frames in real time (aiortc encodes them as Opus)."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.samples = 0
        self.started: float | None = None

    async def recv(self) -> Any:
        loop = asyncio.get_running_loop()
        if self.started is None:
            self.started = loop.time()
        await asyncio.sleep(max(0.0, self.started + self.samples / 48_000 - loop.time()))
        wave = [int(8000 * math.sin(2 * math.pi * 440 * (self.samples + n) / 48_000)) for n in range(960)]
        frame = av.AudioFrame(format="s16", layout="mono", samples=960)
        frame.planes[0].update(array.array("h", wave).tobytes())
        frame.sample_rate = 48_000
        frame.pts = self.samples
        frame.time_base = fractions.Fraction(1, 48_000)
        self.samples += 960
        return frame


async def _publish(
    client: httpx.AsyncClient, camera_id: str, key: str, *, audio: bool = False
) -> tuple[RTCPeerConnection, httpx.Response]:
    pc = RTCPeerConnection()
    pc.addTransceiver(_Camera(), direction="sendonly")
    if audio:
        pc.addTransceiver(_Tone(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    response = await client.post(
        f"/streams/whip/{camera_id}",
        content=pc.localDescription.sdp,
        headers={"Content-Type": "application/sdp", **({"Authorization": f"Bearer {key}"} if key else {})},
    )
    return pc, response


async def test_whip_publisher_becomes_hls_and_whep(node: Node, client: httpx.AsyncClient) -> None:
    """A browser camera (H.264 and Opus): HLS keeps its H.264 as sent and carries its sound as AAC;
    WHEP viewers get both back (Opus)."""
    pc, response = await _publish(client, node.whip_id, node.whip_key, audio=True)
    try:
        assert response.status_code == 201, response.text
        location = response.headers["location"]
        assert location.startswith(f"/streams/whip/{node.whip_id}/sessions/")
        await pc.setRemoteDescription(RTCSessionDescription(response.text, "answer"))

        async def listed() -> None:
            while not await asyncio.to_thread(_playlist_ok, node.base_url, node.whip_id, ""):  # noqa: ASYNC110
                await asyncio.sleep(0.3)

        await asyncio.wait_for(listed(), 90)  # a loaded CI machine is slow to start the packager
        streams = await asyncio.to_thread(
            probe_streams, f"{node.base_url}/streams/media/{node.whip_id}/index.m3u8"
        )
        assert streams["video"]["codec_name"] == "h264"
        assert (streams["video"]["width"], streams["video"]["height"]) == (320, 240)
        assert streams["audio"]["codec_name"] == "aac"
        assert streams["audio"]["sample_rate"] == "48000"
        # The browser camera plays over WebRTC too, with its sound.
        viewer = await _watch(client, node.whip_id)
        assert set(viewer.tracks) == {"video", "audio"}
        video, audio = await asyncio.wait_for(
            asyncio.gather(_frames(viewer.tracks["video"], 5), _frames(viewer.tracks["audio"], 50)),
            READ_SECONDS,
        )
        assert (video[0].width, video[0].height) == (320, 240)
        assert "opus/48000" in viewer.pc.remoteDescription.sdp
        assert any(max(map(abs, array.array("h", bytes(frame.planes[0])))) > 1000 for frame in audio[-10:])
        await _end(client, viewer)
        # DELETE ends the publisher: the camera goes offline.
        ended = await client.delete(location)
        assert ended.status_code == 200
        offline = await client.get(f"/streams/media/{node.whip_id}/index.m3u8")
        _problem(offline, 404, "stream_offline")
    finally:
        await pc.close()


async def test_whip_refuses_bad_keys_before_storing_anything(node: Node, client: httpx.AsyncClient) -> None:
    hls = node.data_dir / "streams" / "hls" / node.offline_id
    offline_dirs = sorted(p.name for p in (node.data_dir / "streams" / "hls").iterdir())
    refused = [
        await _publish(client, node.offline_id, "psk_" + "A" * 43),  # unknown key
        await _publish(client, node.offline_id, node.whip_key),  # another camera's key
        await _publish(client, node.offline_id, ""),  # none
    ]
    made = await client.post(
        f"{node.base_url}/api/streams/cameras/{node.offline_id}/keys", json={}, headers=node.headers
    )
    revoked = made.json()
    gone = await client.delete(
        f"{node.base_url}/api/streams/cameras/{node.offline_id}/keys/{revoked['id']}", headers=node.headers
    )
    assert gone.status_code in (200, 204), gone.text
    refused.append(await _publish(client, node.offline_id, revoked["key"]))
    for pc, response in refused:
        await pc.close()
        assert response.status_code == 401, response.text
        assert response.json()["code"] == "stream_key_invalid"
    assert not hls.exists()
    assert sorted(p.name for p in (node.data_dir / "streams" / "hls").iterdir()) == offline_dirs
    offline = await client.get(f"/streams/media/{node.offline_id}/index.m3u8")
    _problem(offline, 404, "stream_offline")
    # No key (whole or its secret part) in anything the server logged.
    log = node.log.read_text(errors="replace")
    for key in (node.whip_key, revoked["key"], node.public_key):
        assert key not in log
        assert key[4:20] not in log


async def test_revoking_the_key_drops_its_whip_publisher(node: Node, client: httpx.AsyncClient) -> None:
    made = await client.post(f"/api/streams/cameras/{node.whip_id}/keys", json={}, headers=node.headers)
    assert made.status_code == 201, made.text
    key = made.json()
    pc, response = await _publish(client, node.whip_id, key["key"])
    try:
        assert response.status_code == 201, response.text
        await pc.setRemoteDescription(RTCSessionDescription(response.text, "answer"))
        revoked = await client.delete(
            f"/api/streams/cameras/{node.whip_id}/keys/{key['id']}", headers=node.headers
        )
        assert revoked.status_code in (200, 204), revoked.text

        async def offline() -> None:
            while True:
                playlist = await client.get(f"/streams/media/{node.whip_id}/index.m3u8")
                if playlist.status_code == 404 and playlist.json()["code"] == "stream_offline":
                    return
                await asyncio.sleep(0.2)

        await asyncio.wait_for(offline(), READ_SECONDS)
        assert (await client.delete(response.headers["location"])).status_code == 404
    finally:
        await pc.close()
