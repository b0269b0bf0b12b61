"""`pentad agent …`: run the agent daemon (`run`), show what it runs (`status`). Other commands of the
agent (`enrol`, by pentad.agent.enrol) are named in COMMANDS and loaded when they run; `run` runs the
panel link (pentad.agent.link:run_agent) when it is installed."""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import signal
import sys
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from pentad.agent.settings import AgentSettings

# More sub-commands: name -> "module:attribute" of a click command (loaded on demand).
COMMANDS: dict[str, str] = {"enrol": "pentad.agent.enrol:enrol_command"}
# The panel link: `async def run_agent(settings) -> None` opens the Runtime and runs until cancelled.
LINK = "pentad.agent.link:run_agent"


class _AgentGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *(name for name in COMMANDS if _load(COMMANDS[name]))})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in COMMANDS:
            loaded = _load(COMMANDS[cmd_name])
            command = loaded if isinstance(loaded, click.Command) else None
        return command


def _load(target: str) -> Any:
    module, _, attribute = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attribute)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return None
        raise


def _settings() -> AgentSettings:
    from pydantic import ValidationError

    from pentad.agent.settings import AgentSettings

    try:
        return AgentSettings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "PENTAD_AGENT__" + "__".join(str(part).upper() for part in first["loc"])
        raise click.ClickException(f"invalid setting {name}: {first['msg']}") from None


@click.group(cls=_AgentGroup)
def agent() -> None:
    """The game-server agent of this host (talks to the panel over the network)."""


@agent.command()
def run() -> None:
    """Run the agent: re-attach to running game servers, then serve the panel until SIGTERM/SIGINT.
    Game servers keep running when the agent stops."""
    settings = _settings()
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    asyncio.run(_run(settings))


async def _run(settings: AgentSettings) -> None:
    """The panel link's `run_agent(settings)` (it opens the Runtime and holds the link) until SIGTERM or
    SIGINT; without a link installed, the Runtime alone (servers supervised, nothing reported)."""
    from pentad.agent.runtime import AgentError

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    link = _load(LINK)
    work = asyncio.create_task(link(settings) if link is not None else _standalone(settings))
    waiter = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([work, waiter], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (work, waiter):
            task.cancel()
        await asyncio.gather(work, waiter, return_exceptions=True)
    if work.cancelled() or work.exception() is None:
        return
    error = work.exception()
    if isinstance(error, AgentError):
        raise click.ClickException(f"{error.code}: {error.message}")
    raise click.ClickException(f"agent stopped: {type(error).__name__}: {error}")


async def _standalone(settings: AgentSettings) -> None:
    """Without a panel link: re-attach and supervise the servers (crash policy), log their state changes."""
    from pentad.agent.events import StateChanged
    from pentad.agent.runtime import Runtime

    log = logging.getLogger("pentad.agent")
    runtime = Runtime(settings)
    await runtime.open()
    log.info("agent_started servers=%d link=none", len(runtime.servers()))
    try:
        async for event in runtime.events():
            if isinstance(event, StateChanged):
                log.info(
                    "server_state server=%s state=%s reason=%s", event.server_id, event.state, event.reason
                )
    finally:
        await runtime.close()


@agent.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(*, as_json: bool) -> None:
    """The game servers of this host's agent (from their shims) and the sandbox / limits in force."""
    from pentad.agent import sandbox
    from pentad.agent.limits import Limits
    from pentad.agent.shim import pid_alive, read_state
    from pentad.agent.shimclient import query_status

    settings = _settings()
    try:
        sandbox_text = sandbox.check_bwrap(settings) if settings.sandbox == "bwrap" else "none (unsandboxed)"
    except sandbox.SandboxUnavailable as exc:
        sandbox_text = f"unavailable: {exc}"
    try:
        limits = Limits(settings)
        limits_text = f"{limits.backend} ({limits.reason})"
    except RuntimeError as exc:
        limits_text = f"unavailable: {exc}"
    servers = []
    if settings.run_dir.is_dir():
        for run_dir in sorted(settings.run_dir.iterdir()):
            if not run_dir.is_dir():
                continue
            live = query_status(run_dir)
            state = (live or {}).get("state") or read_state(run_dir) or {}
            running = bool(state.get("running")) and (live is not None or pid_alive(state.get("shim_pid")))
            servers.append(
                {
                    "server": run_dir.name,
                    "running": running,
                    "shim_pid": state.get("shim_pid"),
                    "exit_code": state.get("exit_code"),
                    "signal": state.get("signal"),
                    "console_lines": (live or {}).get("seq"),
                }
            )
    if as_json:
        click.echo(json.dumps({"sandbox": sandbox_text, "limits": limits_text, "servers": servers}, indent=2))
        return
    click.echo(f"data folder: {settings.data_dir}")
    click.echo(f"sandbox:     {sandbox_text}")
    click.echo(f"limits:      {limits_text}")
    if not servers:
        click.echo("no servers")
    for item in servers:
        how = "running" if item["running"] else f"stopped (exit {item['exit_code']}, signal {item['signal']})"
        click.echo(f"{item['server']}: {how}, shim pid {item['shim_pid']}")
