"""`pentad agent status` reads the shims of the data folder; PENTAD_AGENT__ variables are known settings."""

from __future__ import annotations

import json

from click.testing import CliRunner

from pentad.agent.runtime import Runtime
from pentad.cli import main
from pentad.panel_wire.serverspec import ServerSpec
from tests.agent.conftest import Events


async def test_status_lists_the_servers_with_their_shims(opened: tuple[Runtime, Events]) -> None:
    runtime, events = opened
    await runtime.start(ServerSpec(server_id="listed", startup="echo up; cat"))
    await events.wait_line("listed", "up")
    env = {
        "PENTAD_AGENT__DATA_DIR": str(runtime.settings.data_dir),
        "PENTAD_AGENT__CGROUP_ROOT": str(runtime.settings.cgroup_root),
        "PENTAD_AGENT__NFT_TABLE": "pentad_agent_test",  # never the host's own agent table
    }
    result = CliRunner().invoke(main, ["agent", "status", "--json"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["sandbox"].startswith("bubblewrap")
    assert report["limits"].startswith("rlimits")
    [server] = report["servers"]
    assert server["server"] == "listed"
    assert server["running"] is True
    assert server["shim_pid"] == runtime.status("listed").pid
    await runtime.kill("listed")
    result = CliRunner().invoke(main, ["agent", "status"], env=env)
    assert "listed: stopped (exit None, signal 9)" in result.stdout


def test_agent_settings_are_known_and_typos_are_named() -> None:
    runner = CliRunner()
    good = runner.invoke(main, ["agent", "--help"], env={"PENTAD_AGENT__STOP_TIMEOUT": "5"})
    assert good.exit_code == 0
    assert "unknown setting" not in good.stderr
    typo = runner.invoke(main, ["agent", "--help"], env={"PENTAD_AGENT__STOP_TIMEOUTT": "5"})
    assert (
        "unknown setting PENTAD_AGENT__STOP_TIMEOUTT is ignored; did you mean PENTAD_AGENT__STOP_TIMEOUT?"
        in (typo.stderr)
    )
