"""The ingest engine interface. An engine speaks a publishing protocol (the built-in RTMP server; next,
nginx-rtmp through its callbacks and a loopback pull) and nothing else: whether a key may publish, the
stream's session, its relay and its packager belong to the StreamHost (media/service.py), the same for
every engine. So a publisher is authorised, recorded and packaged identically whichever engine took it.

An engine's life: `start()` (listen; raises when it cannot), `live()` (what it is carrying now),
`drop(camera_id, reason)` (disconnect that publisher: its key was revoked, the camera deleted, the node is
full), `close()` (disconnect everyone, stop listening). For each publisher it calls the host:

    publication = await host.open_stream(raw_key, engine=self.name, peer=..., drop=callback)
    # None: refused (unknown or revoked key, ...). Refuse the publisher before storing any media.
    publication.relay.push(frame)          # every audio/video/data frame, in order
    await host.close_stream(publication, reason)   # once, when the publisher leaves or is dropped

`drop` is the engine's own way to disconnect that publisher (the host calls it on revocation)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pentad.apps.streams.media.packager import Processes
from pentad.apps.streams.media.relay import StreamRelay

Drop = Callable[[str], Awaitable[None]]
"""Disconnect the publisher, with a reason for the log and the session's end (`key_revoked`, ...)."""


@dataclass(eq=False)
class Publication:
    """An accepted publisher's stream: its camera, session, key, relay."""

    camera_id: uuid.UUID
    session_id: uuid.UUID
    key_id: uuid.UUID | None
    """The stream key it published with (None: pulled, e.g. over RTSP)."""
    engine: str
    relay: StreamRelay
    drop: Drop
    closed: bool = field(default=False)


class StreamHost(Protocol):
    """What an engine calls (media/service.py's MediaService)."""

    root: Path
    """MEDIA_DIR."""
    socket_dir: Path
    """The media plane's private (0700) folder for unix sockets."""
    processes: Processes
    """The service's supervised children (engines that run programs: nginx, its pulls)."""
    callback_secret: str | None
    """The shared secret of an external engine's callbacks (nginx-rtmp), when the service has one."""

    async def open_stream(self, raw_key: str, *, engine: str, peer: str, drop: Drop) -> Publication | None:
        """Authorise the key and open the stream (session, relay, packager); None when refused, having
        logged why (never the key). Nothing is stored for a refused publisher."""
        ...

    async def close_stream(self, publication: Publication, reason: str) -> None:
        """The publisher has gone (or was dropped): end the stream's consumers and its session. Idempotent."""
        ...


class IngestEngine(Protocol):
    name: str

    async def start(self) -> None: ...

    def live(self) -> Mapping[uuid.UUID, Publication]:
        """The publications this engine carries now, by camera id."""
        ...

    async def drop(self, camera_id: uuid.UUID, reason: str) -> bool:
        """Disconnect the camera's publisher; False when it has none here."""
        ...

    async def close(self) -> None: ...
