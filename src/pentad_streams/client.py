"""AsyncStreamsClient: the streams REST API (/api/streams), its media (snapshots, exports, VOD URLs) and
its live events (the hub's /ws socket).

    async with AsyncStreamsClient("https://video.example.com", token) as streams:
        camera = await streams.create_camera("Yard", visibility="private")
        key = await streams.create_key(camera.id, "obs")        # key.key is shown this once
        await streams.subscribe_camera(camera.id)
        async for event in streams.events("camera.online"):
            print("live:", event.camera_id)

Live events: the client keeps one socket, authenticates with its token (a provider's fresh one after an
expiry), subscribes the topics asked for, and reconnects with exponential backoff and jitter, resuming
each topic where it was (the hub replays what was missed while it has it). Events are at most once per
(epoch, sequence number): a replay never delivers one twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote, urlencode

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from pentad_streams._http import (
    HttpApi,
    StreamsAPIError,
    StreamsClosedError,
    StreamsRealtimeError,
    TokenProvider,
    api_error,
    backoff_delay,
    ws_url,
)
from pentad_streams.models import (
    Camera,
    CameraRole,
    DirectoryEntry,
    Export,
    ExportProgressEvent,
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
    parse_event,
)

logger = logging.getLogger("pentad_streams")

EventCallback = Callable[[StreamsEvent], Awaitable[None] | None]
ProgressCallback = Callable[[ExportProgressEvent], Awaitable[None] | None]
Id = uuid.UUID | str

PONG = '{"op":"pong"}'
CLOSE_TIMEOUT = 2.0
FATAL_CODES = frozenset({4000, 4004})
"""Close codes after which reconnecting cannot help (a bad frame, revoked credentials)."""
AUTH_FAILED = 4001
RENEWABLE_CODES = frozenset({AUTH_FAILED, 4003})
"""Close codes after which only a fresh token helps (a provider's)."""
EXPORT_POLL_SECONDS = 5.0
"""wait_export() asks the API this often too, in case an event was missed (the hub is best effort)."""


def _when(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _clean(fields: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not None}


class EventStream:
    """Events as an async iterator; it ends when the client is closed (or `close()` is called on it)."""

    def __init__(self, client: AsyncStreamsClient, types: frozenset[str]) -> None:
        self._client = client
        self.types = types
        self._queue: asyncio.Queue[StreamsEvent | None] = asyncio.Queue()
        self._ended = False

    def wants(self, event: StreamsEvent) -> bool:
        return not self.types or event.type in self.types

    def put(self, event: StreamsEvent | None) -> None:
        if not self._ended:
            self._queue.put_nowait(event)
            self._ended = event is None

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> StreamsEvent:
        event = await self._queue.get()
        if event is None:
            self._queue.put_nowait(None)
            raise StopAsyncIteration
        return event

    async def get(self) -> StreamsEvent:
        """The next event (wrap it in asyncio.timeout to bound the wait); StreamsClosedError at the end."""
        try:
            return await self.__anext__()
        except StopAsyncIteration:
            raise StreamsClosedError("The event stream has ended.") from None

    def close(self) -> None:
        self._client._streams.discard(self)
        self.put(None)

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *_: object) -> None:
        self.close()


@dataclass
class _Topic:
    name: str
    epoch: str | None = None
    seq: int | None = None
    subscribed: asyncio.Event | None = None


class _SocketGone(Exception):
    pass


class AsyncStreamsClient:
    """One account's (or one API key's) client of a Pentad streams server.

    `token`: an access token, an API key (`pak_…`) or a camera's playback token (`psp_…`: that camera's
    media and events only). Or `token_provider`, called for a fresh token whenever the server refuses one."""

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
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._api = HttpApi(
            base_url,
            token,
            token_provider,
            timeout=timeout,
            retries=retries,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            http_client=http_client,
        )
        self.base_url = self._api.base_url
        self.ws_url = ws_url(self.base_url)
        self.timeout = timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.principal_id: str | None = None
        """Who the hub knows the client as (set once connected)."""
        self.close_code: int | None = None
        self._topics: dict[str, _Topic] = {}
        self._want_user_topic = False
        self._streams: set[EventStream] = set()
        self._callbacks: list[tuple[frozenset[str], EventCallback]] = []
        self._callback_tasks: set[asyncio.Future[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._ws: ClientConnection | None = None
        self._ready = asyncio.Event()
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._closed = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the socket and the HTTP client; event streams end. The client may be used again."""
        self._closed = True
        runner, self._runner = self._runner, None
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        for stream in list(self._streams):
            stream.close()
        await self._api.aclose()
        self._closed = False

    # ------------------------------------------------------------ cameras

    async def create_camera(
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
        """Add a camera; you become its owner. Not retried (a retry could add two)."""
        body = _clean(
            {
                "name": name,
                "visibility": visibility,
                "source": source,
                "profile": profile,
                "recording_mode": recording_mode,
                "retention_days": retention_days,
                "retention_bytes": retention_bytes,
                "thumbnail_interval": thumbnail_interval,
                "rtsp_url": rtsp_url,
                "rtsp_transport": rtsp_transport,
            }
        )
        return Camera.model_validate(await self._api.request("POST", "/api/streams/cameras", json=body))

    async def list_cameras(self) -> list[Camera]:
        """The cameras you may see: yours, those shared with you, public ones."""
        found = await self._api.request("GET", "/api/streams/cameras", retry=True)
        return [Camera.model_validate(item) for item in found]

    async def my_cameras(self) -> list[Camera]:
        """The cameras you hold a role on."""
        found = await self._api.request("GET", "/api/streams/me/cameras", retry=True)
        return [Camera.model_validate(item) for item in found]

    async def directory(self) -> list[DirectoryEntry]:
        """Every public camera, live ones first."""
        found = await self._api.request("GET", "/api/streams/directory", retry=True)
        return [DirectoryEntry.model_validate(item) for item in found]

    async def get_camera(self, camera_id: Id) -> Camera:
        answer = await self._api.request("GET", f"/api/streams/cameras/{camera_id}", retry=True)
        return Camera.model_validate(answer)

    async def update_camera(self, camera_id: Id, **fields: Any) -> Camera:
        """Change the fields given (owners); `None` puts an optional one back to the server's default."""
        answer = await self._api.request(
            "PATCH", f"/api/streams/cameras/{camera_id}", json=fields, retry=True
        )
        return Camera.model_validate(answer)

    async def delete_camera(self, camera_id: Id) -> None:
        await self._api.request("DELETE", f"/api/streams/cameras/{camera_id}")

    # ------------------------------------------------------------ stream keys

    async def create_key(self, camera_id: Id, name: str = "") -> StreamKeyCreated:
        """A new stream key (owners): `key` is in this answer only."""
        answer = await self._api.request(
            "POST", f"/api/streams/cameras/{camera_id}/keys", json={"name": name}
        )
        return StreamKeyCreated.model_validate(answer)

    async def list_keys(self, camera_id: Id) -> list[StreamKey]:
        """A camera's keys, revoked ones included, without their secrets (owners)."""
        found = await self._api.request("GET", f"/api/streams/cameras/{camera_id}/keys", retry=True)
        return [StreamKey.model_validate(item) for item in found]

    async def rotate_key(self, camera_id: Id, key_id: Id) -> StreamKeyCreated:
        """Revoke a key and make its replacement (same name), shown once; a publisher using the old key
        is cut off."""
        answer = await self._api.request("POST", f"/api/streams/cameras/{camera_id}/keys/{key_id}/rotate")
        return StreamKeyCreated.model_validate(answer)

    async def revoke_key(self, camera_id: Id, key_id: Id) -> None:
        """Revoke a key (a publisher using it is cut off)."""
        await self._api.request("DELETE", f"/api/streams/cameras/{camera_id}/keys/{key_id}", retry=True)

    # ------------------------------------------------------------ roles

    async def list_grants(self, camera_id: Id) -> list[Grant]:
        found = await self._api.request("GET", f"/api/streams/cameras/{camera_id}/grants", retry=True)
        return [Grant.model_validate(item) for item in found]

    async def grant(self, camera_id: Id, email: str, role: CameraRole) -> Grant:
        """Give the account with this email a role on the camera (owners)."""
        body = {"email": email, "role": role}
        answer = await self._api.request("POST", f"/api/streams/cameras/{camera_id}/grants", json=body)
        return Grant.model_validate(answer)

    async def revoke_grant(self, camera_id: Id, user_id: Id) -> None:
        await self._api.request("DELETE", f"/api/streams/cameras/{camera_id}/grants/{user_id}", retry=True)

    # ------------------------------------------------------------ playback

    async def playback_token(self, camera_id: Id) -> PlaybackToken:
        """A short-lived token that plays this camera only (HLS, WHEP, snapshots, its live events)."""
        answer = await self._api.request("POST", f"/api/streams/cameras/{camera_id}/playback-token")
        return PlaybackToken.model_validate(answer)

    def hls_url(self, camera_id: Id, token: str | None = None) -> str:
        """The live playlist of a camera (a private one needs a playback token)."""
        query = f"?token={quote(token, safe='')}" if token else ""
        return f"{self.base_url}/streams/media/{camera_id}/index.m3u8{query}"

    def whep_url(self, camera_id: Id) -> str:
        """The camera's WHEP endpoint (send a private camera's playback token as the bearer token)."""
        return f"{self.base_url}/streams/whep/{camera_id}"

    def vod_url(self, camera_id: Id, start: datetime, end: datetime, token: str | None = None) -> str:
        """An HLS VOD playlist of the recordings of [start, end) (at most 4 hours)."""
        query = {"start": start.isoformat(), "end": end.isoformat()} | ({"token": token} if token else {})
        return f"{self.base_url}/streams/recordings/{camera_id}/vod.m3u8?{urlencode(query)}"

    async def snapshot(self, camera_id: Id, *, token: str | None = None) -> bytes:
        """The latest picture of a live camera (JPEG bytes).

        A private camera needs a playback token: without one the client gets one itself (with its own
        credentials) when the server asks for it. An offline camera: StreamsAPIError 404 `stream_offline`;
        one that has no picture yet: 503 (retried here for a while, as Retry-After says)."""
        path = f"/streams/media/{camera_id}/snapshot.jpg"
        params = {"token": token} if token else None
        try:
            response = await self._api.call("GET", path, params=params, retry=True, authorize=False)
        except StreamsAPIError as exc:
            if token is not None or exc.code != "playback_token_required":
                raise
            fresh = await self.playback_token(camera_id)
            response = await self._api.call(
                "GET", path, params={"token": fresh.token}, retry=True, authorize=False
            )
        return response.content

    # ------------------------------------------------------------ recordings

    async def start_recording(self, camera_id: Id) -> Recording:
        """Record whenever the camera is live until stopped (operators); already recording: that one."""
        answer = await self._api.request("PUT", f"/api/streams/cameras/{camera_id}/recording", retry=True)
        return Recording.model_validate(answer)

    async def stop_recording(self, camera_id: Id) -> None:
        await self._api.request("DELETE", f"/api/streams/cameras/{camera_id}/recording", retry=True)

    async def timeline(
        self, camera_id: Id, start: datetime | None = None, end: datetime | None = None
    ) -> Timeline:
        """Recordings and recorded spans of a range (default: the last 24 hours)."""
        params = _clean({"start": _when(start), "end": _when(end)})
        answer = await self._api.request(
            "GET", f"/api/streams/cameras/{camera_id}/recordings", params=params, retry=True
        )
        return Timeline.model_validate(answer)

    async def segments(
        self, camera_id: Id, start: datetime | None = None, end: datetime | None = None, *, limit: int = 1000
    ) -> list[Segment]:
        params = _clean({"start": _when(start), "end": _when(end), "limit": limit})
        found = await self._api.request(
            "GET", f"/api/streams/cameras/{camera_id}/segments", params=params, retry=True
        )
        return [Segment.model_validate(item) for item in found]

    async def create_export(self, camera_id: Id, start: datetime, end: datetime) -> Export:
        """Queue an MP4 export of a recorded range (operators); follow it with wait_export()."""
        body = {"start": start.isoformat(), "end": end.isoformat()}
        answer = await self._api.request("POST", f"/api/streams/cameras/{camera_id}/exports", json=body)
        return Export.model_validate(answer)

    async def list_exports(self, camera_id: Id) -> list[Export]:
        found = await self._api.request("GET", f"/api/streams/cameras/{camera_id}/exports", retry=True)
        return [Export.model_validate(item) for item in found]

    async def get_export(self, export_id: Id) -> Export:
        return Export.model_validate(
            await self._api.request("GET", f"/api/streams/exports/{export_id}", retry=True)
        )

    async def wait_export(self, export: Export, *, on_progress: ProgressCallback | None = None) -> Export:
        """Wait until an export is done, failed or expired; its final state.

        Progress comes live from the camera's topic (`export.progress`, passed to `on_progress`); the API is
        asked as well every few seconds, so a missed event only delays the answer. Bound the wait with
        asyncio.timeout."""
        async with self.events("export.progress") as stream:
            await self.subscribe_camera(export.camera_id)
            current = await self.get_export(export.id)
            while not current.finished:
                try:
                    async with asyncio.timeout(EXPORT_POLL_SECONDS):
                        event = await stream.get()
                except TimeoutError:
                    current = await self.get_export(export.id)
                    continue
                if not isinstance(event, ExportProgressEvent) or event.export_id != export.id:
                    continue
                if on_progress is not None:
                    called = on_progress(event)
                    if inspect.isawaitable(called):
                        await called
                if event.status in ("done", "failed", "expired"):
                    current = await self.get_export(export.id)
            return current

    async def export(
        self,
        camera_id: Id,
        start: datetime,
        end: datetime,
        *,
        on_progress: ProgressCallback | None = None,
    ) -> Export:
        """create_export() then wait_export(): the finished export (check `status`)."""
        created = await self.create_export(camera_id, start, end)
        return await self.wait_export(created, on_progress=on_progress)

    async def download_export(self, export_id: Id, target: Path | str) -> Path:
        """Save a finished export's MP4 to `target` (written to a temporary name, then renamed)."""
        path = Path(target)
        partial = path.with_name(path.name + ".part")
        token = await self._api.current_token()
        headers = {"Authorization": f"Bearer {token}"}
        url = f"{self.base_url}/api/streams/exports/{export_id}/file"
        try:
            async with self._api.http.stream("GET", url, headers=headers) as response:
                if not response.is_success:
                    await response.aread()
                    raise api_error(response)
                with partial.open("wb") as out:
                    async for chunk in response.aiter_bytes():
                        out.write(chunk)
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)
        return path

    # ------------------------------------------------------------ live events

    def events(self, *types: str) -> EventStream:
        """A stream of live events (of these types; none named: all), until closed or the client is.

        Create it before subscribing so that nothing is missed."""
        stream = EventStream(self, frozenset(types))
        self._streams.add(stream)
        return stream

    def on(self, event_type: str | None, callback: EventCallback) -> None:
        """Call `callback` with every event of this type (None: every event)."""
        self._callbacks.append((frozenset({event_type}) if event_type else frozenset(), callback))

    async def connect(self) -> None:
        """Open the socket (if not open) and wait until it is authenticated and subscribed."""
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run(), name="pentad-streams-realtime")
        ready = asyncio.ensure_future(self._ready.wait())
        done, _ = await asyncio.wait(
            {ready, self._runner}, timeout=self.timeout, return_when="FIRST_COMPLETED"
        )
        if ready not in done:
            ready.cancel()
            if self._runner in done:
                raise StreamsClosedError(f"The hub closed the connection for good ({self.close_code}).")
            raise TimeoutError("Could not connect to the streams hub in time.")

    async def subscribe_camera(self, camera_id: Id) -> None:
        """Follow one camera: online/offline, changes, recordings, export progress."""
        await self._subscribe(f"streams.camera.{camera_id}")

    async def subscribe_directory(self) -> None:
        """Follow the public cameras going online, offline or away (the grid)."""
        await self._subscribe("streams.directory")

    async def subscribe_user(self) -> None:
        """Follow your own affairs: keys made or revoked, roles given or taken."""
        self._want_user_topic = True
        await self.connect()
        await self._subscribe(f"streams.user.{self.principal_id}")

    async def unsubscribe(self, topic: str) -> None:
        found = self._topics.pop(topic, None)
        ws = self._ws
        if found is not None and ws is not None and self._ready.is_set():
            with contextlib.suppress(StreamsRealtimeError, _SocketGone, TimeoutError):
                await self._request(ws, {"op": "unsubscribe", "topic": topic})

    async def _subscribe(self, name: str) -> None:
        await self.connect()
        if name in self._topics:
            return
        topic = self._topics[name] = _Topic(name)
        ws = self._ws
        if ws is None:
            return  # the next connection subscribes it
        try:
            await self._subscribe_topic(ws, topic)
        except StreamsRealtimeError:
            self._topics.pop(name, None)
            raise
        except (_SocketGone, ConnectionClosed):
            return

    async def _run(self) -> None:
        attempt = 0
        while not self._closed:
            was_ready = False
            try:
                token = await self._api.current_token()
            except Exception as exc:  # the application's token provider may fail in any way
                logger.warning("Could not get a streams token: %r", exc)
            else:
                try:
                    async with connect(
                        self.ws_url,
                        open_timeout=self.timeout,
                        ping_interval=None,
                        close_timeout=CLOSE_TIMEOUT,
                        compression=None,
                        max_queue=None,
                    ) as ws:
                        was_ready = await self._session(ws, token)
                except (OSError, InvalidHandshake, InvalidURI, TimeoutError, StreamsRealtimeError) as exc:
                    logger.debug("Streams hub connection failed: %r", exc)
                except Exception:
                    logger.exception("The streams hub connection failed unexpectedly.")
                finally:
                    self._ready.clear()
                    self._ws = None
                    self._fail_pending()
            if was_ready:
                attempt = 0
            if self.close_code in FATAL_CODES or (
                self.close_code in RENEWABLE_CODES and self._api.token_provider is None
            ):
                logger.warning("The streams hub closed the connection for good (%s).", self.close_code)
                return
            if self.close_code in RENEWABLE_CODES:
                with contextlib.suppress(Exception):
                    await self._api.fresh_token()
            await asyncio.sleep(backoff_delay(attempt, self.backoff_initial, self.backoff_max))
            attempt += 1

    async def _session(self, ws: ClientConnection, token: str) -> bool:
        self._ws = ws
        self.close_code = None
        reader = asyncio.create_task(self._read(ws))
        try:
            try:
                result = await self._request(ws, {"op": "auth", "token": token})
            except StreamsRealtimeError as exc:
                if exc.code == "auth_failed":
                    self.close_code = AUTH_FAILED  # a provider's fresh token may help; a fixed one not
                raise
            self.principal_id = str(result["principal"]["id"])
            user_topic = f"streams.user.{self.principal_id}"
            if self._want_user_topic and user_topic not in self._topics:
                self._topics[user_topic] = _Topic(user_topic)
            for topic in list(self._topics.values()):
                try:
                    await self._subscribe_topic(ws, topic)
                except StreamsRealtimeError as exc:
                    if exc.code == "unavailable":
                        raise
                    logger.warning("Streams topic %s is no longer followed: %s", topic.name, exc)
                    self._topics.pop(topic.name, None)
            self._ready.set()
            await reader
            return True
        except (ConnectionClosed, _SocketGone):
            await asyncio.wait([reader])
            return self._ready.is_set()
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _request(self, ws: ClientConnection, payload: dict[str, Any]) -> dict[str, Any]:
        request_id = next(self._ids)
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = answer
        try:
            await ws.send(orjson.dumps({**payload, "id": request_id}).decode())
            async with asyncio.timeout(self.timeout):
                frame = await answer
        finally:
            self._pending.pop(request_id, None)
        if not frame.get("ok"):
            error = frame.get("error") or {}
            raise StreamsRealtimeError(str(error.get("code")), str(error.get("message")))
        result: dict[str, Any] = frame.get("result") or {}
        return result

    async def _subscribe_topic(self, ws: ClientConnection, topic: _Topic) -> None:
        request: dict[str, Any] = {"op": "subscribe", "topic": topic.name}
        if topic.seq is not None and topic.epoch is not None:
            request.update(since=topic.seq, epoch=topic.epoch)
        result = await self._request(ws, request)
        if not result["recovered"]:
            topic.epoch, topic.seq = result["epoch"], result["seq"]

    def _fail_pending(self) -> None:
        for answer in self._pending.values():
            if not answer.done():
                answer.set_exception(_SocketGone())
        self._pending.clear()

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                try:
                    frame = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    logger.warning("Dropped a streams hub frame that is not JSON.")
                    continue
                if isinstance(frame, dict):
                    await self._on_frame(ws, frame)
            self.close_code = ws.close_code
        except ConnectionClosed as exc:
            self.close_code = exc.rcvd.code if exc.rcvd is not None else 1006
        finally:
            self._fail_pending()

    async def _on_frame(self, ws: ClientConnection, frame: dict[str, Any]) -> None:
        op = frame.get("op")
        if op == "event":
            self._on_event(frame)
        elif op == "ack":
            answer = self._pending.get(frame.get("id", -1))
            if answer is not None and not answer.done():
                answer.set_result(frame)
        elif op == "ping":
            await ws.send(PONG)
        elif op == "reset":
            topic = self._topics.get(frame.get("topic", ""))
            if topic is not None:
                topic.epoch, topic.seq = frame["epoch"], frame["seq"]
        elif op == "unsubscribed":
            dropped = self._topics.pop(frame.get("topic", ""), None)
            if dropped is not None:
                logger.warning(
                    "Streams topic %s was ended by the server: %s", dropped.name, frame.get("reason")
                )

    def _on_event(self, frame: dict[str, Any]) -> None:
        topic = self._topics.get(frame.get("topic", ""))
        if topic is None:
            return
        seq, epoch = frame["seq"], frame["epoch"]
        if epoch == topic.epoch and topic.seq is not None and seq <= topic.seq:
            return
        topic.epoch, topic.seq = epoch, seq
        try:
            event = parse_event(frame["data"])
        except ValueError:
            logger.warning("Dropped a malformed streams event on %s.", topic.name)
            return
        self._emit(event)

    def _emit(self, event: StreamsEvent) -> None:
        for stream in list(self._streams):
            if stream.wants(event):
                stream.put(event)
        for types, callback in self._callbacks:
            if types and event.type not in types:
                continue
            try:
                called = callback(event)
                if inspect.isawaitable(called):
                    task = asyncio.ensure_future(called)
                    self._callback_tasks.add(task)
                    task.add_done_callback(self._callback_tasks.discard)
            except Exception:
                logger.exception("A streams event callback failed.")
