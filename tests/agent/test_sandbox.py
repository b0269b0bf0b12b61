"""The sandbox from the inside: a game sees its own folder and /usr, not a sibling server's folder, not the
agent's data folder or credential, and runs as its own uid without capabilities."""

from __future__ import annotations

from pentad.agent.runtime import Runtime
from pentad.panel_wire.serverspec import ServerSpec
from tests.agent.conftest import Events

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
