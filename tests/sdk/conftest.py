"""Fixtures of the SDK tests: a real chat server process (SQLite file of its own: the SDK speaks only the
wire protocols, whichever database is behind them), a ChatServer on it, users with ChatClients."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pentad_chat import ChatClient, ChatServer, ChatUserDetail
from tests.sdk.live_chat import ChatServerProcess

WAIT = 20.0
"""Upper bound of the waits in these tests."""


async def until(condition: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(WAIT):
            while True:
                if condition():
                    return
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def start_server(directory: Path) -> ChatServerProcess:
    server = await ChatServerProcess.create(directory, f"sqlite+aiosqlite:///{directory / 'pentad.db'}")
    await server.start()
    return server


@pytest.fixture(scope="session")
async def chat_process(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ChatServerProcess]:
    """One server for the tests that do not stop it."""
    server = await start_server(tmp_path_factory.mktemp("sdk"))
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def restartable_process(tmp_path: Path) -> AsyncIterator[ChatServerProcess]:
    """A server of the test's own, to kill and restart."""
    server = await start_server(tmp_path)
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def chat_server(chat_process: ChatServerProcess) -> AsyncIterator[ChatServer]:
    async with ChatServer(chat_process.base_url, chat_process.server_key) as server:
        yield server


@dataclass
class Person:
    user: ChatUserDetail
    token: str
    client: ChatClient

    @property
    def id(self) -> uuid.UUID:
        return self.user.id

    @property
    def external_id(self) -> str:
        return self.user.external_id


PersonFactory = Callable[..., Awaitable[Person]]


async def _people(process: ChatServerProcess) -> AsyncIterator[PersonFactory]:
    clients: list[ChatClient] = []
    async with ChatServer(process.base_url, process.server_key) as server:

        async def make(name: str | None = None, **options: object) -> Person:
            """A user upserted through the server API with an unconnected ChatClient of their own."""
            external_id = f"{name or 'user'}-{uuid.uuid4().hex[:8]}"
            user = await server.upsert_user(external_id, name=(name or "user").title())
            token = (await server.create_user_token(external_id)).token
            options.setdefault("backoff_max", 1.0)
            client = ChatClient(process.base_url, token, **options)  # type: ignore[arg-type]
            clients.append(client)
            return Person(user, token, client)

        try:
            yield make
        finally:
            for client in clients:
                await client.close()


@pytest.fixture
async def person(chat_process: ChatServerProcess) -> AsyncIterator[PersonFactory]:
    async for make in _people(chat_process):
        yield make


@pytest.fixture
async def restartable_person(restartable_process: ChatServerProcess) -> AsyncIterator[PersonFactory]:
    async for make in _people(restartable_process):
        yield make
