"""The streams app's long-running services (AppSpec.services).

`streams.ingest` (placement `serve`, one per node, critical; off with MEDIA_PLANE=false): the media plane
(media/service.py) with the engine PENTAD_STREAMS__ENGINE, fed the control plane's answers
(actions/publish.py) as callbacks.

`streams.latency_probe` (placement `serve`, off unless LATENCY_PROBE__ENABLED): publishes a stamped test
camera (media/latency_probe.py) to LATENCY_PROBE__CAMERA over RTMP with a key of its own
(actions/latency.py) and watches it through this server's HTTP address (SERVER__BASE_URL) over WebRTC
(WHEP) and HLS without end; every LATENCY_PROBE__INTERVAL the samples go to Prometheus and the camera's
topic. A viewer that fails (the stream not live yet, a restart) is started again after an interval."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncGenerator, Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from pentad.apps.streams import metrics, repository
from pentad.apps.streams.actions import latency, live, recording
from pentad.apps.streams.actions.publish import (
    PublishGrant,
    authorize_publish,
    end_session,
    pull_unreachable,
    start_session,
)
from pentad.apps.streams.media.engines.nginx_config import callback_secret
from pentad.apps.streams.media.health import FrameMeter, HealthMonitor, LiveStream
from pentad.apps.streams.media.latency_probe import StampedCamera, hls_segments, stamped_camera, whep_frames
from pentad.apps.streams.media.packager import media_root
from pentad.apps.streams.media.recorder import RecordedSegment
from pentad.apps.streams.media.rtsp import PullSource
from pentad.apps.streams.media.service import Grant, MediaService, run_media
from pentad.apps.streams.media.webrtc.hub import WebRtcHub
from pentad.apps.streams.media.webrtc.hub import serve as serve_webrtc
from pentad.apps.streams.settings import StreamsSettings
from pentad.apps.streams.views import rtsp_context
from pentad.core.context import AppContext
from pentad.core.services import ServiceContext, ServiceSpec


class DatabaseControlPlane:
    """media/service.py's ControlPlane over the app's actions."""

    def __init__(self, platform: AppContext, node: str) -> None:
        self.platform = platform
        self.node = node

    async def authorize(self, raw_key: str) -> Grant | None:
        return await authorize_publish(self.platform, raw_key)

    async def started(self, grant: Grant, *, engine: str) -> uuid.UUID:
        assert isinstance(grant, PublishGrant)
        return await start_session(self.platform, grant, engine=engine, node=self.node)

    async def ended(self, session_id: uuid.UUID, reason: str, *, bytes_in: int) -> None:
        await end_session(self.platform, session_id, reason, bytes_in=bytes_in)

    async def end_abandoned(self) -> int:
        """End the sessions this node left open when it died (one media plane per node: none is live now)."""
        async with self.platform.database.transaction(writes=False) as session:
            stale = await repository.open_session_ids_on_node(session, self.node)
        for session_id in stale:
            await end_session(self.platform, session_id, "node_restarted")
        return len(stale)

    async def pull_sources(self) -> list[PullSource]:
        async with self.platform.database.transaction(writes=False) as session:
            cameras = await repository.rtsp_cameras(session)
        sources = []
        for camera in cameras:
            assert camera.rtsp_url_enc is not None
            url = self.platform.keyring.decrypt(camera.rtsp_url_enc, context=rtsp_context(camera.id))
            sources.append(
                PullSource(camera.id, url, camera.rtsp_transport, camera.profile, camera.rtsp_private_allowed)
            )
        return sources

    async def pull_started(self, camera_id: uuid.UUID, *, engine: str) -> uuid.UUID | None:
        async with self.platform.database.transaction(writes=False) as session:
            camera = await repository.get_camera(session, camera_id)
        if camera is None or camera.source != "rtsp":
            return None
        grant = PublishGrant(
            camera.id, None, camera.source, camera.profile, camera.recording_mode, camera.visibility
        )
        return await start_session(self.platform, grant, engine=engine, node=self.node)

    async def pull_unreachable(self, camera_id: uuid.UUID, *, attempt: int, retry_in: float) -> None:
        await pull_unreachable(self.platform, camera_id, attempt=attempt, retry_in=retry_in)

    async def revoked(self, key_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        gone = set()
        async with self.platform.database.transaction(writes=False) as session:
            for key_id in key_ids:
                key = await repository.get_key(session, key_id)
                if key is None or key.revoked_at is not None:
                    gone.add(key_id)
        return gone


class DatabaseRecordingControl:
    """media/service.py's RecordingControl over actions/recording.py."""

    def __init__(self, platform: AppContext) -> None:
        self.platform = platform

    async def recordings(self, live: Mapping[uuid.UUID, uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
        return await recording.reconcile_recordings(self.platform, live)

    async def store_segments(self, camera_id: uuid.UUID, segments: Sequence[RecordedSegment]) -> None:
        await recording.store_segments(self.platform, camera_id, segments)

    async def stream_ended(self, camera_id: uuid.UUID, session_id: uuid.UUID) -> None:
        await recording.end_stream_recordings(self.platform, camera_id, session_id)


def grant_from_message(data: Mapping[str, Any]) -> PublishGrant:
    """A PublishGrant sent through the relay by the WHIP route (webrtc_endpoints.py `grant_message`)."""
    return PublishGrant(
        camera_id=uuid.UUID(str(data["camera_id"])),
        key_id=uuid.UUID(str(data["key_id"])),
        source=str(data["source"]),
        profile=str(data["profile"]),
        recording_mode=str(data["recording_mode"]),
        visibility=str(data["visibility"]),
    )


async def run_ingest(context: ServiceContext) -> None:
    settings = context.platform.app_settings(StreamsSettings)
    root = media_root(settings, Path(context.platform.data_dir))
    control = DatabaseControlPlane(context.platform, socket.gethostname())
    node = socket.gethostname()

    hubs: list[WebRtcHub] = []

    async def webrtc(media: MediaService) -> None:
        hub = WebRtcHub(media, settings, grant=grant_from_message)
        hubs.append(hub)
        try:
            await serve_webrtc(hub, context.platform.relay, node)
        finally:
            hubs.remove(hub)

    async def webrtc_viewers(cameras: Collection[uuid.UUID]) -> dict[uuid.UUID, int]:
        counts = dict.fromkeys(cameras, 0)
        for hub in hubs:
            for peer in list(hub.peers.values()):
                if peer.kind == "whep" and peer.camera_id in counts:
                    counts[peer.camera_id] += 1
        return counts

    async def hls_viewers(cameras: Collection[uuid.UUID]) -> dict[uuid.UUID, int]:
        return await live.hls_viewers(context.platform, cameras)

    async def health(media: MediaService) -> None:
        def streams() -> dict[uuid.UUID, tuple[LiveStream, FrameMeter]]:
            return {
                camera_id: (item.publication, item.publication.relay.meter)
                for camera_id, item in media.streams.items()
            }

        monitor = HealthMonitor(
            streams,
            live.LiveSink(context.platform),
            segment_seconds=settings.hls_segment_seconds,
            viewer_counters={"hls": hls_viewers, "webrtc": webrtc_viewers},
        )
        await monitor.run()

    refusals = metrics.refusals(context.platform)

    await run_media(
        settings,
        control,
        root=root,
        processes=context.processes,
        log=context.log,
        recording=DatabaseRecordingControl(context.platform),
        companions=[webrtc, health],
        callback_secret=callback_secret(context.platform.signing_secret),
        on_refused=lambda reason: refusals.labels(reason).inc(),
    )


def _probe_viewers(
    client: httpx.AsyncClient, base: str, camera_id: uuid.UUID, camera: StampedCamera
) -> dict[str, Callable[[], AsyncGenerator[float, None]]]:
    playlist = f"{base}/media/{camera_id}/index.m3u8"

    async def read() -> str | None:
        answer = await client.get(playlist)
        return answer.text if answer.status_code == 200 else None

    async def fetch(name: str) -> bytes:
        return (await client.get(httpx.URL(playlist).join(name))).content

    return {
        "webrtc": lambda: whep_frames(client, f"{base}/whep/{camera_id}", camera),
        "hls": lambda: hls_segments(camera, read, fetch),
    }


async def run_latency_probe(context: ServiceContext) -> None:
    settings = context.platform.app_settings(StreamsSettings)
    probe = settings.latency_probe
    camera_id = probe.camera
    assert camera_id is not None  # the settings require it when enabled
    host = "127.0.0.1" if settings.rtmp_host in ("0.0.0.0", "") else settings.rtmp_host  # noqa: S104
    base = f"{context.platform.base_url.rstrip('/')}/streams"
    samples: dict[str, list[float]] = {protocol: [] for protocol in probe.protocols}

    async def watch(protocol: str, frames: Callable[[], AsyncGenerator[float, None]]) -> None:
        while True:
            try:
                async with contextlib.aclosing(frames()) as figures:
                    async for figure in figures:
                        samples[protocol].append(figure)
            except Exception as exc:  # any failure of a viewer: log it, watch again
                context.log.info("latency_probe_viewer_restarts", protocol=protocol, error=str(exc)[:200])
            await asyncio.sleep(probe.interval)

    async def report() -> None:
        while True:
            await asyncio.sleep(probe.interval)
            taken = {protocol: values[:] for protocol, values in samples.items()}
            for values in samples.values():
                values.clear()
            await latency.report_latency(context.platform, camera_id, taken)

    async def encoder(camera: StampedCamera) -> None:
        """The test camera's ffmpeg ending (the ingest refused it, went away) restarts the service."""
        await asyncio.to_thread(camera.process.wait)  # the thread ends with the process (closed on stop)
        raise RuntimeError(f"the latency probe's camera (ffmpeg) exited with {camera.process.returncode}")

    application = settings.nginx.application if settings.engine == "nginx" else "live"
    key = await latency.probe_key(context.platform, camera_id)
    try:
        with stamped_camera(
            f"rtmp://{host}:{settings.rtmp_port}/{application}/{key}", ffmpeg=settings.ffmpeg
        ) as camera:
            async with httpx.AsyncClient(timeout=10) as client, asyncio.TaskGroup() as tasks:
                viewers = _probe_viewers(client, base, camera_id, camera)
                for protocol in probe.protocols:
                    tasks.create_task(watch(protocol, viewers[protocol]))
                tasks.create_task(report())
                tasks.create_task(encoder(camera))
    finally:
        await latency.revoke_probe_keys(context.platform, camera_id)


SERVICES = [
    # The child backoff (ffmpeg restarts) is the service's: PROCESS_BACKOFF_BASE/MAX's defaults.
    # Off on the web nodes of a deployment with a streams node (MEDIA_PLANE): one node pulls each RTSP
    # camera and holds the live media, the others reach it over the relay.
    ServiceSpec(
        "streams.ingest",
        run_ingest,
        placement="serve",
        critical=True,
        backoff_base=0.5,
        backoff_max=30.0,
        enabled=lambda context: context.app_settings(StreamsSettings).media_plane,
    ),
    ServiceSpec(
        "streams.latency_probe",
        run_latency_probe,
        placement="serve",
        backoff_base=1.0,
        backoff_max=30.0,
        enabled=lambda context: context.app_settings(StreamsSettings).latency_probe.enabled,
    ),
]
