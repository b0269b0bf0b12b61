"""The media plane of one node, engine-agnostic: it authorises publishers, opens and closes their
streams (session, relay, HLS packager) and drops publishers whose key was revoked. The `streams.ingest`
service (apps/streams/services.py) runs `run_media` with the control plane's callbacks.

Engines (ENGINES, chosen by PENTAD_STREAMS__ENGINE) call `open_stream` / `close_stream`
(engines/base.py StreamHost)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Callable, Collection, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog

from pentad.apps.streams.media import disk
from pentad.apps.streams.media.engines.base import Drop, IngestEngine, Publication, StreamHost
from pentad.apps.streams.media.engines.builtin import BuiltinEngine
from pentad.apps.streams.media.engines.nginx import NginxEngine
from pentad.apps.streams.media.packager import HlsPackager, Processes
from pentad.apps.streams.media.recorder import TICK_SECONDS, CameraRecorder, RecordedSegment
from pentad.apps.streams.media.redact import RedactingLog
from pentad.apps.streams.media.relay import StreamRelay
from pentad.apps.streams.media.rtsp import PullSource, RtspPulls
from pentad.apps.streams.settings import StreamsSettings

REVOCATION_POLL_SECONDS = 1.0
"""How often the keys of live publishers are checked again (a revoked key's publisher is dropped)."""

logger = structlog.get_logger("pentad.streams.media")


class Grant(Protocol):
    """What the control plane says of an accepted key (actions/publish.py PublishGrant)."""

    @property
    def camera_id(self) -> uuid.UUID: ...

    @property
    def key_id(self) -> uuid.UUID | None: ...

    @property
    def profile(self) -> str:
        """passthrough or ladder (media/ladder.py)."""
        ...


class ControlPlane(Protocol):
    """The database side, as callbacks (the media plane imports no repository)."""

    async def authorize(self, raw_key: str) -> Grant | None: ...

    async def started(self, grant: Grant, *, engine: str) -> uuid.UUID: ...

    async def ended(self, session_id: uuid.UUID, reason: str, *, bytes_in: int) -> None: ...

    async def revoked(self, key_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        """Of these keys, those that no longer authorise publishing."""
        ...

    async def end_abandoned(self) -> int:
        """End the sessions a previous run of this node left open (it was killed); how many."""
        ...

    async def pull_sources(self) -> list[PullSource]:
        """The cameras this node pulls (RTSP), with their decrypted URLs."""
        ...

    async def pull_started(self, camera_id: uuid.UUID, *, engine: str) -> uuid.UUID | None:
        """A pulled camera's stream began: its session, or None when the camera may no longer be pulled."""
        ...

    async def pull_unreachable(self, camera_id: uuid.UUID, *, attempt: int, retry_in: float) -> None:
        """A pulled camera failed again (its watchers get a `camera.unreachable` event)."""
        ...


class RecordingControl(Protocol):
    """The database side of recording (actions/recording.py), as callbacks."""

    async def recordings(self, live: Mapping[uuid.UUID, uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
        """For live cameras (camera id -> session id), the open recording of each that records now."""
        ...

    async def store_segments(self, camera_id: uuid.UUID, segments: Sequence[RecordedSegment]) -> None: ...

    async def stream_ended(self, camera_id: uuid.UUID, session_id: uuid.UUID) -> None:
        """The stream ended: its continuous recording ends with it."""
        ...


@dataclass(eq=False)
class _Live:
    publication: Publication
    packager: HlsPackager
    recorder: CameraRecorder | None = None


class MediaService(StreamHost):
    def __init__(
        self,
        settings: StreamsSettings,
        control: ControlPlane,
        *,
        root: Path,
        socket_dir: Path,
        processes: Processes,
        recording: RecordingControl | None = None,
        callback_secret: str | None = None,
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.on_refused = on_refused
        """Told the reason of every publisher or pull refused (the publish_refusals metric)."""
        self.callback_secret = callback_secret
        self.control = control
        self.recording = recording
        self.recording_paused = False
        self.root = root
        self.socket_dir = socket_dir
        self.processes = processes
        self.streams: dict[uuid.UUID, _Live] = {}
        self._opening: set[uuid.UUID] = set()

    def _refuse(self, log: Any, event: str, reason: str, **details: Any) -> None:
        log.warning(event, reason=reason, **details)
        if self.on_refused is not None:
            self.on_refused(reason)

    async def open_stream(self, raw_key: str, *, engine: str, peer: str, drop: Drop) -> Publication | None:
        log = logger.bind(peer=peer, engine=engine)
        try:
            grant = await self.control.authorize(raw_key)
        except Exception as exc:
            self._refuse(log, "publish_refused", "control_plane_unavailable", error=type(exc).__name__)
            return None
        if grant is None:
            self._refuse(log, "publish_refused", "unknown_or_revoked_key")
            return None
        return await self.open_granted(grant, engine=engine, peer=peer, drop=drop)

    async def open_granted(self, grant: Grant, *, engine: str, peer: str, drop: Drop) -> Publication | None:
        """Open the stream of a publisher whose key was already accepted (WHIP: the HTTP route checked
        the key); None when refused (capacity, disk, a publisher opening on the camera)."""
        log = logger.bind(peer=peer, engine=engine)
        camera_id = grant.camera_id
        log = log.bind(camera_id=str(camera_id))
        if camera_id in self._opening:
            self._refuse(log, "publish_refused", "already_publishing")
            return None
        self._opening.add(camera_id)
        try:
            previous = self.streams.get(camera_id)
            if previous is not None:
                # The newest publisher wins (an encoder reconnecting while its old connection lingers).
                log.info("publisher_replaced")
                await previous.publication.drop("replaced")
                await self.close_stream(previous.publication, "replaced")
            if len(self.streams) >= self.settings.max_streams:
                self._refuse(log, "publish_refused", "capacity", max_streams=self.settings.max_streams)
                return None
            if not disk.has_room(self.root):
                self._refuse(log, "publish_refused", "disk_full")
                return None
            session_id = await self.control.started(grant, engine=engine)
            relay = StreamRelay(camera_id)
            publication = Publication(camera_id, session_id, grant.key_id, engine, relay, drop)
            packager = HlsPackager(
                relay,
                settings=self.settings,
                root=self.root,
                socket_dir=self.socket_dir,
                processes=self.processes,
                profile=grant.profile,
            )
            try:
                await packager.start()
            except Exception as exc:
                log.error("publish_failed", reason="packager_failed", error=str(exc))
                relay.close()
                await self.control.ended(session_id, "packager_failed", bytes_in=0)
                return None
            recorder = CameraRecorder(camera_id, packager.recorded_dir, self.root)
            self.streams[camera_id] = _Live(publication, packager, recorder)
            log.info("stream_opened", session_id=str(session_id))
            return publication
        finally:
            self._opening.discard(camera_id)

    async def open_pulled(
        self,
        camera_id: uuid.UUID,
        relay: StreamRelay,
        *,
        engine: str,
        peer: str,
        drop: Drop,
        profile: str = "passthrough",
    ) -> Publication | None:
        """A pulled camera's stream (RTSP): the same session, relay and packager as a publisher's, without a
        key. None when refused, having logged why."""
        log = logger.bind(peer=peer, engine=engine, camera_id=str(camera_id))
        if camera_id in self._opening or camera_id in self.streams:
            self._refuse(log, "pull_refused", "already_live")
            return None
        if len(self.streams) >= self.settings.max_streams:
            self._refuse(log, "pull_refused", "capacity", max_streams=self.settings.max_streams)
            return None
        if not disk.has_room(self.root):
            self._refuse(log, "pull_refused", "disk_full")
            return None
        self._opening.add(camera_id)
        try:
            try:
                session_id = await self.control.pull_started(camera_id, engine=engine)
            except Exception as exc:
                self._refuse(log, "pull_refused", "control_plane_unavailable", error=type(exc).__name__)
                return None
            if session_id is None:
                self._refuse(log, "pull_refused", "camera_not_pulled")
                return None
            publication = Publication(camera_id, session_id, None, engine, relay, drop)
            packager = HlsPackager(
                relay,
                settings=self.settings,
                root=self.root,
                socket_dir=self.socket_dir,
                processes=self.processes,
                profile=profile,
            )
            try:
                await packager.start()
            except Exception as exc:
                log.error("publish_failed", reason="packager_failed", error=str(exc))
                await self.control.ended(session_id, "packager_failed", bytes_in=0)
                return None
            self.streams[camera_id] = _Live(publication, packager)
            log.info("stream_opened", session_id=str(session_id))
            return publication
        finally:
            self._opening.discard(camera_id)

    async def pull_unreachable(self, camera_id: uuid.UUID, *, attempt: int, retry_in: float) -> None:
        """An RTSP camera failed again: the control plane tells its watchers (the puller logged it)."""
        try:
            await self.control.pull_unreachable(camera_id, attempt=attempt, retry_in=retry_in)
        except Exception as exc:  # the database may be away; the puller goes on
            logger.warning("rtsp_event_failed", camera_id=str(camera_id), error=type(exc).__name__)

    async def close_stream(self, publication: Publication, reason: str) -> None:
        if publication.closed:
            return
        publication.closed = True
        live = self.streams.get(publication.camera_id)
        if live is not None and live.publication is publication:
            del self.streams[publication.camera_id]
        publication.relay.close()
        if live is not None:
            await live.packager.stop()
            await self._record_tail(live)
        try:
            await self.control.ended(publication.session_id, reason, bytes_in=publication.relay.bytes_in)
        except Exception as exc:
            logger.warning(
                "session_end_failed", session_id=str(publication.session_id), error=type(exc).__name__
            )
        logger.info("stream_closed", camera_id=str(publication.camera_id), reason=reason)

    async def drop_revoked(self) -> int:
        """Drop the publishers whose key no longer authorises them; how many."""
        live = {
            item.publication.key_id: item.publication
            for item in list(self.streams.values())
            if item.publication.key_id is not None
        }
        if not live:
            return 0
        revoked = await self.control.revoked(live.keys())
        for key_id in revoked:
            publication = live[key_id]
            logger.warning("publisher_dropped", camera_id=str(publication.camera_id), reason="key_revoked")
            await publication.drop("key_revoked")
        return len(revoked)

    async def watch_revocations(self) -> None:
        while True:
            await asyncio.sleep(REVOCATION_POLL_SECONDS)
            try:
                await self.drop_revoked()
            except Exception as exc:  # the database may be down for a while; keep watching
                logger.warning("revocation_check_failed", error=type(exc).__name__)

    async def record(self) -> int:
        """One look at every live stream: the segments of those that record now stored; how many."""
        if self.recording is None:
            return 0
        live = {camera_id: item for camera_id, item in self.streams.items() if item.recorder is not None}
        if not live:
            return 0
        sessions = {camera_id: item.publication.session_id for camera_id, item in live.items()}
        open_recordings = await self.recording.recordings(sessions)
        if open_recordings and not await asyncio.to_thread(
            disk.has_room, self.root, self.settings.recording.min_free_bytes
        ):
            # Below RECORDING__MIN_FREE_BYTES nothing is kept (live HLS goes on); segments are only noted.
            if not self.recording_paused:
                logger.warning("recording_paused", reason="disk_full", cameras=len(open_recordings))
            self.recording_paused = True
            open_recordings = {}
        elif open_recordings and self.recording_paused:
            logger.info("recording_resumed")
            self.recording_paused = False
        stored = 0
        for camera_id, item in live.items():
            assert item.recorder is not None
            kept = await asyncio.to_thread(item.recorder.collect, open_recordings.get(camera_id))
            if kept:
                await self.recording.store_segments(camera_id, kept)
                stored += len(kept)
        return stored

    async def _record_tail(self, live: _Live) -> None:
        """After the packager's last segment: store it (and any not yet seen), end a continuous recording."""
        if self.recording is None or live.recorder is None:
            return
        camera_id, session_id = live.publication.camera_id, live.publication.session_id
        try:
            open_recordings = await self.recording.recordings({camera_id: session_id})
            kept = await asyncio.to_thread(live.recorder.collect, open_recordings.get(camera_id))
            if kept:
                await self.recording.store_segments(camera_id, kept)
            await self.recording.stream_ended(camera_id, session_id)
        except Exception as exc:
            logger.warning("recording_tail_failed", camera_id=str(camera_id), error=type(exc).__name__)

    async def watch_recordings(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            try:
                await self.record()
            except Exception as exc:  # the database may be down for a while; keep recording
                logger.warning("recording_check_failed", error=type(exc).__name__)


def _prepare(root: Path) -> Path:
    """MEDIA_DIR made; a private (0700) folder for the packagers' sockets, short enough for a socket path."""
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="pentad-media-"))


ENGINES: Mapping[str, Callable[[StreamsSettings, StreamHost], IngestEngine]] = {
    "builtin": BuiltinEngine,
    "nginx": NginxEngine,
}
"""Engine constructors by PENTAD_STREAMS__ENGINE (the nginx engine adds its line)."""


Companion = Callable[[MediaService], Coroutine[Any, Any, None]]
"""A part of the media plane that runs beside the engine on the same streams (the WebRTC hub), until
cancelled."""


async def run_media(
    settings: StreamsSettings,
    control: ControlPlane,
    *,
    root: Path,
    processes: Any,
    log: Any,
    recording: RecordingControl | None = None,
    companions: Sequence[Companion] = (),
    callback_secret: str | None = None,
    on_refused: Callable[[str], None] | None = None,
) -> None:
    """The media plane until cancelled: the engine listening, publishers' streams packaged."""
    factory = ENGINES.get(settings.engine)
    if factory is None:
        raise RuntimeError(f"the {settings.engine!r} ingest engine is not available yet")
    if hasattr(processes, "log") and not isinstance(processes.log, RedactingLog):
        # ffmpeg prints the URL it reads (an RTSP camera's, with credentials): its lines are redacted.
        processes.log = RedactingLog(processes.log)
    socket_dir = await asyncio.to_thread(_prepare, root)
    media = MediaService(
        settings,
        control,
        root=root,
        socket_dir=socket_dir,
        processes=processes,
        recording=recording,
        callback_secret=callback_secret,
        on_refused=on_refused,
    )
    engine = factory(settings, media)
    watcher: asyncio.Task[None] | None = None
    recorder: asyncio.Task[None] | None = None
    pulls: asyncio.Task[None] | None = None
    running: list[asyncio.Task[None]] = []
    try:
        abandoned = await control.end_abandoned()
        if abandoned:
            log.warning("abandoned_sessions_ended", count=abandoned)
        await engine.start()
        log.info("media_started", engine=engine.name, media_dir=str(root))
        watcher = asyncio.create_task(media.watch_revocations())
        recorder = asyncio.create_task(media.watch_recordings())
        pulls = asyncio.create_task(RtspPulls(settings, media, control.pull_sources).run())
        running = [asyncio.create_task(companion(media)) for companion in companions]
        await asyncio.Event().wait()
    finally:
        for task in running:
            task.cancel()
        for task in running:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for single in (pulls, recorder, watcher):
            if single is not None:
                single.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await single
        await engine.close()
        for live in list(media.streams.values()):
            await media.close_stream(live.publication, "shutdown")
        shutil.rmtree(socket_dir, ignore_errors=True)
