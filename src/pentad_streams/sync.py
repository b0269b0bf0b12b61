"""StreamsClient: the blocking twin of AsyncStreamsClient, for scripts and threaded code.

It runs an AsyncStreamsClient on an event loop of its own (one daemon thread per client), so both behave
alike, live events included: `events()` gives a blocking iterator.

    with StreamsClient("https://video.example.com", token) as streams:
        for camera in streams.list_cameras():
            print(camera.name, camera.live)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
from collections.abc import Callable, Coroutine, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Self, TypeVar

from pentad_streams._http import StreamsClosedError, TokenProvider
from pentad_streams.client import AsyncStreamsClient, EventStream, Id, ProgressCallback
from pentad_streams.models import (
    Camera,
    CameraRole,
    DirectoryEntry,
    Export,
    Grant,
    PlaybackToken,
    Profile,
    Recording,
    RecordingMode,
    RtspTransport,
    Segment,
    Source,
    StreamKey,
    StreamKeyCreated,
    StreamsEvent,
    Timeline,
    Visibility,
)

T = TypeVar("T")


async def _bounded(coroutine: Coroutine[Any, Any, T], seconds: float | None) -> T:
    async with asyncio.timeout(seconds):
        return await coroutine


class SyncEventStream:
    """Live events as a blocking iterator; `get(timeout)` for one."""

    def __init__(self, client: StreamsClient, stream: EventStream) -> None:
        self._client = client
        self._stream = stream
        self._queue: queue.Queue[StreamsEvent | None] = queue.Queue()
        self._pump = client._portal(self._forward())

    async def _forward(self) -> None:
        async for event in self._stream:
            self._queue.put(event)
        self._queue.put(None)

    def get(self, timeout: float | None = None) -> StreamsEvent:
        """The next event; TimeoutError after `timeout` seconds, StreamsClosedError once it has ended."""
        try:
            event = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError("No event in time.") from None
        if event is None:
            self._queue.put(None)
            raise StreamsClosedError("The event stream has ended.")
        return event

    def __iter__(self) -> Iterator[StreamsEvent]:
        while True:
            try:
                yield self.get()
            except StreamsClosedError:
                return

    def close(self) -> None:
        self._client._call_soon(self._stream.close)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class StreamsClient:
    """Blocking client of a Pentad streams server; the same arguments and methods as AsyncStreamsClient."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        token_provider: TokenProvider | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="pentad-streams", daemon=True)
        self._thread.start()

        async def make() -> AsyncStreamsClient:
            return AsyncStreamsClient(
                base_url,
                token,
                token_provider=token_provider,
                timeout=timeout,
                retries=retries,
                backoff_initial=backoff_initial,
                backoff_max=backoff_max,
            )

        self.aio = self._run(make())
        """The AsyncStreamsClient underneath (its coroutines run on this client's own loop only)."""
        self.base_url = self.aio.base_url

    def _portal(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._loop.is_closed():
            coroutine.close()
            raise StreamsClosedError("The client is closed.")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _call_soon(self, function: Callable[[], object]) -> None:
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(function)

    def close(self) -> None:
        """Close the client and stop its thread (for good)."""
        if self._loop.is_closed():
            return
        self._run(self.aio.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------ cameras

    def create_camera(
        self,
        name: str,
        *,
        visibility: Visibility = "private",
        source: Source = "rtmp",
        profile: Profile = "passthrough",
        recording_mode: RecordingMode = "off",
        retention_days: int | None = None,
        retention_bytes: int | None = None,
        thumbnail_interval: int | None = None,
        rtsp_url: str | None = None,
        rtsp_transport: RtspTransport = "tcp",
    ) -> Camera:
        return self._run(
            self.aio.create_camera(
                name,
                visibility=visibility,
                source=source,
                profile=profile,
                recording_mode=recording_mode,
                retention_days=retention_days,
                retention_bytes=retention_bytes,
                thumbnail_interval=thumbnail_interval,
                rtsp_url=rtsp_url,
                rtsp_transport=rtsp_transport,
            )
        )

    def list_cameras(self) -> list[Camera]:
        return self._run(self.aio.list_cameras())

    def my_cameras(self) -> list[Camera]:
        return self._run(self.aio.my_cameras())

    def directory(self) -> list[DirectoryEntry]:
        return self._run(self.aio.directory())

    def get_camera(self, camera_id: Id) -> Camera:
        return self._run(self.aio.get_camera(camera_id))

    def update_camera(self, camera_id: Id, **fields: Any) -> Camera:
        return self._run(self.aio.update_camera(camera_id, **fields))

    def delete_camera(self, camera_id: Id) -> None:
        self._run(self.aio.delete_camera(camera_id))

    # ------------------------------------------------------------ keys, roles, playback

    def create_key(self, camera_id: Id, name: str = "") -> StreamKeyCreated:
        return self._run(self.aio.create_key(camera_id, name))

    def list_keys(self, camera_id: Id) -> list[StreamKey]:
        return self._run(self.aio.list_keys(camera_id))

    def rotate_key(self, camera_id: Id, key_id: Id) -> StreamKeyCreated:
        return self._run(self.aio.rotate_key(camera_id, key_id))

    def revoke_key(self, camera_id: Id, key_id: Id) -> None:
        self._run(self.aio.revoke_key(camera_id, key_id))

    def list_grants(self, camera_id: Id) -> list[Grant]:
        return self._run(self.aio.list_grants(camera_id))

    def grant(self, camera_id: Id, email: str, role: CameraRole) -> Grant:
        return self._run(self.aio.grant(camera_id, email, role))

    def revoke_grant(self, camera_id: Id, user_id: Id) -> None:
        self._run(self.aio.revoke_grant(camera_id, user_id))

    def playback_token(self, camera_id: Id) -> PlaybackToken:
        return self._run(self.aio.playback_token(camera_id))

    def hls_url(self, camera_id: Id, token: str | None = None) -> str:
        return self.aio.hls_url(camera_id, token)

    def whep_url(self, camera_id: Id) -> str:
        return self.aio.whep_url(camera_id)

    def vod_url(self, camera_id: Id, start: datetime, end: datetime, token: str | None = None) -> str:
        return self.aio.vod_url(camera_id, start, end, token)

    def snapshot(self, camera_id: Id, *, token: str | None = None) -> bytes:
        return self._run(self.aio.snapshot(camera_id, token=token))

    # ------------------------------------------------------------ recordings

    def start_recording(self, camera_id: Id) -> Recording:
        return self._run(self.aio.start_recording(camera_id))

    def stop_recording(self, camera_id: Id) -> None:
        self._run(self.aio.stop_recording(camera_id))

    def timeline(self, camera_id: Id, start: datetime | None = None, end: datetime | None = None) -> Timeline:
        return self._run(self.aio.timeline(camera_id, start, end))

    def segments(
        self, camera_id: Id, start: datetime | None = None, end: datetime | None = None, *, limit: int = 1000
    ) -> list[Segment]:
        return self._run(self.aio.segments(camera_id, start, end, limit=limit))

    def create_export(self, camera_id: Id, start: datetime, end: datetime) -> Export:
        return self._run(self.aio.create_export(camera_id, start, end))

    def list_exports(self, camera_id: Id) -> list[Export]:
        return self._run(self.aio.list_exports(camera_id))

    def get_export(self, export_id: Id) -> Export:
        return self._run(self.aio.get_export(export_id))

    def wait_export(
        self, export: Export, *, on_progress: ProgressCallback | None = None, timeout: float | None = None
    ) -> Export:
        """As AsyncStreamsClient.wait_export; `on_progress` is called on the client's own thread."""
        return self._run(_bounded(self.aio.wait_export(export, on_progress=on_progress), timeout))

    def export(
        self,
        camera_id: Id,
        start: datetime,
        end: datetime,
        *,
        on_progress: ProgressCallback | None = None,
        timeout: float | None = None,
    ) -> Export:
        return self._run(_bounded(self.aio.export(camera_id, start, end, on_progress=on_progress), timeout))

    def download_export(self, export_id: Id, target: Path | str) -> Path:
        return self._run(self.aio.download_export(export_id, target))

    # ------------------------------------------------------------ live events

    def events(self, *types: str) -> SyncEventStream:
        """A blocking stream of live events (of these types; none named: all)."""

        async def make() -> EventStream:
            return self.aio.events(*types)

        return SyncEventStream(self, self._run(make()))

    def connect(self) -> None:
        self._run(self.aio.connect())

    def subscribe_camera(self, camera_id: Id) -> None:
        self._run(self.aio.subscribe_camera(camera_id))

    def subscribe_directory(self) -> None:
        self._run(self.aio.subscribe_directory())

    def subscribe_user(self) -> None:
        self._run(self.aio.subscribe_user())

    def unsubscribe(self, topic: str) -> None:
        self._run(self.aio.unsubscribe(topic))
