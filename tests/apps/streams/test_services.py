"""The media plane's control-plane callbacks (services.py DatabaseControlPlane) on every engine, and the
media service's rules (media/service.py MediaService) with a recording control plane: one stream per camera
(the newest publisher wins), the node's cap, revoked keys dropped, a failing packager ends its session."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from pentad.apps import INSTALLED, enabled_apps
from pentad.apps.streams.media import disk
from pentad.apps.streams.media.engines.base import Publication
from pentad.apps.streams.media.packager import hls_dir
from pentad.apps.streams.media.rtsp import PullSource
from pentad.apps.streams.media.service import Grant, MediaService
from pentad.apps.streams.services import SERVICES, DatabaseControlPlane
from pentad.apps.streams.settings import StreamsSettings
from pentad.core.platform import Platform
from tests.apps.streams.support import make_camera, make_key, rows
from tests.conftest import make_settings
from tests.factories import Account

# ------------------------------------------------------------------ the control plane, on the database


async def test_the_control_plane_authorises_records_and_sees_revocations(
    client: httpx.AsyncClient, platform: Platform, owner: Account
) -> None:
    camera = await make_camera(client, owner)
    key = await make_key(client, owner, camera["id"])
    control = DatabaseControlPlane(platform, "node-a")
    assert await control.authorize("psk_" + "x" * 43) is None
    grant = await control.authorize(key["key"])
    assert grant is not None
    assert str(grant.camera_id) == camera["id"]

    session_id = await control.started(grant, engine="builtin")
    (row,) = await rows(platform, "streams_sessions")
    assert (row["id"], row["node"], row["engine"], row["ended_at"]) == (session_id, "node-a", "builtin", None)
    assert await control.revoked([grant.key_id]) == set()

    revoked = await client.delete(
        f"/api/streams/cameras/{camera['id']}/keys/{key['id']}", headers=owner.headers
    )
    assert revoked.status_code == 204, revoked.text
    unknown = uuid.uuid4()
    assert await control.revoked([grant.key_id, unknown]) == {grant.key_id, unknown}

    await control.ended(session_id, "key_revoked", bytes_in=1234)
    (row,) = await rows(platform, "streams_sessions")
    assert (row["end_reason"], row["bytes_in"]) == ("key_revoked", 1234)
    assert row["ended_at"] is not None


async def test_a_restarted_node_ends_the_sessions_it_left_open(
    client: httpx.AsyncClient, platform: Platform, owner: Account
) -> None:
    camera = await make_camera(client, owner)
    key = await make_key(client, owner, camera["id"])
    here, there = DatabaseControlPlane(platform, "node-a"), DatabaseControlPlane(platform, "node-b")
    grant = await here.authorize(key["key"])
    assert grant is not None
    mine = await here.started(grant, engine="builtin")
    theirs = await there.started(grant, engine="builtin")

    assert await here.end_abandoned() == 1
    assert await here.end_abandoned() == 0
    ended = {row["id"]: row for row in await rows(platform, "streams_sessions")}
    assert ended[mine]["end_reason"] == "node_restarted"
    assert ended[theirs]["ended_at"] is None  # another node's stream is not ours to end


# ------------------------------------------------------------------ the media service's rules


@dataclass(frozen=True)
class FakeGrant:
    camera_id: uuid.UUID
    key_id: uuid.UUID
    profile: str = "passthrough"


@dataclass
class Control:
    grants: dict[str, FakeGrant] = field(default_factory=dict)
    gone: set[uuid.UUID] = field(default_factory=set)
    closed: list[tuple[uuid.UUID, str]] = field(default_factory=list)
    broken: bool = False

    def key(self, camera_id: uuid.UUID | None = None) -> str:
        raw = f"psk_{uuid.uuid4().hex}"
        self.grants[raw] = FakeGrant(camera_id or uuid.uuid4(), uuid.uuid4())
        return raw

    async def authorize(self, raw_key: str) -> Grant | None:
        if self.broken:
            raise ConnectionError("database down")
        return self.grants.get(raw_key)

    async def started(self, grant: Grant, *, engine: str) -> uuid.UUID:
        return uuid.uuid4()

    async def ended(self, session_id: uuid.UUID, reason: str, *, bytes_in: int) -> None:
        self.closed.append((session_id, reason))

    async def revoked(self, key_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        return {key_id for key_id in key_ids if key_id in self.gone}

    async def end_abandoned(self) -> int:
        return 0

    async def pull_sources(self) -> list[PullSource]:
        return []

    async def pull_started(self, camera_id: uuid.UUID, *, engine: str) -> uuid.UUID | None:
        return uuid.uuid4()

    async def pull_unreachable(self, camera_id: uuid.UUID, *, attempt: int, retry_in: float) -> None:
        return None


@dataclass
class Processes:
    """Records children instead of starting ffmpeg (the e2e tests run the real one)."""

    started: dict[str, list[str]] = field(default_factory=dict)
    fail: bool = False

    async def start(self, key: str, command: Any, *, restart: bool = False) -> None:
        if self.fail:
            raise OSError("no such file: ffmpeg")
        assert restart
        self.started[key] = list(command)

    async def stop(self, key: str) -> int | None:
        self.started.pop(key, None)
        return 0


@dataclass
class Dropped:
    reasons: list[str] = field(default_factory=list)

    async def __call__(self, reason: str) -> None:
        self.reasons.append(reason)


@pytest.fixture
def media(tmp_path: Path) -> tuple[MediaService, Control, Processes]:
    control, processes = Control(), Processes()
    settings = StreamsSettings(max_streams=2)
    service = MediaService(
        settings, control, root=tmp_path / "m", socket_dir=tmp_path / "s", processes=processes
    )
    (tmp_path / "s").mkdir()
    return service, control, processes


async def _open(service: MediaService, key: str, drop: Dropped | None = None) -> Publication | None:
    return await service.open_stream(key, engine="builtin", peer="127.0.0.1:1", drop=drop or Dropped())


async def test_a_stream_gets_a_packager_and_ends_cleanly(
    media: tuple[MediaService, Control, Processes], tmp_path: Path
) -> None:
    service, control, processes = media
    key = control.key()
    assert await _open(service, "psk_unknown") is None
    publication = await _open(service, key)
    assert publication is not None
    argv = processes.started[f"hls:{publication.camera_id}"]
    assert key not in " ".join(argv)
    assert str(hls_dir(tmp_path / "m", publication.camera_id) / "index.m3u8") == argv[-1]
    await service.close_stream(publication, "unpublished")
    await service.close_stream(publication, "unpublished")  # once
    assert control.closed == [(publication.session_id, "unpublished")]
    assert processes.started == {}
    assert service.streams == {}


async def test_the_newest_publisher_of_a_camera_wins(media: tuple[MediaService, Control, Processes]) -> None:
    service, control, _ = media
    camera = uuid.uuid4()
    first_drop = Dropped()
    first = await _open(service, control.key(camera), first_drop)
    second = await _open(service, control.key(camera))
    assert first is not None
    assert second is not None
    assert first_drop.reasons == ["replaced"]
    assert control.closed == [(first.session_id, "replaced")]
    assert service.streams[camera].publication is second


async def test_the_node_cap_and_a_broken_control_plane_refuse(
    media: tuple[MediaService, Control, Processes],
) -> None:
    service, control, _ = media
    assert await _open(service, control.key()) is not None
    assert await _open(service, control.key()) is not None
    assert await _open(service, control.key()) is None  # MAX_STREAMS=2
    control.broken = True
    assert await _open(service, control.key()) is None


async def test_revoked_keys_drop_their_publishers(media: tuple[MediaService, Control, Processes]) -> None:
    service, control, _ = media
    kept_drop, revoked_drop = Dropped(), Dropped()
    kept = await _open(service, control.key(), kept_drop)
    revoked = await _open(service, control.key(), revoked_drop)
    assert kept is not None
    assert revoked is not None
    assert await service.drop_revoked() == 0
    control.gone.add(revoked.key_id)
    assert await service.drop_revoked() == 1
    assert (kept_drop.reasons, revoked_drop.reasons) == ([], ["key_revoked"])


async def test_a_packager_that_cannot_start_ends_the_session(
    media: tuple[MediaService, Control, Processes],
) -> None:
    service, control, processes = media
    processes.fail = True
    assert await _open(service, control.key()) is None
    assert [reason for _, reason in control.closed] == ["packager_failed"]
    assert service.streams == {}


async def test_a_full_disk_refuses_new_streams(
    media: tuple[MediaService, Control, Processes], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, control, processes = media
    monkeypatch.setattr(disk, "free_bytes", lambda path: disk.MIN_FREE_FOR_LIVE - 1)
    with capture_logs() as logs:
        assert await _open(service, control.key()) is None
    assert any(log.get("reason") == "disk_full" for log in logs)
    assert processes.started == {}
    assert control.closed == []  # refused before any session was opened


def test_the_media_plane_runs_unless_the_node_is_told_it_is_not_a_media_node(tmp_path: Path) -> None:
    """Web nodes of a deployment with a streams node set MEDIA_PLANE=false (docs/deploy.md): their
    `pentad serve` then never starts `streams.ingest` (no second pull of an RTSP camera, no RTMP port)."""
    (ingest,) = [spec for spec in SERVICES if spec.name == "streams.ingest"]
    assert ingest.enabled is not None
    for given, runs in (({}, True), ({"media_plane": False}, False)):
        settings = make_settings(
            tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}", apps=["streams"], streams=given
        )
        platform = Platform.build(settings, enabled_apps(settings), installed=INSTALLED)
        assert ingest.enabled(platform) is runs


def test_the_latency_probe_runs_only_when_enabled(tmp_path: Path) -> None:
    """`streams.latency_probe` is off by default; LATENCY_PROBE__ENABLED (with its camera) turns it on."""
    (probe,) = [spec for spec in SERVICES if spec.name == "streams.latency_probe"]
    assert probe.enabled is not None
    on = {"latency_probe": {"enabled": True, "camera": str(uuid.uuid4())}}
    for given, runs in (({}, False), (on, True)):
        settings = make_settings(
            tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}", apps=["streams"], streams=given
        )
        platform = Platform.build(settings, enabled_apps(settings), installed=INSTALLED)
        assert probe.enabled(platform) is runs
