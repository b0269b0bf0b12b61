"""The nginx-rtmp engine (PENTAD_STREAMS__ENGINE=nginx): Debian's libnginx-mod-rtmp takes the publishers,
Pentad decides who may publish and packages the media exactly as for the built-in engine.

    publisher --RTMP, name = key--> nginx --POST on_publish (loopback, secret)--> this engine
        host.open_stream(key) (the same authorisation, session, relay and packager as the built-in engine)
        <-- 302 Location: <internal name>   (nginx renames the live stream; 403 refuses the publisher)
    ffmpeg child: rtmp://127.0.0.1:<port>/<app>/<internal name> -c copy -f flv -> unix socket (FlvFeed)
        -> relay -> HLS packager (<MEDIA_DIR>/hls/<camera id>/)
    nginx --on_update every N s--> 200 while the key stands, 403 once it is revoked (nginx drops him)
    nginx --on_publish_done--> the stream's end

The internal name is random per stream, and only loopback may play from nginx, so nobody outside can
watch a camera around the playback checks. The stream key reaches Pentad only in the callbacks' bodies
(never logged; the callbacks say which publisher by nginx's client id). nginx's own files: see
nginx_config.py. With NGINX__MANAGE (the default) the engine runs nginx itself as a supervised child with
a private prefix (<MEDIA_DIR>/nginx), which works unprivileged; otherwise an nginx of the system runs the
config of `pentad streams nginx-config` and calls NGINX__CALLBACK_HOST:CALLBACK_PORT."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
import secrets
import time
import uuid
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import h11
import structlog

from pentad.apps.streams.media.engines import nginx_config
from pentad.apps.streams.media.engines.base import Publication, StreamHost
from pentad.apps.streams.media.feed import FlvFeed
from pentad.apps.streams.media.redact import peer_text
from pentad.apps.streams.settings import StreamsSettings

MAX_REQUEST_BYTES = 16 * 1024
REQUEST_TIMEOUT = 5.0
NGINX_START_TIMEOUT = 10.0
PULL_PREFIX = "pull:"
NGINX_CHILD = "nginx"
CALLBACKS = ("/on_publish", "/on_publish_done", "/on_update")
STALE_UPDATES = 3
"""A publisher nginx has not mentioned for this many on_update intervals (nginx died) is ended."""

logger = structlog.get_logger("pentad.streams.nginx")


def pull_argv(settings: StreamsSettings, source: str, target: str) -> list[str]:
    """ffmpeg playing the renamed stream from nginx and writing FLV to the feed's socket, unchanged."""
    return [
        settings.ffmpeg,
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "warning",
        "-rw_timeout",
        str(int(max(settings.idle_timeout, 5.0) * 1_000_000)),
        "-rtmp_live",
        "live",
        "-analyzeduration",
        "1000000",
        "-i",
        source,
        "-map",
        "0",
        "-c",
        "copy",
        "-flvflags",
        "no_duration_filesize",
        "-f",
        "flv",
        target,
    ]


@dataclass(eq=False)
class _Publisher:
    client_id: str
    key_digest: bytes
    internal_name: str
    publication: Publication | None = None
    feed: FlvFeed | None = None
    last_update: float = field(default_factory=time.monotonic)
    ended: bool = False


class CallbackError(Exception):
    def __init__(self, status: int, code: str) -> None:
        super().__init__(code)
        self.status = status
        self.code = code


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


class NginxEngine:
    name = "nginx"

    def __init__(self, settings: StreamsSettings, host: StreamHost) -> None:
        self.settings = settings
        self.host = host
        self.secret = host.callback_secret or secrets.token_urlsafe(24)
        self.networks = [
            ipaddress.ip_network(value, strict=False) for value in settings.nginx.callback_networks
        ]
        self.prefix = nginx_config.nginx_prefix(settings, host.root)
        self.config_path = self.prefix / "nginx.conf"
        self.callback_port = 0
        self.publishers: dict[str, _Publisher] = {}
        self._server: asyncio.Server | None = None
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False
        self._tasks: set[asyncio.Task[object]] = set()

    # --- life

    async def start(self) -> None:
        nginx = self.settings.nginx
        if not nginx.manage and nginx.callback_port == 0:
            raise RuntimeError("an nginx run outside Pentad needs PENTAD_STREAMS__NGINX__CALLBACK_PORT")
        self._server = await asyncio.start_server(
            self._serve, host=nginx_config.loopback_for(nginx.callback_host), port=nginx.callback_port
        )
        self.callback_port = self._server.sockets[0].getsockname()[1]
        try:
            if nginx.manage:
                await self._run_nginx()
        except BaseException:
            await self._close_server()
            raise
        self._watch = asyncio.create_task(self._watch_stale())
        logger.info("nginx_engine_started", managed=nginx.manage, callback_port=self.callback_port)

    async def _run_nginx(self) -> None:
        text = nginx_config.render(
            self.settings,
            prefix=self.prefix,
            callback_port=self.callback_port,
            secret=self.secret,
            managed=True,
        )
        await asyncio.to_thread(self._prepare_prefix, text)
        argv = [
            self.settings.nginx.binary,
            "-p",
            str(self.prefix),
            "-c",
            str(self.config_path),
            "-e",
            str(self.prefix / "logs" / "error.log"),
        ]
        await self.host.processes.start(NGINX_CHILD, argv, restart=True)
        deadline = time.monotonic() + NGINX_START_TIMEOUT
        address = nginx_config.loopback_for(self.settings.rtmp_host)
        while True:
            try:
                _, writer = await asyncio.open_connection(address, self.settings.rtmp_port)
            except OSError:
                if time.monotonic() > deadline:
                    await self.host.processes.stop(NGINX_CHILD)
                    raise RuntimeError(
                        f"nginx did not listen on {address}:{self.settings.rtmp_port} "
                        f"(see {self.prefix / 'logs' / 'error.log'})"
                    ) from None
                await asyncio.sleep(0.1)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return

    def _prepare_prefix(self, text: str) -> None:
        (self.prefix / "logs").mkdir(parents=True, exist_ok=True)
        self.prefix.chmod(0o700)
        nginx_config.write(self.config_path, text)

    def live(self) -> Mapping[uuid.UUID, Publication]:
        return {
            item.publication.camera_id: item.publication
            for item in self.publishers.values()
            if item.publication is not None and not item.ended
        }

    async def drop(self, camera_id: uuid.UUID, reason: str) -> bool:
        for publisher in list(self.publishers.values()):
            if publisher.publication is not None and publisher.publication.camera_id == camera_id:
                await self._end(publisher, reason)
                return True
        return False

    async def close(self) -> None:
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await self._close_server()
        for publisher in list(self.publishers.values()):
            await self._end(publisher, "shutdown")
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=15)
        if self.settings.nginx.manage:
            await self.host.processes.stop(NGINX_CHILD)

    async def _close_server(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    # --- streams

    async def _end(self, publisher: _Publisher, reason: str) -> None:
        """Stop pulling the publisher's stream and close it (idempotent). nginx drops the publisher itself
        at its next on_update (answered 403 from now on)."""
        if publisher.ended:
            return
        publisher.ended = True
        if publisher.publication is not None:
            # First the stream (its HLS ends cleanly, its session closes), then the pull: an ffmpeg blocked
            # reading RTMP may take the supervisor's stop timeout to go.
            await self.host.close_stream(publisher.publication, reason)
        if publisher.feed is not None:
            await publisher.feed.close()
            self._background(self.host.processes.stop(PULL_PREFIX + publisher.client_id))
        if self._stopping or reason != "key_revoked":
            self.publishers.pop(publisher.client_id, None)

    async def _publish(self, fields: dict[str, str]) -> tuple[int, dict[str, str]]:
        client_id, key, peer = fields["clientid"], fields["name"], peer_text(fields.get("addr", "?"))
        previous = self.publishers.get(client_id)
        if previous is not None:
            await self._end(previous, "replaced")
        publisher = _Publisher(client_id, _digest(key), "s" + secrets.token_hex(16))

        async def drop(reason: str) -> None:
            await self._end(publisher, reason)

        publication = await self.host.open_stream(key, engine=self.name, peer=peer, drop=drop)
        if publication is None:
            return 403, {}
        publisher.publication = publication
        self.publishers[client_id] = publisher
        feed = FlvFeed(
            self.host.socket_dir / f"{publication.camera_id.hex}.in.sock",
            publication.relay.push,
            label=str(publication.camera_id),
        )
        publisher.feed = feed
        host = nginx_config._url_host(nginx_config.loopback_for(self.settings.rtmp_host))
        source = f"rtmp://{host}:{self.settings.rtmp_port}/{self.settings.nginx.application}/{publisher.internal_name}"
        try:
            await feed.start()
            await self.host.processes.start(
                PULL_PREFIX + client_id, pull_argv(self.settings, source, feed.url), restart=True
            )
        except Exception as exc:
            logger.error("nginx_pull_failed", camera_id=str(publication.camera_id), error=type(exc).__name__)
            await self._end(publisher, "pull_failed")
            return 503, {}
        return 302, {"Location": publisher.internal_name}

    async def _publish_done(self, fields: dict[str, str]) -> int:
        publisher = self.publishers.get(fields["clientid"])
        if publisher is not None and hmac.compare_digest(publisher.key_digest, _digest(fields["name"])):
            self.publishers.pop(publisher.client_id, None)
            # nginx does not wait for the stream's end (children stopped, session closed): answer now.
            self._background(self._end(publisher, "publisher_left"))
        return 200

    def _background(self, work: Coroutine[Any, Any, object]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _update(self, fields: dict[str, str]) -> int:
        if fields["call"] != "update_publish":
            return 200  # Pentad's own pulls (update_play)
        publisher = self.publishers.get(fields["clientid"])
        if publisher is None or not hmac.compare_digest(publisher.key_digest, _digest(fields["name"])):
            return 403  # a publisher Pentad does not know (it restarted): nginx drops it, it reconnects
        if publisher.ended:
            self.publishers.pop(publisher.client_id, None)
            return 403
        publisher.last_update = time.monotonic()
        return 200

    async def _watch_stale(self) -> None:
        interval = self.settings.nginx.update_interval
        while True:
            await asyncio.sleep(interval)
            limit = time.monotonic() - interval * STALE_UPDATES - 2
            for publisher in list(self.publishers.values()):
                if publisher.last_update < limit:
                    if publisher.publication is not None and not publisher.ended:
                        logger.warning("nginx_publisher_lost", camera_id=str(publisher.publication.camera_id))
                    await self._end(publisher, "publisher_lost")
                    self.publishers.pop(publisher.client_id, None)

    # --- callbacks over HTTP

    def _check(
        self, peer: str | None, method: bytes, target: bytes, body: bytes
    ) -> tuple[str, dict[str, str]]:
        """The callback's path and form fields, or CallbackError (the secret, the caller, the shape)."""
        try:
            address = ipaddress.ip_address((peer or "").split("%")[0])
        except ValueError:
            raise CallbackError(403, "callback_forbidden") from None
        if not any(address in network for network in self.networks):
            raise CallbackError(403, "callback_forbidden")
        parts = urlsplit(target.decode("latin-1"))
        if parts.path not in CALLBACKS:
            raise CallbackError(404, "callback_not_found")
        given = parse_qs(parts.query).get("secret", [""])[0]
        if not hmac.compare_digest(given.encode(), self.secret.encode()):
            raise CallbackError(403, "callback_forbidden")
        if method != b"POST":
            raise CallbackError(405, "method_not_allowed")
        try:
            form = parse_qs(body.decode("ascii"), keep_blank_values=True, strict_parsing=bool(body))
        except (UnicodeDecodeError, ValueError):
            raise CallbackError(400, "callback_invalid") from None
        fields = {name: values[0] for name, values in form.items() if len(values) == 1}
        expected = {"/on_publish": ("publish",), "/on_publish_done": ("publish_done",)}.get(
            parts.path, ("update_publish", "update_play")
        )
        if (
            fields.get("call") not in expected
            or not fields.get("clientid", "").isdigit()
            or not fields.get("name")
            or fields.get("app") != self.settings.nginx.application
        ):
            raise CallbackError(400, "callback_invalid")
        return parts.path, fields

    async def handle(
        self, peer: str | None, method: bytes, target: bytes, body: bytes
    ) -> tuple[int, dict[str, str]]:
        """Answer one callback: (status, extra headers)."""
        path, fields = self._check(peer, method, target, body)
        if path == "/on_publish":
            return await self._publish(fields)
        if path == "/on_publish_done":
            return await self._publish_done(fields), {}
        return await self._update(fields), {}

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer_info = writer.get_extra_info("peername")
        peer = str(peer_info[0]) if isinstance(peer_info, tuple) else None
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_BYTES)
        status = 400
        headers: dict[str, str] = {}
        try:
            request: h11.Request | None = None
            body = b""
            async with asyncio.timeout(REQUEST_TIMEOUT):
                while True:
                    event = connection.next_event()
                    if event is h11.NEED_DATA:
                        data = await reader.read(65536)
                        connection.receive_data(data)
                        continue
                    if isinstance(event, h11.Request):
                        request = event
                    elif isinstance(event, h11.Data):
                        body += event.data
                        if len(body) > MAX_REQUEST_BYTES:
                            raise CallbackError(413, "callback_too_large")
                    elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                        break
            if request is None:
                raise CallbackError(400, "callback_invalid")
            status, headers = await self.handle(peer, request.method, request.target, body)
            logger.debug(
                "nginx_callback", path=urlsplit(request.target.decode("latin-1")).path, status=status
            )
        except CallbackError as exc:
            status, headers = exc.status, {"_code": exc.code}
            logger.warning("nginx_callback_refused", peer=peer, status=status, code=exc.code)
        except h11.RemoteProtocolError:
            status, headers = 400, {"_code": "callback_invalid"}
        except TimeoutError:
            status, headers = 408, {"_code": "callback_timeout"}
        except Exception:
            logger.exception("nginx_callback_failed")
            status, headers = 500, {"_code": "callback_failed"}
        await self._answer(writer, connection, status, headers)

    async def _answer(
        self, writer: asyncio.StreamWriter, connection: h11.Connection, status: int, headers: dict[str, str]
    ) -> None:
        code = headers.pop("_code", None)
        body = b""
        fields = [("Connection", "close")]
        if status >= 400:
            body = json.dumps({"type": "about:blank", "status": status, "code": code or "refused"}).encode()
            fields.append(("Content-Type", "application/problem+json"))
        fields += list(headers.items())
        fields.append(("Content-Length", str(len(body))))
        try:
            if connection.our_state is h11.SEND_RESPONSE:
                writer.write(connection.send(h11.Response(status_code=status, headers=fields)) or b"")
                if body:
                    writer.write(connection.send(h11.Data(data=body)) or b"")
                writer.write(connection.send(h11.EndOfMessage()) or b"")
            else:
                writer.write(f"HTTP/1.1 {status} \r\nConnection: close\r\nContent-Length: 0\r\n\r\n".encode())
            await writer.drain()
        except (h11.LocalProtocolError, ConnectionError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
