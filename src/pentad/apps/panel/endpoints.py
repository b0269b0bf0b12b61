"""The panel REST API (/api/panel): nodes, enrolment tokens, allocations, templates, servers. Thin: each
route builds the caller's PanelContext and makes one action call. Nodes, allocations, enrolment tokens and
template imports are for `panel.admin`; servers for `panel.use` (what each may do with a server is decided
per server, in access.py); creating one needs `panel.servers.create`."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.panel.actions import activity, allocations, nodes, schedules, servers, subusers, templates
from pentad.apps.panel.dependencies import panel_context
from pentad.apps.panel.permissions import PANEL_ADMIN, PANEL_SERVERS_CREATE, PANEL_USE
from pentad.apps.panel.schemas import (
    ActivityRead,
    AllocationCreate,
    AllocationRead,
    EnrolmentTokenCreate,
    EnrolmentTokenCreated,
    EnrolmentTokenRead,
    NodeCreate,
    NodeRead,
    NodeUpdate,
    ScheduleRead,
    ScheduleRunRead,
    ScheduleWrite,
    ServerCreate,
    ServerRead,
    ServerStartup,
    ServerUpdate,
    StartupUpdate,
    SubuserCreate,
    SubuserRead,
    SubuserUpdate,
    TemplateImport,
    TemplateImported,
    TemplateRead,
)
from pentad.core.auth.dependencies import db_session, require, require_user
from pentad.core.auth.principal import Principal
from pentad.core.errors import problem_responses

router = APIRouter(
    prefix="/api/panel",
    tags=["panel"],
    responses=problem_responses(400, 401, 403, 404, 409, 422, 429),
)

NodeId = Annotated[uuid.UUID, Path(description="Node id.")]
AllocationId = Annotated[uuid.UUID, Path(description="Allocation id.")]
TokenId = Annotated[uuid.UUID, Path(description="Enrolment token id.")]
TemplateId = Annotated[uuid.UUID, Path(description="Template id.")]
ServerId = Annotated[uuid.UUID, Path(description="Server id.")]
Session = Annotated[AsyncSession, Depends(db_session)]
Admin = Annotated[Principal, Depends(require(PANEL_ADMIN))]
Member = Annotated[Principal, Depends(require(PANEL_USE))]
Creator = Annotated[Principal, Depends(require_user(PANEL_USE, PANEL_SERVERS_CREATE))]


# ------------------------------------------------------------------ nodes


@router.post("/nodes", status_code=201, summary="Add a node (admins); enrol its agent with a token")
async def create_node(data: NodeCreate, request: Request, session: Session, principal: Admin) -> NodeRead:
    panel = panel_context(request, session, principal)
    node = await nodes.do_create_node(panel, data)
    return await nodes.get_node(panel, node.id)


@router.get("/nodes", summary="Every node with its status and what is allocated on it (admins)")
async def list_nodes(request: Request, session: Session, principal: Admin) -> list[NodeRead]:
    return await nodes.list_nodes(panel_context(request, session, principal))


@router.get("/nodes/{node_id}", summary="A node (admins)")
async def get_node(node_id: NodeId, request: Request, session: Session, principal: Admin) -> NodeRead:
    return await nodes.get_node(panel_context(request, session, principal), node_id)


@router.patch("/nodes/{node_id}", summary="Change a node: name, capacity, draining (admins)")
async def update_node(
    node_id: NodeId, data: NodeUpdate, request: Request, session: Session, principal: Admin
) -> NodeRead:
    panel = panel_context(request, session, principal)
    await nodes.do_update_node(panel, node_id, data)
    return await nodes.get_node(panel, node_id)


@router.delete("/nodes/{node_id}", status_code=204, summary="Delete a node without servers (admins)")
async def delete_node(node_id: NodeId, request: Request, session: Session, principal: Admin) -> Response:
    await nodes.do_delete_node(panel_context(request, session, principal), node_id)
    return Response(status_code=204)


@router.post(
    "/enrolment-tokens", status_code=201, summary="A one-time token that enrols a node's agent, shown once"
)
async def create_enrolment_token(
    data: EnrolmentTokenCreate, request: Request, session: Session, principal: Admin
) -> EnrolmentTokenCreated:
    return await nodes.do_create_enrolment_token(panel_context(request, session, principal), data)


@router.get("/enrolment-tokens", summary="Enrolment tokens not yet used nor expired (admins)")
async def list_enrolment_tokens(
    request: Request, session: Session, principal: Admin
) -> list[EnrolmentTokenRead]:
    return await nodes.list_enrolment_tokens(panel_context(request, session, principal))


@router.delete(
    "/enrolment-tokens/{token_id}", status_code=204, summary="Withdraw an enrolment token (admins)"
)
async def delete_enrolment_token(
    token_id: TokenId, request: Request, session: Session, principal: Admin
) -> Response:
    await nodes.do_delete_enrolment_token(panel_context(request, session, principal), token_id)
    return Response(status_code=204)


# ------------------------------------------------------------------ allocations


@router.get("/nodes/{node_id}/allocations", summary="A node's allocations (admins)")
async def list_allocations(
    node_id: NodeId,
    request: Request,
    session: Session,
    principal: Admin,
    free: Annotated[bool | None, Query(description="true: only free ones; false: only those in use.")] = None,
) -> list[AllocationRead]:
    return await allocations.list_allocations(panel_context(request, session, principal), node_id, free=free)


@router.post(
    "/nodes/{node_id}/allocations", status_code=201, summary="Add ports (and ranges) to a node (admins)"
)
async def create_allocations(
    node_id: NodeId, data: AllocationCreate, request: Request, session: Session, principal: Admin
) -> list[AllocationRead]:
    return await allocations.do_create_allocations(panel_context(request, session, principal), node_id, data)


@router.delete(
    "/nodes/{node_id}/allocations/{allocation_id}",
    status_code=204,
    summary="Delete a free allocation (admins)",
)
async def delete_allocation(
    node_id: NodeId, allocation_id: AllocationId, request: Request, session: Session, principal: Admin
) -> Response:
    await allocations.do_delete_allocation(panel_context(request, session, principal), node_id, allocation_id)
    return Response(status_code=204)


# ------------------------------------------------------------------ templates


@router.get("/templates", summary="The templates servers can be made from")
async def list_templates(request: Request, session: Session, principal: Member) -> list[TemplateRead]:
    return await templates.list_templates(panel_context(request, session, principal))


@router.get("/templates/{template_id}", summary="A template with its variables and rules")
async def get_template(
    template_id: TemplateId, request: Request, session: Session, principal: Member
) -> TemplateRead:
    return await templates.get_template(panel_context(request, session, principal), template_id)


@router.post(
    "/templates/import",
    status_code=201,
    summary="Import a Pterodactyl/Pelican egg (admins); 200 when it replaced a template",
    responses={200: {"description": "An existing template of the slug was replaced (`replace`)."}},
)
async def import_template(
    data: TemplateImport, request: Request, response: Response, session: Session, principal: Admin
) -> TemplateImported:
    imported = await templates.do_import_template(panel_context(request, session, principal), data)
    if not imported.created:
        response.status_code = 200
    return imported


@router.delete(
    "/templates/{template_id}", status_code=204, summary="Delete a template no server uses (admins)"
)
async def delete_template(
    template_id: TemplateId, request: Request, session: Session, principal: Admin
) -> Response:
    await templates.do_delete_template(panel_context(request, session, principal), template_id)
    return Response(status_code=204)


# ------------------------------------------------------------------ servers


@router.post("/servers", status_code=201, summary="Create a game server (you become its owner)")
async def create_server(
    data: ServerCreate, request: Request, session: Session, principal: Creator
) -> ServerRead:
    panel = panel_context(request, session, principal)
    server = await servers.do_create_server(panel, data)
    return await servers.get_server(panel, server.id)


@router.get("/servers", summary="The servers you hold a role on (admins: every server)")
async def list_servers(
    request: Request,
    session: Session,
    principal: Member,
    node_id: Annotated[uuid.UUID | None, Query(description="Only this node's servers.")] = None,
    limit: Annotated[
        int, Query(ge=1, le=servers.LIST_LIMIT_MAX, description="Servers per page (by name).")
    ] = servers.LIST_LIMIT_DEFAULT,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="Servers skipped.")] = 0,
) -> list[ServerRead]:
    return await servers.list_servers(
        panel_context(request, session, principal), node_id=node_id, limit=limit, offset=offset
    )


@router.get("/servers/{server_id}", summary="A server, with your keys on it")
async def get_server(
    server_id: ServerId, request: Request, session: Session, principal: Member
) -> ServerRead:
    return await servers.get_server(panel_context(request, session, principal), server_id)


@router.patch("/servers/{server_id}", summary="Rename a server; admins: its limits and startup command")
async def update_server(
    server_id: ServerId, data: ServerUpdate, request: Request, session: Session, principal: Member
) -> ServerRead:
    panel = panel_context(request, session, principal)
    await servers.do_update_server(panel, server_id, data)
    return await servers.get_server(panel, server_id)


@router.delete("/servers/{server_id}", status_code=204, summary="Delete a server (its owner, admins)")
async def delete_server(
    server_id: ServerId, request: Request, session: Session, principal: Member
) -> Response:
    await servers.do_delete_server(panel_context(request, session, principal), server_id)
    return Response(status_code=204)


@router.get("/servers/{server_id}/startup", summary="The startup command and variables (`startup.read`)")
async def get_startup(
    server_id: ServerId, request: Request, session: Session, principal: Member
) -> ServerStartup:
    return await servers.get_startup(panel_context(request, session, principal), server_id)


@router.patch("/servers/{server_id}/startup", summary="Change startup variables (`startup.update`)")
async def update_startup(
    server_id: ServerId, data: StartupUpdate, request: Request, session: Session, principal: Member
) -> ServerStartup:
    panel = panel_context(request, session, principal)
    await servers.do_update_startup(panel, server_id, data)
    return await servers.get_startup(panel, server_id)


# ------------------------------------------------------------------ subusers, activity

UserId = Annotated[uuid.UUID, Path(description="The subuser's account id.")]


@router.get("/servers/{server_id}/users", summary="The owner and the subusers with their keys (`user.read`)")
async def list_subusers(
    server_id: ServerId, request: Request, session: Session, principal: Member
) -> list[SubuserRead]:
    return await subusers.list_subusers(panel_context(request, session, principal), server_id)


@router.post(
    "/servers/{server_id}/users",
    status_code=201,
    summary="Share the server with an existing account, with keys you hold (`user.create`)",
)
async def create_subuser(
    server_id: ServerId, data: SubuserCreate, request: Request, session: Session, principal: Member
) -> SubuserRead:
    return await subusers.do_create_subuser(panel_context(request, session, principal), server_id, data)


@router.put(
    "/servers/{server_id}/users/{user_id}",
    summary="Set a subuser's keys; you give and take only keys you hold (`user.update`)",
)
async def update_subuser(
    server_id: ServerId,
    user_id: UserId,
    data: SubuserUpdate,
    request: Request,
    session: Session,
    principal: Member,
) -> SubuserRead:
    panel = panel_context(request, session, principal)
    return await subusers.do_update_subuser(panel, server_id, user_id, data)


@router.delete(
    "/servers/{server_id}/users/{user_id}", status_code=204, summary="Remove a subuser (`user.delete`)"
)
async def delete_subuser(
    server_id: ServerId, user_id: UserId, request: Request, session: Session, principal: Member
) -> Response:
    await subusers.do_delete_subuser(panel_context(request, session, principal), server_id, user_id)
    return Response(status_code=204)


@router.get(
    "/servers/{server_id}/activity", summary="The server's activity log, newest first (`activity.read`)"
)
async def list_activity(
    server_id: ServerId,
    request: Request,
    session: Session,
    principal: Member,
    before: Annotated[uuid.UUID | None, Query(description="The last event id of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=activity.ACTIVITY_LIMIT_MAX)] = 50,
) -> list[ActivityRead]:
    return await activity.list_activity(
        panel_context(request, session, principal), server_id, before=before, limit=limit
    )


# ------------------------------------------------------------------ schedules

ScheduleId = Annotated[uuid.UUID, Path(description="Schedule id.")]


@router.get("/servers/{server_id}/schedules", summary="The server's schedules (`schedule.read`)")
async def list_schedules(
    server_id: ServerId, request: Request, session: Session, principal: Member
) -> list[ScheduleRead]:
    return await schedules.list_schedules(panel_context(request, session, principal), server_id)


@router.post(
    "/servers/{server_id}/schedules",
    status_code=201,
    summary="Add a schedule: cron + tasks; you need the keys its tasks need (`schedule.create`)",
)
async def create_schedule(
    server_id: ServerId, data: ScheduleWrite, request: Request, session: Session, principal: Member
) -> ScheduleRead:
    return await schedules.do_create_schedule(panel_context(request, session, principal), server_id, data)


@router.get("/servers/{server_id}/schedules/{schedule_id}", summary="A schedule (`schedule.read`)")
async def get_schedule(
    server_id: ServerId, schedule_id: ScheduleId, request: Request, session: Session, principal: Member
) -> ScheduleRead:
    return await schedules.get_schedule(panel_context(request, session, principal), server_id, schedule_id)


@router.put("/servers/{server_id}/schedules/{schedule_id}", summary="Replace a schedule (`schedule.update`)")
async def update_schedule(
    server_id: ServerId,
    schedule_id: ScheduleId,
    data: ScheduleWrite,
    request: Request,
    session: Session,
    principal: Member,
) -> ScheduleRead:
    panel = panel_context(request, session, principal)
    return await schedules.do_update_schedule(panel, server_id, schedule_id, data)


@router.delete(
    "/servers/{server_id}/schedules/{schedule_id}",
    status_code=204,
    summary="Delete a schedule (`schedule.delete`)",
)
async def delete_schedule(
    server_id: ServerId, schedule_id: ScheduleId, request: Request, session: Session, principal: Member
) -> Response:
    await schedules.do_delete_schedule(panel_context(request, session, principal), server_id, schedule_id)
    return Response(status_code=204)


@router.post(
    "/servers/{server_id}/schedules/{schedule_id}/run",
    status_code=202,
    summary="Run a schedule's tasks now (`schedule.update`)",
)
async def run_schedule_now(
    server_id: ServerId, schedule_id: ScheduleId, request: Request, session: Session, principal: Member
) -> ScheduleRead:
    return await schedules.do_run_now(panel_context(request, session, principal), server_id, schedule_id)


@router.get(
    "/servers/{server_id}/schedules/{schedule_id}/runs", summary="A schedule's latest runs (`schedule.read`)"
)
async def list_schedule_runs(
    server_id: ServerId,
    schedule_id: ScheduleId,
    request: Request,
    session: Session,
    principal: Member,
    limit: Annotated[int, Query(ge=1, le=schedules.RUNS_LIMIT_MAX)] = 20,
) -> list[ScheduleRunRead]:
    panel = panel_context(request, session, principal)
    return await schedules.list_runs(panel, server_id, schedule_id, limit)
