"""The built-in engine: Pentad's own asyncio RTMP server (media/rtmp/), so `make run` streams with nothing
else installed but ffmpeg. It listens on PENTAD_STREAMS__RTMP_HOST:RTMP_PORT inside the `streams.ingest`
service."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from pentad.apps.streams.media.engines.base import Publication, StreamHost
from pentad.apps.streams.media.rtmp.server import RtmpServer
from pentad.apps.streams.media.rtmp.session import SessionLimits
from pentad.apps.streams.settings import StreamsSettings

CONNECTIONS_PER_STREAM = 2
"""Connections allowed per stream of MAX_STREAMS (publishers reconnecting, clients mid-handshake)."""


class BuiltinEngine:
    name = "builtin"

    def __init__(self, settings: StreamsSettings, host: StreamHost) -> None:
        self.server = RtmpServer(
            host,
            address=settings.rtmp_host,
            port=settings.rtmp_port,
            engine=self.name,
            limits=SessionLimits(
                handshake_timeout=settings.handshake_timeout,
                idle_timeout=settings.idle_timeout,
                keyframe_timeout=settings.keyframe_timeout,
                max_bitrate_kbps=settings.max_bitrate_kbps,
            ),
            max_connections=settings.max_streams * CONNECTIONS_PER_STREAM + 8,
        )

    async def start(self) -> None:
        await self.server.start()

    def live(self) -> Mapping[uuid.UUID, Publication]:
        return self.server.publications()

    async def drop(self, camera_id: uuid.UUID, reason: str) -> bool:
        publication = self.server.publications().get(camera_id)
        if publication is None:
            return False
        await publication.drop(reason)
        return True

    async def close(self) -> None:
        await self.server.close()
