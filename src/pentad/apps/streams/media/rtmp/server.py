"""The built-in RTMP server: an asyncio listener running one RtmpSession per connection."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import structlog

from pentad.apps.streams.media.engines.base import Publication, StreamHost
from pentad.apps.streams.media.rtmp.session import RtmpSession, SessionLimits

logger = structlog.get_logger("pentad.streams.rtmp")


class RtmpServer:
    """Listens on host:port (port 0: any free one, see `port`); at most `max_connections` at once (more are
    closed at once with an `rtmp_rejected` line)."""

    def __init__(
        self,
        host: StreamHost,
        *,
        address: str,
        port: int,
        engine: str,
        limits: SessionLimits,
        max_connections: int,
    ) -> None:
        self.host = host
        self.address = address
        self.requested_port = port
        self.engine = engine
        self.limits = limits
        self.max_connections = max_connections
        self.sessions: dict[RtmpSession, asyncio.Task[None]] = {}
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the RTMP server is not listening")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.address, self.requested_port, reuse_address=True
        )
        logger.info("rtmp_listening", address=self.address, port=self.port, engine=self.engine)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self.sessions) >= self.max_connections:
            peer = writer.get_extra_info("peername")
            logger.warning("rtmp_rejected", reason="too_many_connections", peer=str(peer))
            writer.close()
            return
        session = RtmpSession(reader, writer, self.host, engine=self.engine, limits=self.limits)
        task = asyncio.current_task()
        assert task is not None
        self.sessions[session] = task
        try:
            await session.run()
        except Exception:  # a bug in one session must not take the listener down
            logger.exception("rtmp_session_failed", peer=session.peer)
        finally:
            self.sessions.pop(session, None)

    def publications(self) -> dict[uuid.UUID, Publication]:
        return {
            session.publication.camera_id: session.publication
            for session in self.sessions
            if session.publication is not None
        }

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for session in list(self.sessions):
            await session._drop("shutdown")
        tasks = list(self.sessions.values())
        if tasks:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self._server.wait_closed()
            self._server = None
