"""Plugins and the marketplace (/api/panel/plugins/…). Thin: one action call each (actions/plugins.py).

Management (list, market, install, approve, enable, settings, update, remove, publishers, the UI page)
needs `panel.admin`. A plugin's own routes, /api/panel/plugins/{id}/routes/{path}, need `panel.use` and
reach the plugin only when it holds an approved `http.routes` and runs.

The UI page is served with a CSP `sandbox allow-scripts` (a unique origin: no cookies, no same-origin
access to the panel) and may only be framed by the panel itself.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import FileResponse
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.panel.actions import plugins
from pentad.apps.panel.actions.context import PanelContext
from pentad.apps.panel.permissions import PANEL_ADMIN, PANEL_USE
from pentad.core.auth.dependencies import db_session, request_actor, require
from pentad.core.auth.principal import Principal
from pentad.core.errors import problem_responses
from pentad.core.platform import get_platform
from pentad.core.policy import route_policy

router = APIRouter(
    prefix="/api/panel/plugins",
    tags=["panel"],
    responses=problem_responses(400, 401, 403, 404, 409, 422, 429),
)

PluginId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$", description="The plugin's id.")]
Session = Annotated[AsyncSession, Depends(db_session)]
Admin = Annotated[Principal, Depends(require(PANEL_ADMIN))]
Member = Annotated[Principal, Depends(require(PANEL_USE))]

UI_CSP = {
    "sandbox": "allow-scripts",
    "default-src": "'none'",
    "script-src": "'unsafe-inline'",
    "style-src": "'unsafe-inline'",
    "img-src": "data:",
    "connect-src": "'none'",
    "frame-ancestors": "'self'",
}


def _context(request: Request, session: AsyncSession, principal: Principal) -> PanelContext:
    return PanelContext(session, get_platform(request), principal, request_actor(request, principal))


@router.get("", summary="Installed plugins, their capabilities and status (admin)")
async def list_plugins(request: Request, session: Session, principal: Admin) -> list[plugins.PluginRead]:
    return await plugins.list_installed(_context(request, session, principal))


@router.get("/market", summary="What the configured marketplaces offer, signatures checked (admin)")
async def browse_market(request: Request, session: Session, principal: Admin) -> plugins.MarketListing:
    return await plugins.browse(_context(request, session, principal))


@router.post("", status_code=201, summary="Install a plugin from a marketplace, disabled (admin)")
async def install_plugin(
    data: plugins.InstallRequest, request: Request, session: Session, principal: Admin
) -> plugins.PluginRead:
    return await plugins.do_install(_context(request, session, principal), data)


@router.get("/publishers", summary="Publisher keys trusted to sign packages (admin)")
async def list_publishers(
    request: Request, session: Session, principal: Admin
) -> list[plugins.PublisherRead]:
    return await plugins.list_publishers(_context(request, session, principal))


@router.post("/publishers", status_code=201, summary="Trust a publisher's ed25519 key (admin)")
async def trust_publisher(
    data: plugins.PublisherRequest, request: Request, session: Session, principal: Admin
) -> plugins.PublisherRead:
    return await plugins.do_trust_publisher(_context(request, session, principal), data)


@router.post("/publishers/remove", status_code=204, summary="Stop trusting a publisher's key (admin)")
async def distrust_publisher(
    data: plugins.PublisherRequest, request: Request, session: Session, principal: Admin
) -> Response:
    context = _context(request, session, principal)
    await plugins.do_distrust_publisher(context, data.publisher, data.public_key)
    return Response(status_code=204)


@router.get("/{plugin_id}", summary="An installed plugin (admin)")
async def get_plugin(
    plugin_id: PluginId, request: Request, session: Session, principal: Admin
) -> plugins.PluginRead:
    return await plugins.get_installed(_context(request, session, principal), plugin_id)


@router.post("/{plugin_id}/approve", summary="Approve the capabilities the plugin requests (admin)")
async def approve_plugin(
    plugin_id: PluginId, data: plugins.ApproveRequest, request: Request, session: Session, principal: Admin
) -> plugins.PluginRead:
    return await plugins.do_approve(_context(request, session, principal), plugin_id, data)


@router.post("/{plugin_id}/enabled", summary="Enable (start) or disable (stop) a plugin (admin)")
async def enable_plugin(
    plugin_id: PluginId, data: plugins.EnableRequest, request: Request, session: Session, principal: Admin
) -> plugins.PluginRead:
    return await plugins.do_enable(_context(request, session, principal), plugin_id, enabled=data.enabled)


@router.put("/{plugin_id}/settings", summary="Replace the plugin's settings, stored encrypted (admin)")
async def set_settings(
    plugin_id: PluginId, data: plugins.SettingsRequest, request: Request, session: Session, principal: Admin
) -> plugins.PluginRead:
    return await plugins.do_set_settings(_context(request, session, principal), plugin_id, data)


@router.post("/{plugin_id}/update", summary="Update to the newest version its marketplace offers (admin)")
async def update_plugin(
    plugin_id: PluginId, request: Request, session: Session, principal: Admin
) -> plugins.PluginRead:
    return await plugins.do_update(_context(request, session, principal), plugin_id)


@router.delete("/{plugin_id}", status_code=204, summary="Stop and remove a plugin (admin)")
async def remove_plugin(
    plugin_id: PluginId, request: Request, session: Session, principal: Admin
) -> Response:
    await plugins.do_remove(_context(request, session, principal), plugin_id)
    return Response(status_code=204)


@router.get("/{plugin_id}/ui", summary="The plugin's UI page, for a sandboxed frame (admin, ui.panel)")
@route_policy(csp=UI_CSP)
async def plugin_ui(
    plugin_id: PluginId, request: Request, session: Session, principal: Admin
) -> FileResponse:
    path = await plugins.ui_file(_context(request, session, principal), plugin_id)
    return FileResponse(path, media_type="text/html")


@router.api_route(
    "/{plugin_id}/routes/{path:path}",
    methods=["GET", "POST", "PUT", "DELETE"],
    summary="A route the plugin answers (panel.use; the plugin needs http.routes)",
)
async def plugin_route(
    plugin_id: PluginId, path: str, request: Request, session: Session, principal: Member
) -> Response:
    body = (await request.body()).decode("utf-8", errors="replace")
    answer = await plugins.call_route(
        _context(request, session, principal), plugin_id, request.method, "/" + path,
        dict(request.query_params), body,
    )  # fmt: skip
    content_type = str(answer.get("content_type") or "application/json")
    if content_type.split(";")[0].strip() not in ("application/json", "text/plain"):
        content_type = "text/plain"
    return Response(str(answer.get("body", "")), status_code=int(answer["status"]), media_type=content_type)
