"""A served panel with one real `pentad agent` process (enrolled with `pentad agent enrol`, its own data
folder, bubblewrap available) for tests whose behaviour crosses the link: the file manager, backups.
The games' tests (test_games.py) build the same thing for themselves."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from pentad.core.db.migrate import upgrade_async
from tests.agent.conftest import require_bwrap
from tests.apps.panel.link_support import (
    ServedPanel,
    enrolment_token,
    eventually,
    node_row,
    panel_settings,
    served_panel,
)
from tests.apps.panel.test_games import VENV_BIN, run_command
from tests.conftest import ALL_APPS
from tests.factories import bearer, create_admin, issue_api_key

WAIT = 60.0


@dataclass
class AgentStack:
    panel: ServedPanel
    http: httpx.AsyncClient
    headers: dict[str, str]
    node_id: str
    home: Path
    agent_log: Path

    def server_folder(self, server_id: str) -> Path:
        return self.home / "agent" / "servers" / server_id


def _home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="pentad-panel-agent-", dir="/tmp"))
    home.chmod(0o711)
    return home


@asynccontextmanager
async def agent_stack(**panel: Any) -> AsyncIterator[AgentStack]:
    """Outside pytest's 0700 temporary folders: game uids pass through every folder above theirs."""
    require_bwrap()
    home = _home()
    try:
        url = f"sqlite+aiosqlite:///{home / 'panel.db'}"
        await upgrade_async(url, ALL_APPS)
        # heartbeats patient enough for a loaded machine: a link dropped mid-upload would answer 409
        # node_offline, which is right, but not what these tests are about
        link = {"agent_command_timeout": 30.0, "heartbeat_interval": 1.0, "heartbeat_timeout": 20.0}
        settings = panel_settings(home / "panel", url, **{**link, **panel})
        # the in-process job worker runs the panel's jobs (backups), polling often
        jobs = settings.jobs.model_copy(update={"in_process_worker": True, "poll_interval": 0.1})
        settings = settings.model_copy(update={"jobs": jobs})
        async with served_panel(settings) as served:
            admin = await create_admin(served.platform)
            headers = bearer(await issue_api_key(served.platform, admin))
            env = {
                **os.environ,
                "PENTAD_AGENT__DATA_DIR": str(home / "agent"),
                "PENTAD_AGENT__CGROUP_ROOT": str(home / "no-cgroup"),
                "PENTAD_AGENT__NFT_TABLE": "pentad_agent_test",
            }
            token = await enrolment_token(served.platform, "files")
            code, output = await run_command(
                str(VENV_BIN / "pentad"), "agent", "enrol", served.url, token, env=env
            )
            assert code == 0, output
            credential = json.loads((home / "agent" / "credential").read_text())
            log = home / "agent.log"
            with log.open("wb") as sink:
                agent = await asyncio.create_subprocess_exec(
                    str(VENV_BIN / "pentad"), "agent", "run", env=env, stdout=sink, stderr=sink
                )
            try:

                async def online() -> bool:
                    assert agent.returncode is None, log.read_text()
                    return (await node_row(served.platform, credential["node_id"])).status == "online"

                await eventually(online, "the agent online")
                async with httpx.AsyncClient(base_url=served.url, timeout=WAIT) as http:
                    yield AgentStack(served, http, headers, credential["node_id"], home, log)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    agent.terminate()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(20):
                        await agent.wait()
                if agent.returncode is None:
                    agent.kill()
                    await agent.wait()
                for state_file in (home / "agent" / "run").glob("*/state.json"):
                    with contextlib.suppress(
                        ValueError, KeyError, TypeError, ProcessLookupError, PermissionError
                    ):
                        os.kill(int(json.loads(state_file.read_text())["shim_pid"]), signal.SIGKILL)
    finally:
        shutil.rmtree(home, ignore_errors=True)
