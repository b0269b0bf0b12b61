"""Backups of a server (/api/panel/servers/{id}/backups/…). Thin: one action call each
(actions/backups.py: the rules and the jobs that do the work).

Every route needs `panel.use`, then the server's own key: listing and reading `backup.read`, making one
`backup.create` (202: a job makes, stores and verifies it; follow the `backup` events on the server's
state topic or poll the backup), deleting and (un)locking `backup.delete`, a download link
`backup.download`, restoring `backup.restore` (202; the server must be stopped).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.panel.actions import backups
from pentad.apps.panel.actions.context import PanelContext
from pentad.apps.panel.permissions import PANEL_USE
from pentad.core.auth.dependencies import db_session, request_actor, require
from pentad.core.auth.principal import Principal
from pentad.core.errors import problem_responses
from pentad.core.platform import get_platform

router = APIRouter(
    prefix="/api/panel/servers",
    tags=["panel"],
    responses=problem_responses(400, 401, 403, 404, 409, 422, 429),
)

ServerId = Annotated[uuid.UUID, Path(description="The server's id.")]
BackupId = Annotated[uuid.UUID, Path(description="The backup's id.")]
Session = Annotated[AsyncSession, Depends(db_session)]
Member = Annotated[Principal, Depends(require(PANEL_USE))]


class LockRequest(BaseModel):
    locked: bool


def _context(request: Request, session: AsyncSession, principal: Principal) -> PanelContext:
    return PanelContext(session, get_platform(request), principal, request_actor(request, principal))


@router.get("/{server_id}/backups", summary="The server's backups, newest first (backup.read)")
async def list_backups(
    server_id: ServerId, request: Request, session: Session, principal: Member
) -> list[backups.BackupRead]:
    return await backups.list_backups(_context(request, session, principal), server_id)


@router.post(
    "/{server_id}/backups",
    status_code=202,
    summary="Make a backup: archived on the node, stored, verified by a test restore (backup.create)",
)
async def create_backup(
    server_id: ServerId, data: backups.BackupCreate, request: Request, session: Session, principal: Member
) -> backups.BackupRead:
    return await backups.do_create_backup(_context(request, session, principal), server_id, data)


@router.get("/{server_id}/backups/{backup_id}", summary="A backup (backup.read)")
async def get_backup(
    server_id: ServerId, backup_id: BackupId, request: Request, session: Session, principal: Member
) -> backups.BackupRead:
    return await backups.get_backup(_context(request, session, principal), server_id, backup_id)


@router.delete("/{server_id}/backups/{backup_id}", status_code=204, summary="Delete a backup (backup.delete)")
async def delete_backup(
    server_id: ServerId, backup_id: BackupId, request: Request, session: Session, principal: Member
) -> Response:
    await backups.do_delete_backup(_context(request, session, principal), server_id, backup_id)
    return Response(status_code=204)


@router.post(
    "/{server_id}/backups/{backup_id}/lock",
    summary="Lock or unlock a backup: locked ones are never pruned nor deleted (backup.delete)",
)
async def lock_backup(
    server_id: ServerId,
    backup_id: BackupId,
    data: LockRequest,
    request: Request,
    session: Session,
    principal: Member,
) -> backups.BackupRead:
    context = _context(request, session, principal)
    return await backups.do_lock_backup(context, server_id, backup_id, locked=data.locked)


@router.get(
    "/{server_id}/backups/{backup_id}/download",
    summary="A short-lived signed link to download the backup (backup.download)",
)
async def download_backup(
    server_id: ServerId, backup_id: BackupId, request: Request, session: Session, principal: Member
) -> backups.BackupDownload:
    return await backups.download_link(_context(request, session, principal), server_id, backup_id)


@router.post(
    "/{server_id}/backups/{backup_id}/restore",
    status_code=202,
    summary="Restore a backup into the stopped server's folder, replacing its content (backup.restore)",
)
async def restore_backup(
    server_id: ServerId, backup_id: BackupId, request: Request, session: Session, principal: Member
) -> backups.BackupRead:
    return await backups.do_restore_backup(_context(request, session, principal), server_id, backup_id)
