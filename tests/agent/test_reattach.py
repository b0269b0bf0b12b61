"""Game servers outlive the agent: the agent process is SIGKILLed, its game keeps running under the shim,
and a new Runtime re-attaches to its console (new lines, history) and status; a game that exited while no
agent listened is reported from the shim's state file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from pentad.agent.events import ServerState
from pentad.agent.runtime import Runtime
from pentad.agent.shim import pid_alive, read_state
from tests.agent.conftest import Events, agent_settings, eventually, require_bwrap

AGENT = """
import asyncio, sys
from pathlib import Path
from pentad.agent.runtime import Runtime
from pentad.agent.settings import AgentSettings
from pentad.panel_wire.serverspec import ServerSpec

async def main():
    data = Path(sys.argv[1])
    runtime = Runtime(AgentSettings(data_dir=data, cgroup_root=data / "none", nft_table="pentad_agent_test"))
    await runtime.open()
    script = 'echo started; while read line; do echo "echo: $line"; [ "$line" = die ] && exit 5; done'
    await runtime.start(ServerSpec(server_id="survivor", startup=script, done=["started"]))
    await runtime.send_command("survivor", "before the kill")
    while "echo: before the kill" not in await runtime.console_history("survivor", 10):
        await asyncio.sleep(0.02)  # the game runs and took the command
    print("ready", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def _agent_process(data_dir: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", AGENT, str(data_dir)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=False,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


async def test_the_game_survives_sigkill_of_the_agent_and_a_new_runtime_reattaches(data_root: Path) -> None:
    require_bwrap()
    data_dir = data_root / "agent"
    agent = _agent_process(data_dir)
    run_dir = data_dir / "run" / "survivor"
    state = read_state(run_dir)
    assert state is not None
    assert state["running"]
    agent.send_signal(signal.SIGKILL)
    agent.wait()

    assert pid_alive(state["shim_pid"])
    assert pid_alive(state["game_pid"])
    runtime = Runtime(agent_settings(data_dir))
    await runtime.open()
    events = Events(runtime)
    try:
        status = runtime.status("survivor")
        assert status.state == ServerState.RUNNING  # its done line is in the shim's history
        assert status.attached
        assert status.game_pid == state["game_pid"]
        await events.wait_state("survivor", "running")
        assert events.states("survivor")[0] == ("running", "reattached")
        # History written while the first agent ran (and nobody listened) is kept by the shim.
        assert "echo: before the kill" in await runtime.console_history("survivor", 50)
        # The console works again: a command in, its output out.
        await runtime.send_command("survivor", "after the kill")
        await events.wait_line("survivor", "echo: after the kill")
        stats = await runtime.stats("survivor")
        assert stats.memory_bytes > 0
        assert stats.uptime_seconds >= 0
        # And the exit is seen by the new agent (crash policy applies: exit 5 is unexpected).
        runtime.settings.crash_max_restarts = 0
        await runtime.send_command("survivor", "die")
        crashed = await events.wait_state("survivor", "crashed")
        assert crashed.exit_code == 5
    finally:
        await runtime.kill("survivor")
        await events.close()
        await runtime.close()


async def test_an_exit_while_no_agent_listened_is_reported_at_open(data_root: Path) -> None:
    require_bwrap()
    data_dir = data_root / "agent"
    agent = _agent_process(data_dir)
    run_dir = data_dir / "run" / "survivor"
    state = read_state(run_dir)
    assert state is not None
    agent.send_signal(signal.SIGKILL)
    agent.wait()
    # Stop the game behind the agent's back (as a crash would): the shim records the exit and leaves.
    for pid in _children(state["sandbox_pid"]):
        os.kill(pid, signal.SIGTERM)

    async def shim_left() -> bool:
        return not pid_alive(state["shim_pid"])

    await eventually(shim_left)
    ended = read_state(run_dir)
    assert ended is not None
    assert ended["running"] is False
    assert ended["signal"] == signal.SIGTERM

    runtime = Runtime(agent_settings(data_dir, crash_max_restarts=0))
    await runtime.open()
    events = Events(runtime)
    try:
        crashed = await events.wait_state("survivor", "crashed")
        assert crashed.signal == signal.SIGTERM
        assert "echo: before the kill" in await runtime.console_history("survivor", 50)  # from console.log
    finally:
        await events.close()
        await runtime.close()
    # Reported once: a second agent start does not report the same exit again.
    again = Runtime(agent_settings(data_dir))
    await again.open()
    assert again.status("survivor").state == ServerState.OFFLINE
    await again.close()


def _children(pid: int) -> list[int]:
    from pentad.agent.shim import descendants

    return descendants(pid)
