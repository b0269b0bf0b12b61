"""The sandbox from the inside: a game sees its own folder and /usr, not a sibling server's folder, not the
agent's data folder or credential, and runs as its own uid without capabilities."""

from __future__ import annotations

from pathlib import Path

import pytest

from pentad.agent.events import ServerState
from pentad.agent.runtime import AgentError, Runtime
from pentad.panel_wire.serverspec import ServerSpec
from tests.agent.conftest import Events, agent_settings

PROBE = """
for target in "$SIBLING/secret.txt" "$CREDENTIAL" "$DATA/run" /home/container/../other; do
  if cat "$target" >/dev/null 2>&1 || ls "$target" >/dev/null 2>&1
  then echo "LEAK $target"; else echo "denied $target"; fi
done
ls /home
echo "uid=$(id -u)"
grep CapEff /proc/self/status
echo mine > own.txt && echo "wrote own"
echo probe-done
"""


async def test_a_server_cannot_read_a_sibling_or_the_agent_credential(opened: tuple[Runtime, Events]) -> None:
    runtime, events = opened
    settings = runtime.settings
    await runtime.configure(ServerSpec(server_id="other", startup="true"))
    sibling = settings.servers_dir / "other"
    (sibling / "secret.txt").write_text("sibling's secret")
    settings.credential_path.write_text("pnd_node_credential")
    settings.credential_path.chmod(0o600)

    spec = ServerSpec(
        server_id="probe",
        startup=PROBE,
        env={
            "SIBLING": str(sibling),
            "CREDENTIAL": str(settings.credential_path),
            "DATA": str(settings.data_dir),
        },
        restart_on_crash=False,
    )
    await runtime.start(spec)
    await events.wait_line("probe", "probe-done")
    lines = events.lines("probe")
    assert not [line for line in lines if line.startswith("LEAK")], lines
    assert f"denied {sibling}/secret.txt" in lines
    assert f"denied {settings.credential_path}" in lines
    assert [line for line in lines if line == "container"] == ["container"]  # /home holds only its own folder
    uid_line = next(line for line in lines if line.startswith("uid="))
    assert int(uid_line.removeprefix("uid=")) >= settings.game_uid_base  # its own uid, not root
    assert "CapEff:\t0000000000000000" in lines
    assert "wrote own" in lines
    assert (settings.servers_dir / "probe" / "own.txt").read_text() == "mine\n"


async def test_each_server_has_its_own_uid_owning_its_folder(opened: tuple[Runtime, Events]) -> None:
    runtime, _ = opened
    await runtime.configure(ServerSpec(server_id="one", startup="true"))
    await runtime.configure(ServerSpec(server_id="two", startup="true"))
    one = (runtime.settings.servers_dir / "one").stat()
    two = (runtime.settings.servers_dir / "two").stat()
    assert one.st_uid != two.st_uid
    assert one.st_mode & 0o007 == 0  # no access for other uids


async def test_the_agent_refuses_to_start_without_a_working_sandbox(data_root: Path) -> None:
    """No silent fallback: bwrap that cannot run, or sandbox=none without allow_unsandboxed, stop open()."""
    broken = Runtime(agent_settings(data_root / "a", bwrap_path=Path("/bin/false")))
    with pytest.raises(AgentError) as refused:
        await broken.open()
    assert refused.value.code == "sandbox_unavailable"
    assert "bwrap cannot run here" in refused.value.message
    unsandboxed = Runtime(agent_settings(data_root / "b", sandbox="none"))
    with pytest.raises(AgentError) as refused:
        await unsandboxed.open()
    assert refused.value.message == "sandbox=none needs allow_unsandboxed=true"


async def test_unsandboxed_only_when_allowed_and_it_still_supervises(data_root: Path) -> None:
    runtime = Runtime(agent_settings(data_root / "agent", sandbox="none", allow_unsandboxed=True))
    await runtime.open()
    events = Events(runtime)
    try:
        assert runtime.facts()["sandbox"] == "none"
        await runtime.start(ServerSpec(server_id="plain", startup="echo up; sleep 1000 & wait"))
        await events.wait_line("plain", "up")
        status = await runtime.stop("plain")  # SIGTERM to the game's process group: sh and its sleep
        assert (status.state, status.signal) == (ServerState.OFFLINE, 15)
    finally:
        await runtime.kill("plain")
        await events.close()
        await runtime.close()
