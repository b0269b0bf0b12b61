"""The live console: send a command to a running server, read the lines it printed last.

Output itself never passes through here: the agent link publishes each batch on
`panel.server.{id}.console` as it arrives; a browser that reconnects resumes from the hub's history, and a
freshly opened console asks `get_console_history` for the tail of the shim's ring buffer on the node.
Commands are audited (the activity log shows who typed what); they need `control.console`.
"""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field

from pentad.apps.panel import agent_link
from pentad.apps.panel.actions.context import PanelContext
from pentad.apps.panel.actions.power import release_database
from pentad.apps.panel.permissions import SERVER_CONSOLE, SERVER_RESOURCE
from pentad.core import audit
from pentad.core.errors import BadRequest, Conflict
from pentad.panel_wire import protocol as wire

RUNNING_STATES = frozenset({"starting", "running"})


class ServerNotRunning(Conflict):
    code = "server_not_running"

    def __init__(self, state: str) -> None:
        super().__init__(f"The server is {state}: start it to use its console.", state=state)


class BadCommand(BadRequest):
    code = "bad_command"


class ConsoleHistory(BaseModel):
    server_id: uuid.UUID
    lines: list[str] = Field(description="oldest first")


def check_command(command: str) -> str:
    text = command.rstrip("\r\n")
    if not text.strip():
        raise BadCommand("The command is empty.")
    if "\n" in text or "\r" in text:
        raise BadCommand("Send one command (one line) at a time.")
    if len(text) > wire.MAX_LINE_CHARS:
        raise BadCommand(f"A command is at most {wire.MAX_LINE_CHARS} characters.")
    return text


async def do_send_command(context: PanelContext, server_id: uuid.UUID, command: str) -> None:
    access = await context.access(server_id, SERVER_CONSOLE)
    text = check_command(command)
    server = access.server
    if server.state not in RUNNING_STATES:
        raise ServerNotRunning(server.state)
    server_id, node_id = server.id, server.node_id
    await release_database(context.session)
    await agent_link.call(
        context.platform, node_id, "send_command", server_id, wire.SendCommandParams(command=text)
    )
    audit.record(
        context.session,
        context.audit_actor,
        "panel.server.console.command",
        resource_type=SERVER_RESOURCE,
        resource_id=server_id,
        command=text[:500],
    )


async def get_console_history(
    context: PanelContext, server_id: uuid.UUID, lines: int | None = None
) -> ConsoleHistory:
    """The last `lines` console lines (default: the console_history_lines setting) kept on the node."""
    access = await context.access(server_id, SERVER_CONSOLE)
    server = access.server
    wanted = min(lines or context.settings.console_history_lines, 10_000)
    if wanted <= 0:
        return ConsoleHistory(server_id=server.id, lines=[])
    result = await agent_link.call(
        context.platform,
        server.node_id,
        "console_history",
        server.id,
        wire.ConsoleHistoryParams(lines=wanted),
    )
    history = wire.ConsoleHistory.model_validate(result)
    return ConsoleHistory(server_id=server.id, lines=history.lines[-wanted:])
