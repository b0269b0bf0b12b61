"""The adaptive ladder (a camera's profile `ladder`, media/ladder.py) end to end on both ingest engines: a
real `pentad serve` (SQLite) per engine, a real ffmpeg publisher (640x360 test picture and a tone) on a
private ladder camera, a small ladder (PENTAD_STREAMS__LADDER=360:600,240:300) so the re-encode stays
cheap. Through the media routes: the master lists each rung with BANDWIDTH, RESOLUTION and CODECS; each
rendition is H.264 at its height with the AAC, its segments start on keyframes (ffprobe); the playback
token is carried into every rendition and segment URI, and nothing of the ladder plays without it or
with another camera's token; the stream key is in no playlist."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from pentad.apps.streams.media.ladder import ladder_argv
from pentad.apps.streams.settings import StreamsSettings
from tests.apps.streams.media_node import (
    OWNER,
    PASSWORD,
    MediaNode,
    node_env,
    publishing,
    require_ffmpeg,
    require_nginx,
)
from tests.apps.streams.support import playlist_uris, probe_streams, starts_on_keyframe
from tests.apps.streams.test_ingest_nginx import NginxNode
from tests.factories import free_port

pytestmark = pytest.mark.slow

RUNGS = {"360p": (640, 360), "240p": (426, 240)}
STREAM_INF = re.compile(r"#EXT-X-STREAM-INF:(.*)\n([^#\n]+)")


@dataclass(frozen=True)
class Ladder:
    node: MediaNode
    camera: uuid.UUID
    key: str
    token: str
    other_token: str

    def url(self, path: str) -> str:
        return f"{self.node.base_url}/streams/media/{self.camera}/{path}"


def _token(client: httpx.Client, camera: uuid.UUID) -> str:
    made = client.post(f"/api/streams/cameras/{camera}/playback-token")
    assert made.status_code in (200, 201), made.text
    token: str = made.json()["token"]
    return token


def _rendition_ready(ladder: Ladder) -> bool:
    """Both renditions list two segments (ffmpeg writes the master with the first segments)."""
    master = httpx.get(ladder.url("index.m3u8"), params={"token": ladder.token}, timeout=5)
    if master.status_code != 200 or "#EXT-X-STREAM-INF" not in master.text:
        return False
    for uri in playlist_uris(master.text):
        rendition = httpx.get(ladder.url(uri), timeout=5)
        if rendition.status_code != 200 or len(playlist_uris(rendition.text)) < 2:
            return False
    return True


@pytest.fixture(scope="module", params=["builtin", "nginx"])
def ladder(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ladder]:
    engine: str = request.param
    require_ffmpeg()
    if engine == "nginx":
        require_nginx()
    root = tmp_path_factory.mktemp(f"ladder-{engine}")
    env = node_env(root) | {
        "PENTAD_STREAMS__ENGINE": engine,
        "PENTAD_STREAMS__RTMP_HOST": "127.0.0.1",
        "PENTAD_STREAMS__LADDER": ",".join(f"{h}:{k}" for h, k in ((360, 600), (240, 300))),
        "PENTAD_RATELIMIT__ENABLED": "false",
    }
    node = (NginxNode if engine == "nginx" else MediaNode)(env, root / "serve.log", free_port())
    node.prepare()
    made = node.cli("streams", "cameras", "create", "Lobby", "--owner", OWNER, "--profile", "ladder")
    camera = uuid.UUID(re.search(r"\(([0-9a-f-]{36})\)", made).group(1))  # type: ignore[union-attr]
    other = node.new_camera("private")
    _, key = node.new_key(camera)
    with node.serving() as server:
        node.pid = server.pid
        with httpx.Client(base_url=node.base_url, timeout=30) as client:
            login = client.post("/api/auth/login", json={"email": OWNER, "password": PASSWORD})
            assert login.status_code == 200, login.text
            client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
            found = Ladder(node, camera, key, _token(client, camera), _token(client, other))
        with publishing(node.rtmp_url(key), root / "publisher.log"):
            node.wait(lambda: _rendition_ready(found), "the ladder's renditions", timeout=60)
            yield found


def test_the_master_lists_each_rung_and_each_rendition_starts_its_segments_on_keyframes(
    ladder: Ladder,
) -> None:
    master = httpx.get(ladder.url("index.m3u8"), params={"token": ladder.token})
    assert master.status_code == 200
    assert master.headers["cache-control"] == "no-cache"
    entries = STREAM_INF.findall(master.text)
    assert [uri.split("/")[0] for _, uri in entries] == list(RUNGS)
    bandwidths = []
    for attributes, uri in entries:
        name = uri.split("/")[0]
        width, height = RUNGS[name]
        assert f"RESOLUTION={width}x{height}" in attributes
        assert re.search(r'CODECS="avc1\.[0-9a-f]{6},mp4a\.40\.2"', attributes), attributes
        bandwidths.append(int(re.search(r"BANDWIDTH=(\d+)", attributes).group(1)))  # type: ignore[union-attr]
        # The token and the live session are carried into the rendition's URI...
        assert uri == f"{name}/index.m3u8?s={_session(uri)}&token={ladder.token}"
        rendition = httpx.get(ladder.url(uri))
        assert rendition.status_code == 200
        segments = playlist_uris(rendition.text)
        # ... and into its segments'.
        assert all(s.endswith(f"&token={ladder.token}") for s in segments), segments
        for segment in segments[-2:]:
            assert starts_on_keyframe(ladder.url(f"{name}/{segment}")), segment
        streams = probe_streams(ladder.url(uri))
        assert (streams["video"]["codec_name"], streams["video"]["height"]) == ("h264", height)
        assert streams["audio"]["codec_name"] == "aac"
        assert ladder.key not in rendition.text
    assert bandwidths == sorted(bandwidths, reverse=True)
    assert ladder.key not in master.text


def _session(uri: str) -> str:
    found = re.search(r"[?&]s=([0-9a-f]+)", uri)
    assert found, uri
    return found.group(1)


def test_nothing_of_a_private_ladder_plays_without_its_token(ladder: Ladder) -> None:
    master = httpx.get(ladder.url("index.m3u8"), params={"token": ladder.token})
    rendition_uri = playlist_uris(master.text)[0]
    rendition_path = rendition_uri.split("?")[0]
    session = _session(rendition_uri)
    segment_path = (
        rendition_path.rsplit("/", 1)[0]
        + "/"
        + playlist_uris(httpx.get(ladder.url(rendition_uri)).text)[-1].split("?")[0]
    )
    for path in ("index.m3u8", rendition_path, segment_path):
        none = httpx.get(ladder.url(path), params={"s": session})
        assert none.status_code == 401, (path, none.text)
        assert none.json()["code"] == "playback_token_required"
        other = httpx.get(ladder.url(path), params={"s": session, "token": ladder.other_token})
        assert other.status_code == 403, (path, other.text)
        assert other.json()["code"] == "playback_token_scope"
        forged = httpx.get(ladder.url(path), params={"s": session, "token": ladder.token[:-3] + "AAA"})
        assert forged.status_code == 401, (path, forged.text)
        good = httpx.get(ladder.url(path), params={"s": session, "token": ladder.token})
        assert good.status_code == 200, (path, good.text)
    segment = httpx.get(ladder.url(segment_path), params={"s": session, "token": ladder.token})
    assert segment.headers["cache-control"].startswith("private")
    # What the ladder does not write is not found, with the token (traversal: test_media_endpoints.py).
    for path in ("720p/index.m3u8", "360p/360p/index.m3u8", "360p/seg_999999.ts", "360p/index.m3u8.tmp"):
        missing = httpx.get(ladder.url(path), params={"s": session, "token": ladder.token})
        assert missing.status_code == 404, path
        assert missing.json()["code"] == "media_not_found"


def test_the_ladder_runs_one_supervised_ffmpeg_per_stream(ladder: Ladder) -> None:
    started = [
        line for line in ladder.node.log_events("hls_packager_started") if '"profile":"ladder"' in line
    ]
    assert len(started) == 1
    assert str(ladder.camera) in started[0]
    media = Path(ladder.node.media_dir) / "hls" / str(ladder.camera)
    assert sorted(p.name for p in media.iterdir() if p.is_dir()) == sorted(RUNGS)
    for path in media.rglob("*"):
        assert ladder.key not in path.name


def test_the_rendition_map_names_audio_only_when_the_stream_has_some() -> None:
    settings = StreamsSettings(ladder="480:1200,720:2800,360:700")
    with_audio = ladder_argv(settings, "unix:/x.sock", Path("/m/hls/c"), audio=True)
    silent = ladder_argv(settings, "unix:/x.sock", Path("/m/hls/c"), audio=False)
    streams = with_audio[with_audio.index("-var_stream_map") + 1]
    assert streams == "v:0,a:0,name:720p v:1,a:1,name:480p v:2,a:2,name:360p"
    assert silent[silent.index("-var_stream_map") + 1] == "v:0,name:720p v:1,name:480p v:2,name:360p"
    assert with_audio.count("0:a") == 3
    assert "0:a" not in silent
    assert with_audio[-1] == "/m/hls/c/%v/index.m3u8"
    assert with_audio[with_audio.index("-master_pl_name") + 1] == "index.m3u8"
    assert "expr:gte(t,n_forced*1)" in with_audio
    assert [with_audio[with_audio.index(f"-b:v:{i}") + 1] for i in range(3)] == ["2800k", "1200k", "700k"]
