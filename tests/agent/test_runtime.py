"""Runtime power actions on real shims in real bubblewrap sandboxes: start, console in and out, the done
line, stop (command, then signals after the timeout), kill, the crash policy with crash-loop detection,
install scripts."""

from __future__ import annotations

import pytest

from pentad.agent.events import ServerState
from pentad.agent.runtime import AgentError, Runtime
from pentad.panel_wire.serverspec import ServerSpec, StopSpec
from tests.agent.conftest import Events

ECHO = (
    'echo "booting"; echo "ready on ${PORT}"; '
    'while read line; do [ "$line" = stop ] && exit 0; echo "got: $line"; done'
)


async def test_start_console_and_stop_with_the_stop_command(opened: tuple[Runtime, Events]) -> None:
    runtime, events = opened
    spec = ServerSpec(
        server_id="echo1",
        startup=ECHO.replace("${PORT}", "{{PORT}}"),
        env={"PORT": "27015"},
        done=[r"ready on \d+"],
        stop=StopSpec(kind="command", value="stop"),
    )
    await runtime.start(spec)
    await events.wait_state("echo1", "running")
    assert "ready on 27015" in events.lines("echo1")
    assert runtime.status("echo1").state == ServerState.RUNNING

    await runtime.send_command("echo1", "hello world")
    await events.wait_line("echo1", "got: hello world")
    assert "got: hello world" in await runtime.console_history("echo1", 10)

    status = await runtime.stop("echo1")
    assert status.state == ServerState.OFFLINE
    assert status.exit_code == 0
    assert events.states("echo1")[-2:] == [("stopping", "stop"), ("offline", "stop")]
    assert "[pentad] stop: sending 'stop'" in events.lines("echo1")
    assert not any("SIGTERM" in line for line in events.lines("echo1"))  # the command was enough


async def test_stop_signals_after_the_timeout(opened: tuple[Runtime, Events]) -> None:
    """A game that ignores the stop command and SIGTERM gets SIGTERM after the stop timeout, then SIGKILL."""
    runtime, events = opened
    spec = ServerSpec(
        server_id="stubborn",
        startup="trap '' TERM INT; echo up; while true; do sleep 0.05; done",
        stop=StopSpec(kind="command", value="quit"),
        stop_timeout=0.5,
    )
    await runtime.start(spec)
    await events.wait_line("stubborn", "up")
    runtime.settings.kill_timeout = 0.5
    status = await runtime.stop("stubborn")
    assert status.state == ServerState.OFFLINE
    assert status.signal == 9
    lines = events.lines("stubborn")
    steps = [line for line in lines if line.startswith("[pentad] stop")]
    assert steps == [
        "[pentad] stop: sending 'quit'",
        "[pentad] stop: still running after 0.5 s; SIGTERM",
        "[pentad] stop: still running 0.5 s after SIGTERM; SIGKILL",
    ]


async def test_stop_by_signal_and_kill(opened: tuple[Runtime, Events]) -> None:
    runtime, events = opened
    spec = ServerSpec(server_id="sig", startup="echo up; exec sleep 1000", stop=StopSpec.from_egg("^C"))
    await runtime.start(spec)
    await events.wait_line("sig", "up")
    status = await runtime.stop("sig")
    assert (status.state, status.signal) == (ServerState.OFFLINE, 2)  # SIGINT, as eggs' ^C says

    await runtime.start("sig")  # the stored spec
    await events.wait_line("sig", "up", start=len(events.seen) - 1)
    status = await runtime.kill("sig")
    assert (status.state, status.signal) == (ServerState.OFFLINE, 9)
    assert events.states("sig")[-1] == ("offline", "kill")
    with pytest.raises(AgentError) as refused:
        await runtime.send_command("sig", "anything")
    assert refused.value.code == "not_running"


async def test_crash_restarts_then_crash_loop_stops_restarting(opened: tuple[Runtime, Events]) -> None:
    runtime, events = opened
    runtime.settings.crash_max_restarts = 2
    spec = ServerSpec(server_id="crashy", startup="echo starting; exit 3")
    await runtime.start(spec)
    crashed = await events.wait_state("crashy", "crashed")
    assert crashed.reason == "crash_loop"
    assert crashed.exit_code == 3
    assert crashed.crash_count == 3
    states = events.states("crashy")
    # The first start, then two restarts by policy, then no more.
    assert [reason for state, reason in states if state == "starting"] == [
        "start",
        "crash_restart",
        "crash_restart",
    ]
    assert events.lines("crashy").count("starting") == 3
    assert runtime.status("crashy").state == ServerState.CRASHED
    assert any("crash loop: 3 crashes" in line for line in events.lines("crashy"))

    # A start by hand resets the loop: one more run, which (allowed no restart now) is a loop at once.
    runtime.settings.crash_max_restarts = 0
    mark = len(events.seen)
    await runtime.start("crashy")
    again = await events.wait_state("crashy", "crashed", start=mark)
    assert again.crash_count == 1


async def test_no_restart_when_the_spec_says_so(opened: tuple[Runtime, Events]) -> None:
    runtime, events = opened
    await runtime.start(ServerSpec(server_id="once", startup="exit 1", restart_on_crash=False))
    offline = await events.wait_state("once", "offline")
    assert (offline.reason, offline.exit_code) == ("exited", 1)
    assert [s for s, _ in events.states("once")].count("starting") == 1


async def test_bad_commands_are_refused(opened: tuple[Runtime, Events]) -> None:
    runtime, events = opened
    await runtime.start(ServerSpec(server_id="cmd", startup="echo up; cat"))
    await events.wait_line("cmd", "up")
    for bad in ("two\nlines", "nul\x00", "x" * 5000):
        with pytest.raises(AgentError) as refused:
            await runtime.send_command("cmd", bad)
        assert refused.value.code == "bad_request"
    with pytest.raises(AgentError) as refused:
        await runtime.start("cmd")
    assert refused.value.code == "already_running"
    with pytest.raises(AgentError) as refused:
        await runtime.send_command("nobody", "x")
    assert refused.value.code == "unknown_server"
    with pytest.raises(AgentError) as refused:
        await runtime.send_command("../etc", "x")
    assert refused.value.code == "bad_request"


async def test_install_script_runs_in_the_sandbox_and_streams(opened: tuple[Runtime, Events]) -> None:
    runtime, events = opened
    spec = ServerSpec(
        server_id="inst",
        startup="cat ./game.txt",
        env={"GREETING": "hello"},
        install_script='cd /mnt/server; echo "installing $GREETING"; echo "$GREETING from install" >game.txt',
    )
    assert await runtime.install(spec) == 0
    await events.wait_state("inst", "offline")
    assert "installing hello" in events.lines("inst")
    assert events.states("inst") == [("installing", "install"), ("offline", "install")]
    assert (runtime.settings.servers_dir / "inst" / "game.txt").read_text() == "hello from install\n"

    failing = spec.model_copy(update={"install_script": "echo broken >&2; exit 4"})
    mark = len(events.seen)
    assert await runtime.install(failing) == 4
    await events.wait_state("inst", "offline", start=mark)
    assert events.states("inst")[-1] == ("offline", "install_failed")
    assert "broken" in events.lines("inst")
