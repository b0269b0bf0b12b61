"""The panel's pages: `/panel` lists your game servers (state, node, limits), `/panel/servers/{id}` is a
server's page (the live console in xterm.js with its history and a command line, power buttons, CPU and
memory charts in uPlot from the hub's topics, subusers and the activity log), `/panel/servers/{id}/files`
and `/panel/servers/{id}/backups` its file manager and backups, `/panel/nodes` the nodes with their status
and capacity and one-time enrolment tokens (admins), `/panel/plugins` the plugins (admins: the
marketplaces' offers, install, capability approval, enable/disable, update, remove, status, and each
plugin's UI page in a sandboxed frame). The live parts are static/panel-server.js and
static/panel-files.js talking to the API and the hub; the forms (subusers, schedules, tokens) post here
with the session's CSRF token and call the same actions as the API."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.templating import Jinja2Templates
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from pentad.apps.panel.actions import activity, nodes, plugins, schedules, servers, subusers
from pentad.apps.panel.actions.backups import BACKUP_READ
from pentad.apps.panel.actions.context import PanelContext
from pentad.apps.panel.actions.files import FILE_READ
from pentad.apps.panel.permissions import PANEL_ADMIN, PANEL_USE, SERVER_KEYS
from pentad.apps.panel.plugins.capabilities import CAPABILITIES
from pentad.apps.panel.schemas import (
    EnrolmentTokenCreate,
    EnrolmentTokenCreated,
    ScheduleWrite,
    SubuserCreate,
    SubuserUpdate,
)
from pentad.core.auth.dependencies import db_session, request_actor
from pentad.core.auth.principal import Principal
from pentad.core.errors import AppError
from pentad.core.platform import get_platform
from pentad.core.policy import route_policy
from pentad.core.web.pages.kit import (
    TEMPLATES_DIR,
    InvalidForm,
    PageAccess,
    failure_context,
    parse_form,
    render_page,
    see_other,
)

templates = Jinja2Templates(directory=[Path(__file__).parent / "templates", TEMPLATES_DIR])


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


templates.env.filters["when"] = _when

router = APIRouter(include_in_schema=False)

PanelUser = Annotated[Principal, Depends(PageAccess(PANEL_USE))]
PanelAdmin = Annotated[Principal, Depends(PageAccess(PANEL_USE, PANEL_ADMIN))]
Session = Annotated[AsyncSession, Depends(db_session)]

SERVER_PAGE_CSP = {"style-src": "'self' 'unsafe-inline'"}
"""xterm.js writes its renderer's and theme's rules into <style> elements it makes; scripts stay 'self'."""

KEY_GROUPS = sorted({key.split(".", 1)[0] for key in SERVER_KEYS})


def _context(request: Request, session: AsyncSession, principal: Principal) -> PanelContext:
    return PanelContext(session, get_platform(request), principal, request_actor(request, principal))


@router.get("/panel")
async def servers_page(request: Request, principal: PanelUser, session: Session) -> Response:
    panel = _context(request, session, principal)
    found = await servers.list_servers(panel, limit=servers.LIST_LIMIT_MAX)
    return render_page(
        request, "panel_servers.html", principal, renderer=templates,
        servers=found, node_names=await servers.node_names(panel, found), admin=panel.is_admin,
    )  # fmt: skip


async def _server_page(
    request: Request, panel: PanelContext, principal: Principal, server_id: uuid.UUID, *,
    status_code: int = 200, error: str | None = None,
) -> Response:  # fmt: skip
    server = await servers.get_server(panel, server_id)
    keys = set(server.permissions)
    users = await subusers.list_subusers(panel, server_id) if "user.read" in keys else []
    log = await activity.list_activity(panel, server_id, limit=30) if "activity.read" in keys else []
    timed = await schedules.list_schedules(panel, server_id) if "schedule.read" in keys else []
    runs = {schedule.id: await schedules.list_runs(panel, server_id, schedule.id, 5) for schedule in timed}
    return render_page(
        request, "panel_server.html", principal, renderer=templates, status_code=status_code, error=error,
        server=server, keys=keys, node_name=(await servers.node_names(panel, [server])).get(server.node_id),
        subusers=users, activity=log, all_keys=SERVER_KEYS, key_groups=KEY_GROUPS, schedules=timed, runs=runs,
    )  # fmt: skip


@router.get("/panel/servers/{server_id}")
@route_policy(csp=SERVER_PAGE_CSP)
async def server_page(
    server_id: uuid.UUID, request: Request, principal: PanelUser, session: Session
) -> Response:
    return await _server_page(request, _context(request, session, principal), principal, server_id)


@router.get("/panel/servers/{server_id}/files")
async def files_page(
    server_id: uuid.UUID, request: Request, principal: PanelUser, session: Session
) -> Response:
    """The file manager (file.read; the other file keys add its buttons): static/panel-files.js."""
    panel = _context(request, session, principal)
    await panel.access(server_id, FILE_READ)
    server = await servers.get_server(panel, server_id)
    return render_page(
        request,
        "panel_files.html",
        principal,
        renderer=templates,
        server=server,
        keys=set(server.permissions),
    )


@router.get("/panel/servers/{server_id}/backups")
async def backups_page(
    server_id: uuid.UUID, request: Request, principal: PanelUser, session: Session
) -> Response:
    """The backups (backup.read; the other backup keys add its buttons): static/panel-files.js."""
    panel = _context(request, session, principal)
    await panel.access(server_id, BACKUP_READ)
    server = await servers.get_server(panel, server_id)
    return render_page(
        request,
        "panel_backups.html",
        principal,
        renderer=templates,
        server=server,
        keys=set(server.permissions),
    )


async def _permissions_from_form(request: Request) -> list[str]:
    form = await request.form()
    return [str(value) for value in form.getlist("permissions")]


@router.post("/panel/servers/{server_id}/users")
@route_policy(csp=SERVER_PAGE_CSP)
async def add_subuser_form(
    server_id: uuid.UUID,
    request: Request,
    principal: PanelUser,
    session: Session,
    email: Annotated[str, Form(max_length=320)] = "",
) -> Response:
    panel = _context(request, session, principal)
    try:
        data = parse_form(SubuserCreate, email=email, permissions=await _permissions_from_form(request))
        await subusers.do_create_subuser(panel, server_id, data)
    except AppError as exc:
        failure = failure_context(exc)
        return await _server_page(
            request, panel, principal, server_id, status_code=failure["status_code"], error=failure["error"]
        )
    return see_other(f"/panel/servers/{server_id}#subusers")


@router.post("/panel/servers/{server_id}/users/{user_id}")
@route_policy(csp=SERVER_PAGE_CSP)
async def update_subuser_form(
    server_id: uuid.UUID, user_id: uuid.UUID, request: Request, principal: PanelUser, session: Session
) -> Response:
    panel = _context(request, session, principal)
    try:
        data = parse_form(SubuserUpdate, permissions=await _permissions_from_form(request))
        await subusers.do_update_subuser(panel, server_id, user_id, data)
    except AppError as exc:
        failure = failure_context(exc)
        return await _server_page(
            request, panel, principal, server_id, status_code=failure["status_code"], error=failure["error"]
        )
    return see_other(f"/panel/servers/{server_id}#subusers")


@router.post("/panel/servers/{server_id}/users/{user_id}/delete")
async def delete_subuser_form(
    server_id: uuid.UUID, user_id: uuid.UUID, request: Request, principal: PanelUser, session: Session
) -> Response:
    await subusers.do_delete_subuser(_context(request, session, principal), server_id, user_id)
    return see_other(f"/panel/servers/{server_id}#subusers")


def _tasks_from_text(text: str) -> list[dict[str, object]]:
    """The schedule form's task lines: `command say hi`, `power restart`, optionally after `wait 30;`."""
    tasks: list[dict[str, object]] = []
    for line in text.splitlines():
        delay, _, rest = line.strip().rpartition(";")
        action, _, payload = rest.strip().partition(" ")
        if not action:
            continue
        words = delay.split()
        seconds = words[1] if len(words) == 2 and words[0] == "wait" and words[1].isdigit() else None
        if delay and seconds is None:
            raise InvalidForm(f"Tasks: write `wait N; {action} …` to wait N seconds first.")
        tasks.append({"action": action, "payload": payload.strip(), "delay_s": int(seconds or 0)})
    return tasks


async def _schedule_failure(
    request: Request, panel: PanelContext, principal: Principal, server_id: uuid.UUID, exc: AppError
) -> Response:
    failure = failure_context(exc)
    return await _server_page(
        request, panel, principal, server_id, status_code=failure["status_code"], error=failure["error"]
    )


@router.post("/panel/servers/{server_id}/schedules")
@route_policy(csp=SERVER_PAGE_CSP)
async def create_schedule_form(
    server_id: uuid.UUID,
    request: Request,
    principal: PanelUser,
    session: Session,
    name: Annotated[str, Form(max_length=100)] = "",
    cron: Annotated[str, Form(max_length=100)] = "",
    tasks: Annotated[str, Form(max_length=20_000)] = "",
    only_when_online: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    panel = _context(request, session, principal)
    try:
        data = parse_form(
            ScheduleWrite,
            name=name,
            cron=cron,
            only_when_online=only_when_online == "true",
            tasks=_tasks_from_text(tasks),
        )
        await schedules.do_create_schedule(panel, server_id, data)
    except AppError as exc:
        return await _schedule_failure(request, panel, principal, server_id, exc)
    return see_other(f"/panel/servers/{server_id}#schedules")


@router.post("/panel/servers/{server_id}/schedules/{schedule_id}/run")
@route_policy(csp=SERVER_PAGE_CSP)
async def run_schedule_form(
    server_id: uuid.UUID, schedule_id: uuid.UUID, request: Request, principal: PanelUser, session: Session
) -> Response:
    panel = _context(request, session, principal)
    try:
        await schedules.do_run_now(panel, server_id, schedule_id)
    except AppError as exc:
        return await _schedule_failure(request, panel, principal, server_id, exc)
    return see_other(f"/panel/servers/{server_id}#schedules")


@router.post("/panel/servers/{server_id}/schedules/{schedule_id}/delete")
async def delete_schedule_form(
    server_id: uuid.UUID, schedule_id: uuid.UUID, request: Request, principal: PanelUser, session: Session
) -> Response:
    await schedules.do_delete_schedule(_context(request, session, principal), server_id, schedule_id)
    return see_other(f"/panel/servers/{server_id}#schedules")


async def _nodes_page(
    request: Request, panel: PanelContext, principal: Principal, *,
    created: EnrolmentTokenCreated | None = None, status_code: int = 200, error: str | None = None,
) -> Response:  # fmt: skip
    return render_page(
        request, "panel_nodes.html", principal, renderer=templates, status_code=status_code, error=error,
        nodes=await nodes.list_nodes(panel), tokens=await nodes.list_enrolment_tokens(panel), created=created,
    )  # fmt: skip


@router.get("/panel/nodes")
async def nodes_page(request: Request, principal: PanelAdmin, session: Session) -> Response:
    return await _nodes_page(request, _context(request, session, principal), principal)


@router.post("/panel/nodes/tokens")
async def create_token_form(
    request: Request,
    principal: PanelAdmin,
    session: Session,
    node_name: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """The new token is in this response only (pages are never cached)."""
    panel = _context(request, session, principal)
    try:
        created = await nodes.do_create_enrolment_token(
            panel, parse_form(EnrolmentTokenCreate, node_name=node_name.strip() or None)
        )
    except AppError as exc:
        failure = failure_context(exc)
        return await _nodes_page(
            request, panel, principal, status_code=failure["status_code"], error=failure["error"]
        )
    return await _nodes_page(request, panel, principal, created=created)


# Plugins (admins).


async def _plugins_page(
    request: Request,
    panel: PanelContext,
    principal: Principal,
    *,
    status_code: int = 200,
    error: str | None = None,
) -> Response:
    return render_page(
        request, "panel_plugins.html", principal, renderer=templates, status_code=status_code, error=error,
        installed=await plugins.list_installed(panel), market=await plugins.browse(panel),
        capabilities=CAPABILITIES,
    )  # fmt: skip


async def _plugin_action(
    request: Request, panel: PanelContext, principal: Principal, action: Awaitable[object]
) -> Response:
    try:
        await action
    except AppError as exc:
        failure = failure_context(exc)
        return await _plugins_page(
            request, panel, principal, status_code=failure["status_code"], error=failure["error"]
        )
    return see_other("/panel/plugins")


@router.get("/panel/plugins")
async def plugins_page(request: Request, principal: PanelAdmin, session: Session) -> Response:
    return await _plugins_page(request, _context(request, session, principal), principal)


@router.post("/panel/plugins/install")
async def install_plugin_form(
    request: Request,
    principal: PanelAdmin,
    session: Session,
    source: Annotated[str, Form(max_length=2000)] = "",
    plugin_id: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    panel = _context(request, session, principal)
    data = plugins.InstallRequest(source=source, plugin_id=plugin_id)
    return await _plugin_action(request, panel, principal, plugins.do_install(panel, data))


@router.post("/panel/plugins/{plugin_id}/approve")
async def approve_plugin_form(
    plugin_id: str, request: Request, principal: PanelAdmin, session: Session
) -> Response:
    panel = _context(request, session, principal)
    form = await request.form()
    data = plugins.ApproveRequest(capabilities=[str(value) for value in form.getlist("capabilities")][:20])
    return await _plugin_action(request, panel, principal, plugins.do_approve(panel, plugin_id, data))


@router.post("/panel/plugins/{plugin_id}/enable")
async def enable_plugin_form(
    plugin_id: str, request: Request, principal: PanelAdmin, session: Session
) -> Response:
    panel = _context(request, session, principal)
    return await _plugin_action(request, panel, principal, plugins.do_enable(panel, plugin_id, enabled=True))


@router.post("/panel/plugins/{plugin_id}/disable")
async def disable_plugin_form(
    plugin_id: str, request: Request, principal: PanelAdmin, session: Session
) -> Response:
    panel = _context(request, session, principal)
    return await _plugin_action(request, panel, principal, plugins.do_enable(panel, plugin_id, enabled=False))


@router.post("/panel/plugins/{plugin_id}/update")
async def update_plugin_form(
    plugin_id: str, request: Request, principal: PanelAdmin, session: Session
) -> Response:
    panel = _context(request, session, principal)
    return await _plugin_action(request, panel, principal, plugins.do_update(panel, plugin_id))


@router.post("/panel/plugins/{plugin_id}/remove")
async def remove_plugin_form(
    plugin_id: str, request: Request, principal: PanelAdmin, session: Session
) -> Response:
    panel = _context(request, session, principal)
    return await _plugin_action(request, panel, principal, plugins.do_remove(panel, plugin_id))
