"""Power actions (start, stop, restart, kill) and install, sent to the server's node's agent.

Rules, checked before anything is sent:
- the caller holds the action's key on the server (`control.start`, `control.stop` for stop and kill,
  `control.restart`; `settings.reinstall` for install);
- the server's state allows it: start only when it is not running (offline, crashed, disk_exceeded),
  stop when it runs (starting, running, stopping — stopping again escalates nothing but is harmless),
  restart unless it is stopping, kill always (Pterodactyl #2986: a kill button that does nothing);
  start and restart need an installed, unsuspended server;
- one power action per server at a time (Pterodactyl #3903): a second one answers 409
  `power_action_pending` naming the pending action. The lock is a cache counter (cluster-wide with
  Redis) that expires with the call's timeout, so a lost answer never blocks the server for good; kill
  ignores it.

The agent answers once the action has begun (`starting`, `stopping`, `installing`); what follows (running,
offline, crashed, install_failed) arrives as state frames on the agent's socket, is stored by the agent
link and published on `panel.server.{id}.state`. Every action sent is audited on the server.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.panel import agent_link, repository
from pentad.apps.panel.actions.context import PanelContext
from pentad.apps.panel.actions.servers import server_environment
from pentad.apps.panel.models import PanelServer
from pentad.apps.panel.permissions import (
    SERVER_REINSTALL,
    SERVER_RESOURCE,
    SERVER_RESTART,
    SERVER_START,
    SERVER_STOP,
)
from pentad.apps.panel.settings import PanelSettings
from pentad.core import audit
from pentad.core.context import AppContext
from pentad.core.errors import Conflict
from pentad.panel_wire import configfiles
from pentad.panel_wire import protocol as wire
from pentad.panel_wire.serverspec import (
    QUERY_FEATURE,
    QUERY_KINDS,
    ConsoleInput,
    GameQuery,
    ServerLimits,
    ServerSpec,
    StopSpec,
)

PowerAction = Literal["start", "stop", "restart", "kill"]

PERMISSIONS = {"start": SERVER_START, "stop": SERVER_STOP, "restart": SERVER_RESTART, "kill": SERVER_STOP}
ALLOWED_FROM: dict[str, frozenset[str]] = {
    "start": frozenset({"offline", "crashed", "disk_exceeded"}),
    "stop": frozenset({"starting", "running", "stopping"}),
    "restart": frozenset({"offline", "crashed", "disk_exceeded", "starting", "running"}),
    "kill": frozenset(wire.SERVER_STATES),
}
NEEDS_INSTALLED = frozenset({"start", "restart"})
KILL_GRACE = 10.0
"""SIGTERM to SIGKILL, seconds (after the stop command's timeout)."""


class PowerActionPending(Conflict):
    code = "power_action_pending"

    def __init__(self, pending: str, **kwargs: Any) -> None:
        super().__init__(
            f"Another power action ({pending}) is being processed for this server; wait for it to finish.",
            pending=pending,
            **kwargs,
        )


class PowerStateConflict(Conflict):
    code = "invalid_power_state"

    def __init__(self, action: str, state: str, **kwargs: Any) -> None:
        super().__init__(
            f"The server is {state}: it cannot {action} now.", action=action, state=state, **kwargs
        )


class ServerNotInstalled(Conflict):
    code = "server_not_installed"

    def __init__(self, status: str, **kwargs: Any) -> None:
        super().__init__(
            f"The server is {status.replace('_', ' ')}: install it first.", server_status=status, **kwargs
        )


class PowerResult(BaseModel):
    server_id: uuid.UUID
    action: str
    state: str
    """The state the agent reported once the action began."""


# --- what the agent needs to run a server ---

VARIABLE_PLACEHOLDER = re.compile(r"\{\{\s*(?:env\.|server\.build\.env\.)?([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
BUILD_PLACEHOLDER = re.compile(r"\{\{\s*(server\.build\.[A-Za-z0-9_.]+)\s*\}\}")
DONE_REGEX_FEATURE = "done_regex"
"""A template whose `features` list this has its `done` entries as regexes; else they are substrings
(Wings matches them with strings.Contains)."""


def resolve_build(text: str, build: dict[str, str]) -> str:
    """`{{server.build.default.port}}`-style placeholders replaced by the server's values (the agent
    resolves only `{{VARIABLE}}` ones, from the environment); unknown ones stay as written."""
    return BUILD_PLACEHOLDER.sub(lambda match: build.get(match.group(1), match.group(0)), text)


def resolve_variables(text: str, env: dict[str, str]) -> str:
    """`{{VARIABLE}}` placeholders in a `done` text replaced by the server's values."""
    return VARIABLE_PLACEHOLDER.sub(lambda match: env.get(match.group(1), match.group(0)), text)


def _resolve_find(value: Any, build: dict[str, str]) -> Any:
    if isinstance(value, str):
        return resolve_build(value, build)
    if isinstance(value, dict):
        return {key: _resolve_find(item, build) for key, item in value.items()}
    return value


async def server_spec(platform: AppContext, session: Any, server: PanelServer) -> ServerSpec:
    """Everything the agent needs to install and run `server`: its template's commands, its variables'
    values (decrypted here: they are the game's own settings, passed in its environment), its primary
    allocation as SERVER_IP / SERVER_PORT, its limits."""
    settings = platform.app_settings(PanelSettings)
    template = await repository.get_template(session, server.template_id)
    if template is None:  # templates in use cannot be deleted (RESTRICT); this is a broken row
        raise ServerNotInstalled("without a template")
    env = await server_environment(platform, session, server)
    allocations = await repository.list_allocations(session, server_id=server.id)
    allocations.sort(
        key=lambda allocation: (allocation.id != server.allocation_id, allocation.ip, allocation.port)
    )
    build = {"server.build.memory": str(server.memory_mb), "server.build.disk": str(server.disk_mb)}
    if allocations:
        primary = allocations[0]
        build |= {"server.build.default.ip": primary.ip, "server.build.default.port": str(primary.port)}
        env.setdefault("SERVER_IP", primary.ip)
        env.setdefault("SERVER_PORT", str(primary.port))
    env.setdefault("SERVER_MEMORY", str(server.memory_mb))
    env.setdefault("P_SERVER_UUID", str(server.id))
    done = [
        pattern
        if DONE_REGEX_FEATURE in (template.features or [])
        else re.escape(resolve_variables(pattern, env))
        for pattern in template.done or []
    ]
    startup = resolve_build(server.startup or template.startup, build)
    whole = VARIABLE_PLACEHOLDER.fullmatch(startup.strip())
    if whole is not None and whole.group(1) in env:
        # an "any command" template: the variable is the command line itself, so it is given to the shell
        # as written (the agent expands other placeholders as variables, never re-parsed as shell syntax)
        startup = env[whole.group(1)]
    try:
        files = configfiles.from_egg(_resolve_find(template.config_files or None, build))
    except configfiles.ConfigFileError as error:
        raise Conflict(
            f"The server's template has a broken config file entry: {error}", code="template_invalid"
        ) from None
    console_input = ConsoleInput(kind="econ" if template.console_input == "econ" else "stdin")
    if console_input.kind == "econ":
        port = env.get("ECON_PORT")
        if not env.get("ECON_PASSWORD"):
            # no password chosen: one for this run, known to the game (its startup) and the agent only
            env["ECON_PASSWORD"] = secrets.token_hex(12)  # teeworlds keeps at most 31 characters
        console_input = ConsoleInput(
            kind="econ", port=int(port) if port and port.isdigit() else None, password=env["ECON_PASSWORD"]
        )
    query = None
    kinds = [
        item.removeprefix(QUERY_FEATURE) for item in template.features or [] if item.startswith(QUERY_FEATURE)
    ]
    if kinds and kinds[0] in QUERY_KINDS and allocations:
        query = GameQuery.model_validate(
            {"kind": kinds[0], "host": allocations[0].ip, "port": allocations[0].port}
        )
    return ServerSpec(
        server_id=str(server.id),
        startup=startup,
        env=env,
        stop=StopSpec.from_egg(template.stop) if template.stop.strip() else StopSpec(),
        done=done,
        console_input=console_input,
        query=query,
        limits=ServerLimits(
            memory_mb=server.memory_mb, cpu_percent=server.cpu_percent, disk_mb=server.disk_mb
        ),
        install_script=template.install_script or None,
        install_entrypoint=template.install_entrypoint
        if template.install_entrypoint in ("bash", "sh", "ash")
        else "bash",
        config_files=files,
        restart_on_crash=server.restart_on_crash,
        stop_timeout=float(settings.stop_timeout),
        ports=sorted({allocation.port for allocation in allocations}),
    )


# --- the lock ---


def _lock_key(server_id: uuid.UUID) -> str:
    return f"panel:power:{server_id}"


@contextlib.asynccontextmanager
async def power_lock(
    platform: AppContext, server_id: uuid.UUID, action: str, ttl: float
) -> AsyncIterator[None]:
    """One power action per server at a time (PowerActionPending names the one in flight)."""
    key = _lock_key(server_id)
    if await platform.cache.incr(key, 1, ttl=ttl) != 1:
        pending = await platform.cache.get(f"{key}:action")
        raise PowerActionPending(str(pending or "unknown"))
    await platform.cache.set(f"{key}:action", action, ttl=ttl)
    try:
        yield
    finally:
        await platform.cache.delete(key)
        await platform.cache.delete(f"{key}:action")


# --- actions ---


def check_power(server: PanelServer, action: str) -> None:
    if action in NEEDS_INSTALLED:
        if server.suspended_at is not None:
            raise ServerNotInstalled("suspended")
        if server.status != "installed":
            raise ServerNotInstalled(server.status)
    if server.state not in ALLOWED_FROM[action]:
        raise PowerStateConflict(action, server.state)


def call_timeout(context: PanelContext, action: str) -> float:
    base = context.settings.agent_command_timeout
    if action in ("stop", "restart"):
        return base + context.settings.stop_timeout + KILL_GRACE
    return base


async def release_database(session: AsyncSession) -> None:
    """End the request's read before waiting for an agent (up to a stop timeout and more): no transaction
    (on SQLite: the write lock, taken by every POST) is held while a remote process works. Nothing was
    written before this point; what the action writes afterwards (its audit event) goes in a new
    transaction committed with the request. Loaded rows expire: read what is needed before."""
    await session.rollback()


async def _ask_agent(
    context: PanelContext,
    target: tuple[uuid.UUID, uuid.UUID],
    method: wire.CallMethod,
    params: wire.Frame,
    *,
    timeout: float,  # noqa: ASYNC109 - passed on to the relay
    locked: bool = True,
) -> wire.ServerReport | None:
    server_id, node_id = target
    await release_database(context.session)
    if locked:
        async with power_lock(context.platform, server_id, method, timeout + 5):
            result = await agent_link.call(
                context.platform, node_id, method, server_id, params, timeout=timeout
            )
    else:
        result = await agent_link.call(context.platform, node_id, method, server_id, params, timeout=timeout)
    return wire.ServerReport.model_validate(result) if result else None


async def do_power(context: PanelContext, server_id: uuid.UUID, action: PowerAction) -> PowerResult:
    access = await context.access(server_id, PERMISSIONS[action])
    server = access.server
    check_power(server, action)
    params: wire.Frame
    if action == "start":
        params = wire.StartParams(spec=await server_spec(context.platform, context.session, server))
    elif action == "restart":
        params = wire.RestartParams(spec=await server_spec(context.platform, context.session, server))
    elif action == "stop":
        params = wire.StopParams()
    else:
        params = wire.KillParams()
    target, state = (server.id, server.node_id), server.state
    report = await _ask_agent(
        context, target, action, params, timeout=call_timeout(context, action), locked=action != "kill"
    )
    audit.record(
        context.session,
        context.audit_actor,
        f"panel.server.power.{action}",
        resource_type=SERVER_RESOURCE,
        resource_id=target[0],
    )
    return PowerResult(server_id=target[0], action=action, state=report.state if report else state)


async def do_install(context: PanelContext, server_id: uuid.UUID, *, reinstall: bool = False) -> PowerResult:
    """Run the template's install script on the node (the outcome arrives as state frames)."""
    access = await context.access(server_id, SERVER_REINSTALL)
    server = access.server
    if server.state not in ("offline", "crashed", "disk_exceeded"):
        raise PowerStateConflict("install", server.state)
    spec = await server_spec(context.platform, context.session, server)
    target = (server.id, server.node_id)
    params = wire.InstallParams(spec=spec, reinstall=reinstall)
    report = await _ask_agent(
        context, target, "install", params, timeout=context.settings.agent_command_timeout
    )
    audit.record(
        context.session,
        context.audit_actor,
        "panel.server.reinstall" if reinstall else "panel.server.install",
        resource_type=SERVER_RESOURCE,
        resource_id=target[0],
    )
    return PowerResult(server_id=target[0], action="install", state=report.state if report else "installing")
