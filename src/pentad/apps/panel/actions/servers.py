"""Game servers: create from a template on a node (limits, allocations, startup variables checked against
the egg's rules), list, read, change, delete; read and change the startup variables."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.panel import repository, rules
from pentad.apps.panel.access import ServerAccess, everything_for, held_servers
from pentad.apps.panel.actions import backups
from pentad.apps.panel.actions.context import PanelContext
from pentad.apps.panel.exceptions import (
    AllocationNotFound,
    AllocationTaken,
    InsufficientCapacity,
    NodeNotFound,
    ServerPermission,
    TemplateNotFound,
    VariablesInvalid,
)
from pentad.apps.panel.models import (
    PanelAllocation,
    PanelNode,
    PanelServer,
    PanelServerVariable,
    PanelTemplateVariable,
)
from pentad.apps.panel.permissions import (
    OWNER_ROLE,
    SERVER_RENAME,
    SERVER_RESOURCE,
    SERVER_STARTUP_READ,
    SERVER_STARTUP_UPDATE,
    SERVER_VIEW,
)
from pentad.apps.panel.schemas import (
    ServerCreate,
    ServerRead,
    ServerStartup,
    ServerUpdate,
    ServerVariableRead,
    StartupUpdate,
)
from pentad.apps.panel.views import server_read, variable_context
from pentad.core import audit
from pentad.core.auth.grants import delete_resource_grants, grant_role
from pentad.core.context import AppContext
from pentad.core.db.base import uuid7
from pentad.core.errors import BadRequest

ADMIN_ONLY_FIELDS = ("memory_mb", "disk_mb", "cpu_percent", "startup")


class AdminOnly(ServerPermission):
    code = "panel_admin_required"


async def _view(panel: PanelContext, access: ServerAccess) -> ServerRead:
    allocations = await repository.list_allocations(panel.session, server_id=access.server.id)
    return server_read(access.server, allocations, access.keys)


async def get_server(panel: PanelContext, server_id: uuid.UUID) -> ServerRead:
    return await _view(panel, await panel.access(server_id))


LIST_LIMIT_MAX = 500
"""The most servers one page of GET /servers holds (`limit`; default `LIST_LIMIT_DEFAULT`)."""
LIST_LIMIT_DEFAULT = 100


async def list_servers(
    panel: PanelContext,
    *,
    node_id: uuid.UUID | None = None,
    limit: int = LIST_LIMIT_DEFAULT,
    offset: int = 0,
) -> list[ServerRead]:
    """Admins: every server (of a node, when given); others: those they hold a role on. By name, one page
    (`limit`, `offset`). Three queries whatever the page's size: the caller's grants, the servers, their
    allocations."""
    limit = max(1, min(limit, LIST_LIMIT_MAX))
    held = (
        None
        if panel.principal is None
        else await held_servers(panel.session, panel.platform, panel.principal)
    )
    if held is None:
        servers = await repository.list_servers(panel.session, node_id=node_id, limit=limit, offset=offset)
        everything = everything_for(panel.principal)
        if SERVER_VIEW.key not in everything:
            return []  # an API key whose scopes leave out the view of servers
        keys = dict.fromkeys((server.id for server in servers), everything)
    elif not held:
        return []
    else:
        servers = await repository.list_servers(
            panel.session, ids=list(held), node_id=node_id, limit=limit, offset=offset
        )
        keys = {server.id: held[server.id] for server in servers}
    allocations = await repository.list_server_allocations(panel.session, [server.id for server in servers])
    return [
        server_read(server, allocations[server.id], ServerAccess(server, keys[server.id]).keys)
        for server in servers
    ]


# ------------------------------------------------------------------ checks


def check_capacity(
    node: PanelNode, *, memory: int, disk: int, cpu: int, usage: tuple[int, int, int, int]
) -> None:
    """The node takes `memory`/`disk`/`cpu` more (0 capacity: no check; -1 over-allocation: no check);
    InsufficientCapacity (409) naming what is short."""
    if node.overalloc_percent < 0:
        return
    factor = 1 + node.overalloc_percent / 100
    _, used_memory, used_disk, used_cpu = usage
    for what, capacity, used, wanted in (
        ("memory", node.memory_mb, used_memory, memory),
        ("disk", node.disk_mb, used_disk, disk),
        ("CPU", node.cpu_percent, used_cpu, cpu),
    ):
        if capacity and wanted > 0 and used + wanted > capacity * factor:
            free = max(0, int(capacity * factor) - used)
            raise InsufficientCapacity(
                f"The node has {free} {'%' if what == 'CPU' else 'MiB'} of {what} left; {wanted} asked.",
                resource=what.lower(),
            )


def check_variables(
    variables: Sequence[PanelTemplateVariable],
    given: Mapping[str, str],
    *,
    admin: bool,
    current: Mapping[uuid.UUID, str] | None = None,
) -> dict[uuid.UUID, str]:
    """Every variable's value (given, else current, else default) checked against its rules; the values by
    variable id. Non-admins may give only variables their template lets users edit. VariablesInvalid (422)
    with one issue per bad variable."""
    by_name = {variable.env_name: variable for variable in variables}
    issues = [
        {
            "loc": ["body", "variables", name],
            "msg": f"{name}: the template has no such variable",
            "type": "unknown",
        }
        for name in given
        if name not in by_name
    ]
    values: dict[uuid.UUID, str] = {}
    for variable in variables:
        name = variable.env_name
        if name in given and not admin and not (variable.user_editable and variable.user_viewable):
            issues.append(
                {
                    "loc": ["body", "variables", name],
                    "msg": f"{name}: only admins may set it",
                    "type": "not_editable",
                }
            )
            continue
        value = given.get(name)
        if value is None:
            value = (current or {}).get(variable.id, variable.default_value)
        problems = rules.check(rules.parse_rules(variable.rules), value)
        if problems:
            issues.append(
                {"loc": ["body", "variables", name], "msg": f"{name} {'; '.join(problems)}", "type": "rule"}
            )
        values[variable.id] = value
    if issues:
        raise VariablesInvalid(issues)
    return values


async def take_allocations(
    panel: PanelContext, node: PanelNode, primary_id: uuid.UUID | None, extra_ids: Sequence[uuid.UUID]
) -> list[PanelAllocation]:
    """The allocations the server gets, primary first, locked; the node's first free one when no primary is
    named. AllocationNotFound (404) for one of another node, AllocationTaken (409) for one in use."""
    if primary_id is None:
        free = await repository.list_allocations(panel.session, node_id=node.id, free=True)
        if not free:
            raise AllocationTaken("The node has no free allocation; add some first.")
        primary_id = free[0].id
    wanted = [primary_id, *(i for i in dict.fromkeys(extra_ids) if i != primary_id)]
    found = {
        allocation.id: allocation for allocation in await repository.get_allocations(panel.session, wanted)
    }
    taken = []
    for allocation_id in wanted:
        allocation = found.get(allocation_id)
        if allocation is None or allocation.node_id != node.id:
            raise AllocationNotFound()
        if allocation.server_id is not None:
            taken.append(f"{allocation.ip}:{allocation.port}")
    if taken:
        raise AllocationTaken(f"In use by another server: {', '.join(taken)}.")
    return [found[allocation_id] for allocation_id in wanted]


async def _new_short_id(panel: PanelContext) -> str:
    while True:
        short_id = secrets.token_hex(4)
        if not await repository.short_id_taken(panel.session, short_id):
            return short_id


def _store_values(panel: PanelContext, server_id: uuid.UUID, values: Mapping[uuid.UUID, str]) -> None:
    keyring = panel.platform.keyring
    for variable_id, value in values.items():
        row_id = uuid7()
        panel.session.add(
            PanelServerVariable(
                id=row_id,
                server_id=server_id,
                variable_id=variable_id,
                value_enc=keyring.encrypt(value, context=variable_context(row_id)),
            )
        )


# ------------------------------------------------------------------ create, change, delete


async def do_create_server(panel: PanelContext, data: ServerCreate) -> PanelServer:
    """A server of `data.template_id` on `data.node_id`, owned by the caller (admins: by `owner_id` when
    given), in status `installing` until the agent link installs it. Checks: the node exists, is not
    draining and has the capacity; the allocations are the node's and free; the variables keep their rules."""
    if not panel.is_admin and (data.owner_id is not None or data.startup is not None):
        raise AdminOnly("Only panel admins may create servers for others or give them their own startup.")
    owner_id = data.owner_id or panel.user_id
    if owner_id is None:
        raise BadRequest("Name the account that owns the server (`owner_id`).", code="owner_required")
    node = await repository.get_node(panel.session, data.node_id)
    if node is None:
        raise NodeNotFound()
    template = await repository.get_template(panel.session, data.template_id)
    if template is None:
        raise TemplateNotFound()
    if node.draining:
        raise InsufficientCapacity("The node is draining: it takes no new servers.", resource="node")
    usage = await repository.node_usage(panel.session, node.id)
    check_capacity(node, memory=data.memory_mb, disk=data.disk_mb, cpu=data.cpu_percent, usage=usage)
    variables = await repository.list_template_variables(panel.session, [template.id])
    values = check_variables(variables, data.variables, admin=panel.is_admin)
    allocations = await take_allocations(panel, node, data.allocation_id, data.extra_allocation_ids)
    server = PanelServer(
        id=uuid7(),
        short_id=await _new_short_id(panel),
        name=data.name,
        description=data.description,
        owner_id=owner_id,
        node_id=node.id,
        template_id=template.id,
        allocation_id=allocations[0].id,
        memory_mb=data.memory_mb,
        disk_mb=data.disk_mb,
        cpu_percent=data.cpu_percent,
        startup=data.startup or None,
        restart_on_crash=data.restart_on_crash,
    )
    panel.session.add(server)
    await panel.session.flush()
    for allocation in allocations:
        allocation.server_id = server.id
    _store_values(panel, server.id, values)
    await panel.session.flush()
    await grant_role(
        panel.session,
        panel.platform,
        owner_id,
        SERVER_RESOURCE,
        server.id,
        OWNER_ROLE,
        actor=panel.audit_actor,
    )
    audit.record(
        panel.session, panel.audit_actor, "panel.server.create", resource_type=SERVER_RESOURCE,
        resource_id=str(server.id), name=server.name, node_id=str(node.id), template=template.slug,
        owner_id=str(owner_id), allocations=[f"{a.ip}:{a.port}" for a in allocations],
    )  # fmt: skip
    return server


async def do_update_server(panel: PanelContext, server_id: uuid.UUID, data: ServerUpdate) -> PanelServer:
    """Rename (`settings.rename`), crash policy (`startup.update`); limits and startup (admins)."""
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    if any(field in changes for field in ADMIN_ONLY_FIELDS) and not panel.is_admin:
        raise AdminOnly("Only panel admins may change a server's limits or its startup command.")
    access = await panel.access(server_id)
    if ({"name", "description"} & changes.keys()) and not access.has(SERVER_RENAME):
        raise ServerPermission()
    if "restart_on_crash" in changes and not access.has(SERVER_STARTUP_UPDATE):
        raise ServerPermission()
    server = access.server
    grow = {
        "memory": max(0, changes.get("memory_mb", server.memory_mb) - server.memory_mb),
        "disk": max(0, changes.get("disk_mb", server.disk_mb) - server.disk_mb),
        "cpu": max(0, changes.get("cpu_percent", server.cpu_percent) - server.cpu_percent),
    }
    if any(grow.values()):
        node = await repository.get_node(panel.session, server.node_id)
        assert node is not None
        usage = await repository.node_usage(panel.session, node.id)
        check_capacity(node, usage=usage, **grow)
    if "startup" in changes:
        changes["startup"] = changes["startup"].strip() or None
    for field, value in changes.items():
        setattr(server, field, value)
    await panel.session.flush()
    audit.record(
        panel.session, panel.audit_actor, "panel.server.update", resource_type=SERVER_RESOURCE,
        resource_id=str(server.id), changes=changes,
    )  # fmt: skip
    return server


async def do_delete_server(panel: PanelContext, server_id: uuid.UUID) -> None:
    """Admins, or the server's owner: the row, its variables and every role on it go, its allocations are
    freed. (Removing its files from the node is the agent link's, on `panel.server.delete`.)"""
    access = await panel.access(server_id)
    server = access.server
    if not panel.is_admin and server.owner_id != panel.user_id:
        raise ServerPermission("Only the server's owner or a panel admin may delete it.")
    await repository.release_allocations(panel.session, server.id)
    await backups.forget_server_backups(panel, server.id)  # their stored archives, once this commits
    await delete_resource_grants(
        panel.session, panel.platform, SERVER_RESOURCE, server.id, actor=panel.audit_actor
    )
    await panel.session.delete(server)
    await panel.session.flush()
    audit.record(
        panel.session, panel.audit_actor, "panel.server.delete", resource_type=SERVER_RESOURCE,
        resource_id=str(server_id), name=server.name, node_id=str(server.node_id),
    )  # fmt: skip


# ------------------------------------------------------------------ startup variables


async def _values(panel: PanelContext, server_id: uuid.UUID) -> dict[uuid.UUID, PanelServerVariable]:
    return {row.variable_id: row for row in await repository.list_server_variables(panel.session, server_id)}


def _decrypt(panel: PanelContext, row: PanelServerVariable) -> str:
    return panel.platform.keyring.decrypt(row.value_enc, context=variable_context(row.id))


async def server_environment(
    platform: AppContext, session: AsyncSession, server: PanelServer
) -> dict[str, str]:
    """Every variable of the server with its value (decrypted): what its process gets in its environment.
    For the agent link (power.server_spec); never shown to users as a whole."""
    variables = await repository.list_template_variables(session, [server.template_id])
    stored = {row.variable_id: row for row in await repository.list_server_variables(session, server.id)}
    keyring = platform.keyring
    return {
        v.env_name: keyring.decrypt(stored[v.id].value_enc, context=variable_context(stored[v.id].id))
        if v.id in stored
        else v.default_value
        for v in variables
    }


async def get_startup(panel: PanelContext, server_id: uuid.UUID) -> ServerStartup:
    access = await panel.access(server_id, SERVER_STARTUP_READ)
    server = access.server
    template = await repository.get_template(panel.session, server.template_id)
    assert template is not None
    variables = await repository.list_template_variables(panel.session, [template.id])
    stored = await _values(panel, server.id)
    shown = [
        ServerVariableRead(
            env_name=v.env_name,
            name=v.name,
            description=v.description,
            value=_decrypt(panel, stored[v.id]) if v.id in stored else v.default_value,
            default_value=v.default_value,
            editable=panel.is_admin or (v.user_editable and v.user_viewable),
            rules=v.rules,
        )
        for v in variables
        if panel.is_admin or v.user_viewable
    ]
    return ServerStartup(startup=server.startup or template.startup, variables=shown)


async def do_update_startup(panel: PanelContext, server_id: uuid.UUID, data: StartupUpdate) -> None:
    """Change startup variables (`startup.update`); every variable is checked again, nothing changes when
    one is bad. Values are never written to the audit log, only the names."""
    access = await panel.access(server_id, SERVER_STARTUP_UPDATE)
    server = access.server
    variables = await repository.list_template_variables(panel.session, [server.template_id])
    stored = await _values(panel, server.id)
    current = {variable_id: _decrypt(panel, row) for variable_id, row in stored.items()}
    values = check_variables(variables, data.variables, admin=panel.is_admin, current=current)
    changed = {v.id for v in variables if v.env_name in data.variables}
    missing = {variable_id: values[variable_id] for variable_id in changed if variable_id not in stored}
    for variable_id in changed & stored.keys():
        row = stored[variable_id]
        row.value_enc = panel.platform.keyring.encrypt(values[variable_id], context=variable_context(row.id))
    _store_values(panel, server.id, missing)
    await panel.session.flush()
    audit.record(
        panel.session, panel.audit_actor, "panel.server.startup_update", resource_type=SERVER_RESOURCE,
        resource_id=str(server.id), variables=sorted(data.variables),
    )  # fmt: skip


async def node_names(panel: PanelContext, servers: Sequence[ServerRead]) -> dict[uuid.UUID, str]:
    """The names of the nodes of the servers the caller sees (for lists and pages), by node id."""
    return await repository.node_names(panel.session, {server.node_id for server in servers})
