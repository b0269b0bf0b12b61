"""The agent's link against a scripted panel: a real WebSocket server on loopback speaking the wire
protocol frame by frame (the real panel end is tested in tests/apps/panel/test_agent_link.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from pentad.agent import enrol
from pentad.agent.events import ServerState
from pentad.agent.link import AgentLink, Backoff, url_of
from pentad.panel_wire import protocol as wire
from tests.agent.fake_runtime import FakeRuntime

WAIT = 10.0
CREDENTIAL = "pnd_test_secret"
Handler = Callable[[ServerConnection], Awaitable[None]]


@asynccontextmanager
async def scripted_panel(handler: Handler, refusals: list[str] | None = None) -> AsyncIterator[str]:
    """A WebSocket server on a free loopback port that closes sockets without the credential with 4401
    (noted in `refusals`); yields its http:// base URL."""

    async def checked(connection: ServerConnection) -> None:
        assert connection.request is not None
        if connection.request.headers.get("Authorization") != f"Bearer {CREDENTIAL}":
            if refusals is not None:
                refusals.append("refused")
            await connection.close(wire.CLOSE_UNAUTHORISED, "bad credential")
            return
        await handler(connection)

    async with serve(checked, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"http://127.0.0.1:{port}"


@asynccontextmanager
async def running(link: AgentLink) -> AsyncIterator[AgentLink]:
    task = asyncio.create_task(link.run())
    try:
        yield link
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def make_link(url: str, runtime: FakeRuntime, **options: Any) -> AgentLink:
    credential = enrol.NodeCredential(url, "node-1", "node one", CREDENTIAL)
    return AgentLink(
        credential, runtime, agent_version="9.9", reconnect_first=0.05, reconnect_max=0.2, **options
    )


async def recv(connection: ServerConnection) -> wire.AgentFrame:
    async with asyncio.timeout(WAIT):
        return wire.decode_agent_frame(await connection.recv())


async def recv_kind(connection: ServerConnection, kind: type[Any]) -> Any:
    """The next frame of `kind`, skipping heartbeats and the runtime's other events."""
    while True:
        frame = await recv(connection)
        if isinstance(frame, kind):
            return frame


WELCOME = wire.Welcome(node_id="node-1", heartbeat_interval=0.05, heartbeat_timeout=0.5)


def test_backoff_is_equal_jitter_doubling_to_a_cap() -> None:
    backoff = Backoff(first=1.0, maximum=8.0)
    delays = [backoff.next_delay() for _ in range(6)]
    for attempt, delay in enumerate(delays):
        ceiling = min(8.0, 2.0**attempt)
        assert ceiling / 2 <= delay <= ceiling
    backoff.reset()
    assert 0.5 <= backoff.next_delay() <= 1.0
    assert 4.0 <= backoff.slowest() <= 8.0


def test_socket_url_follows_the_panel_url() -> None:
    assert url_of("https://panel.example/") == "wss://panel.example/api/panel/agent/socket"
    assert url_of("http://127.0.0.1:8000") == "ws://127.0.0.1:8000/api/panel/agent/socket"
    with pytest.raises(ValueError, match="http"):
        url_of("ftp://x")


async def test_hello_welcome_calls_events_and_heartbeats() -> None:
    runtime = FakeRuntime()
    runtime.states["s1"] = ServerState.OFFLINE
    seen: dict[str, Any] = {}
    finished = asyncio.Event()

    async def panel(connection: ServerConnection) -> None:
        hello = await recv(connection)
        assert isinstance(hello, wire.Hello)
        seen["hello"] = hello
        await connection.send(wire.encode(WELCOME))
        spec = {"server_id": "s1", "startup": "./run"}
        await connection.send(
            wire.encode(wire.Call(id=1, method="start", server_id="s1", params={"spec": spec}))
        )
        seen["start"] = await recv_kind(connection, wire.Reply)
        seen["console"] = await recv_kind(connection, wire.ConsoleBatch)
        await connection.send(
            wire.encode(wire.Call(id=2, method="send_command", server_id="s1", params={"command": "say hi"}))
        )
        seen["command"] = await recv_kind(connection, wire.Reply)
        await connection.send(wire.encode(wire.Call(id=3, method="console_history", server_id="s1")))
        seen["history"] = await recv_kind(connection, wire.Reply)
        await connection.send(wire.encode(wire.Call(id=4, method="stop", server_id="nope")))
        seen["heartbeat"] = await recv_kind(connection, wire.Heartbeat)
        finished.set()
        await connection.wait_closed()

    async with scripted_panel(panel) as url, running(make_link(url, runtime)) as link:
        async with asyncio.timeout(WAIT):
            await finished.wait()
        assert link.sessions == 1

    hello = seen["hello"]
    assert hello.node_id == "node-1"
    assert hello.agent_version == "9.9"
    assert hello.protocol == wire.PROTOCOL_VERSION
    assert hello.facts["limits_backend"] == "rlimits"
    assert [(s.server_id, s.state) for s in hello.servers] == [("s1", "offline")]
    assert seen["start"].ok
    assert seen["start"].result["state"] == "starting"
    assert runtime.calls[0] == ("start", "s1")
    assert runtime.specs["s1"].startup == "./run"
    assert seen["console"].server_id == "s1"
    assert seen["command"].ok
    assert runtime.commands == [("s1", "say hi")]
    assert seen["history"].result["lines"][-1] == "> say hi"


async def test_refusals_are_error_replies_and_garbage_an_error_frame() -> None:
    runtime = FakeRuntime()
    seen: dict[str, Any] = {}
    finished = asyncio.Event()

    async def panel(connection: ServerConnection) -> None:
        await recv(connection)
        await connection.send(wire.encode(WELCOME))
        await connection.send(
            wire.encode(wire.Call(id=1, method="send_command", server_id="s9", params={"command": "x"}))
        )
        seen["not_running"] = await recv_kind(connection, wire.Reply)
        await connection.send(wire.encode(wire.Call(id=2, method="start", server_id="s9", params={})))
        seen["bad_params"] = await recv_kind(connection, wire.Reply)
        await connection.send("this is not a frame")
        seen["garbage"] = await recv_kind(connection, wire.Error)
        await connection.send(json.dumps({"t": "call", "id": 3, "method": "format_disk"}))
        seen["unknown"] = await recv_kind(connection, wire.Error)
        await connection.send(wire.encode(wire.Call(id=4, method="state", server_id="s9")))
        seen["still_there"] = await recv_kind(connection, wire.Reply)
        finished.set()
        await connection.wait_closed()

    async with scripted_panel(panel) as url, running(make_link(url, runtime)):
        async with asyncio.timeout(WAIT):
            await finished.wait()

    assert not seen["not_running"].ok
    assert seen["not_running"].error.code == "not_running"
    assert seen["bad_params"].error.code == "bad_params"
    assert seen["garbage"].code == "bad_json"
    assert seen["unknown"].code == "bad_frame"
    assert seen["still_there"].ok
    assert seen["still_there"].result["state"] == "offline"


async def test_installs_answer_once_begun_and_report_their_end_as_state_frames() -> None:
    runtime = FakeRuntime()
    seen: list[wire.AgentFrame] = []
    finished = asyncio.Event()

    async def panel(connection: ServerConnection) -> None:
        await recv(connection)
        await connection.send(wire.encode(WELCOME))
        spec = {"server_id": "s1", "startup": "./run", "install_script": "echo hi"}
        await connection.send(
            wire.encode(wire.Call(id=1, method="install", server_id="s1", params={"spec": spec}))
        )
        while len([f for f in seen if isinstance(f, wire.StateChange)]) < 2:
            frame = await recv(connection)
            if not isinstance(frame, wire.Heartbeat):
                seen.append(frame)
        finished.set()
        await connection.wait_closed()

    async with scripted_panel(panel) as url, running(make_link(url, runtime)):
        async with asyncio.timeout(WAIT):
            await finished.wait()

    reply = next(frame for frame in seen if isinstance(frame, wire.Reply))
    assert reply.ok
    assert reply.result == {**reply.result, "server_id": "s1", "state": "installing"}
    states = [(f.state, f.reason) for f in seen if isinstance(f, wire.StateChange)]
    assert states == [("installing", "install"), ("offline", "install")]


async def test_the_link_reconnects_when_the_panel_drops_it_or_goes_silent() -> None:
    runtime = FakeRuntime()
    hellos = 0
    third = asyncio.Event()

    async def panel(connection: ServerConnection) -> None:
        nonlocal hellos
        await recv(connection)
        hellos += 1
        await connection.send(wire.encode(WELCOME))
        if hellos == 1:
            await connection.close(1012, "panel restarting")  # dropped at once
        elif hellos == 2:
            await connection.wait_closed()  # silent: the agent gives up after heartbeat_timeout
        else:
            third.set()
            await connection.wait_closed()

    async with scripted_panel(panel) as url, running(make_link(url, runtime)) as link:
        async with asyncio.timeout(WAIT):
            await third.wait()
            while True:
                if link.sessions >= 3:
                    break
                await asyncio.sleep(0.01)
        assert link.sessions == 3


async def test_a_refused_credential_is_retried_at_the_slowest_pace() -> None:
    runtime = FakeRuntime()
    refusals: list[str] = []

    async def panel(connection: ServerConnection) -> None:
        raise AssertionError("a wrong credential never gets here")

    async with scripted_panel(panel, refusals) as url:
        credential = enrol.NodeCredential(url, "node-1", "", "pnd_wrong")
        link = AgentLink(credential, runtime, agent_version="9.9", reconnect_first=0.01, reconnect_max=60)
        async with running(link):
            async with asyncio.timeout(WAIT):
                while True:
                    if refusals and link.backoff.attempt >= 32:
                        break
                    await asyncio.sleep(0.01)
    assert refusals == ["refused"]  # closed 4401 at once; the next try waits 30-60 s, not 0.01 s
    assert link.sessions == 0


def test_the_credential_file_is_private_and_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "agent" / "credential"
    enrol.save_credential(path, enrol.NodeCredential("http://p", "n1", "one", "pnd_a"))
    enrol.save_credential(path, enrol.NodeCredential("http://p", "n1", "one", "pnd_b"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o711  # passable by game uids, not listable
    assert enrol.load_credential(path).credential == "pnd_b"
    assert "pnd_b" not in repr(enrol.load_credential(path))
    assert [p.name for p in path.parent.iterdir()] == ["credential"]


def test_a_missing_or_broken_credential_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(enrol.EnrolError, match="pentad agent enrol"):
        enrol.load_credential(tmp_path / "credential")
    (tmp_path / "credential").write_text("{")
    with pytest.raises(enrol.EnrolError, match="cannot read"):
        enrol.load_credential(tmp_path / "credential")


def test_enrolling_with_an_unreachable_panel_stores_nothing(tmp_path: Path) -> None:
    with pytest.raises(enrol.EnrolError, match="cannot reach"):
        enrol.enrol("http://127.0.0.1:9", "pne_x", tmp_path / "credential", timeout=2)
    with pytest.raises(enrol.EnrolError, match="http"):
        enrol.enrol("panel.example", "pne_x", tmp_path / "credential")
    assert not (tmp_path / "credential").exists()
