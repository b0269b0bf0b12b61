"""The streams Python SDK (pentad_streams) against a real `pentad serve` with the media plane (built-in RTMP
engine, SQLite: the SDK speaks only the wire protocols) and a real ffmpeg camera: cameras and keys (made,
rotated, revoked; the secret shown once), the deny side (another account, a playback token of another
camera, bad input changing nothing), live events from the hub, a snapshot of a private camera, and a
continuous recording's timeline and MP4 export followed by its progress events; the blocking client does
the same through its own loop."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from pentad_streams import (
    AsyncStreamsClient,
    CameraChangedEvent,
    CameraLiveEvent,
    EventStream,
    ExportProgressEvent,
    RecordingEvent,
    StreamsAPIError,
    StreamsClient,
    StreamsClosedError,
    StreamsEvent,
    StreamsRealtimeError,
)
from tests.apps.streams.media_node import OWNER, PASSWORD, MediaNode, node_env, publishing, require_ffmpeg
from tests.apps.streams.support import probe_streams
from tests.databases import REQUIRE_SERVICES
from tests.factories import free_port

pytestmark = pytest.mark.slow

STRANGER = "stranger@example.com"
WAIT = 60.0
PUBLISH_SECONDS = 8


@dataclass(frozen=True)
class Stage:
    node: MediaNode
    owner_token: str
    stranger_token: str


def _login(base_url: str, email: str) -> str:
    response = httpx.post(f"{base_url}/api/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    require_ffmpeg()
    root = tmp_path_factory.mktemp("streams-sdk")
    node = MediaNode(node_env(root), root / "serve.log", free_port())
    node.prepare()
    node.cli("user", "create", "--email", STRANGER, "--password", PASSWORD)
    with node.serving():
        yield Stage(node, _login(node.base_url, OWNER), _login(node.base_url, STRANGER))


async def _until(stream: EventStream, check: Callable[[StreamsEvent], bool], what: str) -> StreamsEvent:
    """The first event of the stream that passes `check` (others are skipped)."""
    try:
        async with asyncio.timeout(WAIT):
            while not check(event := await stream.get()):
                pass
    except TimeoutError:
        raise AssertionError(f"no event: {what}") from None
    return event


async def test_cameras_and_keys_and_what_others_may_not_do(stage: Stage) -> None:
    base = stage.node.base_url
    async with (
        AsyncStreamsClient(base, stage.owner_token) as owner,
        AsyncStreamsClient(base, stage.stranger_token) as stranger,
    ):
        camera = await owner.create_camera("Yard", visibility="private", recording_mode="on_demand")
        assert (camera.name, camera.role, camera.can_manage, camera.live) == ("Yard", "owner", True, False)
        assert camera.id in {c.id for c in await owner.my_cameras()}
        renamed = await owner.update_camera(camera.id, name="Back yard")
        assert (await owner.get_camera(camera.id)).name == renamed.name == "Back yard"

        key = await owner.create_key(camera.id, "obs")
        assert key.key.startswith("psk_")
        assert key.publish_url.endswith(f"/{key.key}")
        assert key.key not in repr(key)
        assert key.key not in str(key)
        (listed,) = await owner.list_keys(camera.id)
        assert (listed.id, listed.hint, listed.revoked_at) == (key.id, key.key[-4:], None)
        assert "key" not in listed.model_dump()

        rotated = await owner.rotate_key(camera.id, key.id)
        assert rotated.key != key.key
        assert rotated.name == "obs"
        states = {k.id: k.revoked_at for k in await owner.list_keys(camera.id)}
        assert states[key.id] is not None
        assert states[rotated.id] is None
        await owner.revoke_key(camera.id, rotated.id)
        assert all(k.revoked_at is not None for k in await owner.list_keys(camera.id))

        # Someone else: the private camera does not exist for them; nothing of it is theirs to change.
        assert camera.id not in {c.id for c in await stranger.list_cameras()}
        for attempt in (
            stranger.get_camera(camera.id),
            stranger.list_keys(camera.id),
            stranger.create_key(camera.id),
            stranger.playback_token(camera.id),
            stranger.update_camera(camera.id, name="Mine"),
            stranger.delete_camera(camera.id),
        ):
            with pytest.raises(StreamsAPIError) as refused:
                await attempt
            assert refused.value.status in (403, 404), refused.value
        with pytest.raises(StreamsAPIError) as no_snapshot:
            await stranger.snapshot(camera.id)
        assert no_snapshot.value.status in (403, 404)

        # Shared as a viewer: they see it, but keys stay the owners'.
        await owner.grant(camera.id, STRANGER, "viewer")
        assert (await stranger.get_camera(camera.id)).role == "viewer"
        with pytest.raises(StreamsAPIError) as viewer_keys:
            await stranger.list_keys(camera.id)
        assert viewer_keys.value.status == 403

        # A live-events subscription follows the same rules: a private camera's topic refuses strangers.
        other = await owner.create_camera("Garage")
        with pytest.raises(StreamsRealtimeError) as topic:
            await stranger.subscribe_camera(other.id)
        assert topic.value.code == "forbidden"

        # Bad input: a 4xx problem, and nothing changed.
        before = await owner.get_camera(camera.id)
        with pytest.raises(StreamsAPIError) as bad:
            await owner.update_camera(camera.id, visibility="everyone")
        assert (bad.value.status, bad.value.code) == (422, "validation_failed")
        with pytest.raises(StreamsAPIError) as bad_url:
            await owner.update_camera(camera.id, rtsp_url="http://not-rtsp")
        assert bad_url.value.status == 422
        assert await owner.get_camera(camera.id) == before

        # A token provider: asked again when the server refuses its token, over REST and on the hub.
        for use in ("rest", "hub"):
            given: list[str] = []

            def provider(given: list[str] = given) -> str:
                given.append("bad-token" if not given else stage.owner_token)
                return given[-1]

            async with AsyncStreamsClient(base, token_provider=provider, backoff_max=0.5) as renewing:
                if use == "rest":
                    assert camera.id in {c.id for c in await renewing.my_cameras()}
                else:
                    await renewing.subscribe_camera(other.id)
            assert given == ["bad-token", stage.owner_token], use

        # The socket drops: the client reconnects and resumes the topic; every change arrives once, in order.
        changes = owner.events("camera.updated")
        await owner.subscribe_camera(camera.id)
        assert owner._ws is not None
        await owner._ws.close()
        await owner.update_camera(camera.id, name="Renamed while away")
        await owner.update_camera(camera.id, name="Back again")
        names: list[str] = []
        while not names or names[-1] != "Back again":
            event = await _until(changes, lambda e: isinstance(e, CameraChangedEvent), "camera.updated")
            names.append(event.name)  # type: ignore[union-attr]
        assert names == ["Renamed while away", "Back again"]

        # A fixed token the hub refuses: no endless reconnecting, the client says it is closed.
        async with AsyncStreamsClient(base, "not-a-token", backoff_max=0.5) as refused_client:
            with pytest.raises(StreamsClosedError):
                await refused_client.subscribe_directory()

        await owner.delete_camera(other.id)
        with pytest.raises(StreamsAPIError) as gone:
            await owner.get_camera(other.id)
        assert gone.value.status == 404


async def test_live_events_snapshot_recording_and_export_with_progress(stage: Stage, tmp_path: Path) -> None:
    node = stage.node
    async with (
        AsyncStreamsClient(node.base_url, stage.owner_token) as owner,
        AsyncStreamsClient(node.base_url, stage.stranger_token) as stranger,
    ):
        camera = await owner.create_camera("Porch", visibility="private", recording_mode="continuous")
        other = await owner.create_camera("Shed", visibility="private")
        key = await owner.create_key(camera.id)
        events = owner.events()
        await owner.subscribe_camera(camera.id)

        with publishing(key.publish_url, tmp_path / "publisher.log", seconds=PUBLISH_SECONDS):
            online = await _until(events, lambda e: isinstance(e, CameraLiveEvent), "camera.online")
            assert online == CameraLiveEvent(
                type="camera.online",
                camera_id=camera.id,
                session_id=online.session_id,  # type: ignore[union-attr]
            )
            started = await _until(events, lambda e: e.type == "recording.started", "recording.started")
            assert isinstance(started, RecordingEvent)
            assert started.mode == "continuous"
            assert (await owner.get_camera(camera.id)).live

            # A snapshot of the private camera: the SDK gets the playback token it needs by itself.
            picture = await owner.snapshot(camera.id)
            assert picture[:3] == b"\xff\xd8\xff"
            token = await owner.playback_token(camera.id)
            assert token.urls.hls.endswith(f"token={token.token}")
            assert (await stranger.snapshot(camera.id, token=token.token))[:2] == b"\xff\xd8"
            # The token opens this camera only; without one a stranger gets nothing.
            with pytest.raises(StreamsAPIError) as scope:
                await stranger.snapshot(other.id, token=token.token)
            assert (scope.value.status, scope.value.code) == (403, "playback_token_scope")
            with pytest.raises(StreamsAPIError) as bare:
                await stranger.snapshot(camera.id)
            assert bare.value.status in (401, 403, 404)

            offline = await _until(
                events, lambda e: e.type == "camera.offline", "camera.offline at the end of the stream"
            )
            assert isinstance(offline, CameraLiveEvent)
            assert offline.session_id == online.session_id
        events.close()

        # The timeline holds what was recorded; export 3 seconds of it, following the job's progress.
        timeline = await owner.timeline(camera.id)
        assert len(timeline.recordings) == 1
        assert timeline.recordings[0].stop_reason == "stream_ended"
        assert timeline.spans
        assert sum(span.segments for span in timeline.spans) >= 5
        segments = await owner.segments(camera.id, timeline.spans[0].start, timeline.spans[-1].end)
        assert len(segments) == sum(span.segments for span in timeline.spans)
        # Playback by time: the VOD playlist of the private camera plays with a playback token.
        vod = owner.vod_url(camera.id, timeline.spans[0].start, timeline.spans[0].end, token.token)
        assert probe_streams(vod)["video"]["codec_name"] == "h264"
        start = timeline.spans[0].start + timedelta(seconds=2)
        progress: list[ExportProgressEvent] = []
        async with asyncio.timeout(WAIT):
            done = await owner.export(
                camera.id, start, start + timedelta(seconds=3), on_progress=progress.append
            )
        assert done.status == "done", done
        assert done.size_bytes
        assert progress
        assert progress[-1].status == "done"
        assert all(0.0 <= p.progress <= 1.0 for p in progress)
        assert [p.progress for p in progress] == sorted(p.progress for p in progress)
        assert done.id in {e.id for e in await owner.list_exports(camera.id)}
        saved = await owner.download_export(done.id, tmp_path / "porch.mp4")
        assert saved.stat().st_size == done.size_bytes
        streams = probe_streams(str(saved))
        assert (streams["video"]["codec_name"], streams["audio"]["codec_name"]) == ("h264", "aac")

        # Exports are the operators': a stranger can neither make nor read one.
        with pytest.raises(StreamsAPIError) as refused:
            await stranger.create_export(camera.id, start, start + timedelta(seconds=3))
        assert refused.value.status in (403, 404)
        with pytest.raises(StreamsAPIError) as unseen:
            await stranger.download_export(done.id, tmp_path / "stolen.mp4")
        assert unseen.value.status in (403, 404)
        assert not (tmp_path / "stolen.mp4").exists()
        # A range the wrong way round is refused and queues nothing.
        with pytest.raises(StreamsAPIError) as backwards:
            await owner.create_export(camera.id, start, start - timedelta(seconds=3))
        assert 400 <= backwards.value.status < 500
        assert len(await owner.list_exports(camera.id)) == 1


def test_the_blocking_client_does_the_same_with_its_own_loop(stage: Stage, tmp_path: Path) -> None:
    node = stage.node
    with StreamsClient(node.base_url, stage.owner_token) as owner:
        camera = owner.create_camera("Gate", visibility="public")
        assert camera.id in {entry.id for entry in owner.directory()}
        key = owner.create_key(camera.id, "gate")
        with owner.events("camera.online", "camera.offline") as events:
            owner.subscribe_directory()
            with publishing(key.publish_url, tmp_path / "publisher.log", seconds=4):
                online = events.get(timeout=WAIT)
                assert isinstance(online, CameraLiveEvent)
                assert (online.type, online.camera_id) == ("camera.online", camera.id)
                offline = events.get(timeout=WAIT)
                assert (offline.type, offline.camera_id) == ("camera.offline", camera.id)  # type: ignore[union-attr]
        with pytest.raises(StreamsClosedError):  # closed with its block
            events.get(timeout=1)
        owner.revoke_key(camera.id, key.id)
        assert owner.list_keys(camera.id)[0].revoked_at is not None
        # Public: a snapshot needs no token, but the camera is offline now.
        with pytest.raises(StreamsAPIError) as offline_snapshot:
            owner.snapshot(camera.id)
        assert (offline_snapshot.value.status, offline_snapshot.value.code) == (404, "stream_offline")
    with pytest.raises(StreamsAPIError) as anonymous, StreamsClient(node.base_url, "not-a-token") as nobody:
        nobody.list_cameras()
    assert anonymous.value.status == 401
    assert uuid.UUID(str(camera.id))


PHP = shutil.which("php")
PHP_TEST = Path(__file__).resolve().parents[2] / "sdk" / "php" / "tests" / "client_test.php"


def test_the_php_client_against_the_same_server(stage: Stage) -> None:
    """sdk/php/tests/client_test.php (Debian's php-cli) drives cameras, keys, roles, tokens and recordings;
    what it reports made is then checked here over the Python SDK."""
    if PHP is None:
        if REQUIRE_SERVICES:
            pytest.fail("php-cli is not installed (apt-get install php-cli)")
        pytest.skip("php-cli is not installed (apt-get install php-cli)")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PENTAD_URL": stage.node.base_url,
        "PENTAD_OWNER_TOKEN": stage.owner_token,
        "PENTAD_STRANGER_TOKEN": stage.stranger_token,
        "PENTAD_STRANGER_EMAIL": STRANGER,
    }
    done = subprocess.run([PHP, str(PHP_TEST)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["failures"] == 0
    with StreamsClient(stage.node.base_url, stage.owner_token) as owner:
        camera = owner.get_camera(summary["camera_id"])
        assert (camera.name, camera.visibility) == ("PHP back yard", "private")
        assert all(key.revoked_at is not None for key in owner.list_keys(camera.id))
        assert [grant.role for grant in owner.list_grants(camera.id)] == ["owner"]  # the viewer is gone
        with pytest.raises(StreamsAPIError) as deleted:
            owner.get_camera(summary["deleted_id"])
        assert deleted.value.status == 404
