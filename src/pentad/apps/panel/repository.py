"""All SQL of the panel app."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.panel.models import (
    PanelAllocation,
    PanelBackup,
    PanelEnrolmentToken,
    PanelNode,
    PanelNodeCredential,
    PanelSchedule,
    PanelScheduleRun,
    PanelServer,
    PanelServerVariable,
    PanelTemplate,
    PanelTemplateVariable,
)

# ------------------------------------------------------------------ nodes


async def get_node(session: AsyncSession, node_id: uuid.UUID) -> PanelNode | None:
    return await session.get(PanelNode, node_id)


async def get_node_by_name(session: AsyncSession, name: str) -> PanelNode | None:
    found: PanelNode | None = await session.scalar(select(PanelNode).where(PanelNode.name == name))
    return found


async def list_nodes(session: AsyncSession) -> list[PanelNode]:
    return list((await session.scalars(select(PanelNode).order_by(PanelNode.name))).all())


async def node_usage(session: AsyncSession, node_id: uuid.UUID) -> tuple[int, int, int, int]:
    """Servers on the node and the sums of their memory, disk and CPU limits."""
    row = (
        await session.execute(
            select(
                func.count(PanelServer.id),
                func.coalesce(func.sum(PanelServer.memory_mb), 0),
                func.coalesce(func.sum(PanelServer.disk_mb), 0),
                func.coalesce(func.sum(PanelServer.cpu_percent), 0),
            ).where(PanelServer.node_id == node_id)
        )
    ).one()
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


# ------------------------------------------------------------------ credentials and enrolment tokens


async def get_credential(session: AsyncSession, credential_id: uuid.UUID) -> PanelNodeCredential | None:
    return await session.get(PanelNodeCredential, credential_id)


async def revoke_node_credentials(session: AsyncSession, node_id: uuid.UUID, when: datetime) -> int:
    result = await session.execute(
        update(PanelNodeCredential)
        .where(PanelNodeCredential.node_id == node_id, PanelNodeCredential.revoked_at.is_(None))
        .values(revoked_at=when)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def get_enrolment_token(session: AsyncSession, token_id: uuid.UUID) -> PanelEnrolmentToken | None:
    return await session.get(PanelEnrolmentToken, token_id)


async def use_enrolment_token(session: AsyncSession, token_id: uuid.UUID, when: datetime) -> bool:
    """Mark the token used, unless it was already (by a concurrent enrolment): True when this call did."""
    result = await session.execute(
        update(PanelEnrolmentToken)
        .where(
            PanelEnrolmentToken.id == token_id,
            PanelEnrolmentToken.used_at.is_(None),
            PanelEnrolmentToken.expires_at > when,
        )
        .values(used_at=when)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0) == 1  # type: ignore[attr-defined]


async def list_enrolment_tokens(session: AsyncSession, *, pending_at: datetime) -> list[PanelEnrolmentToken]:
    """Tokens neither used nor expired at `pending_at`, newest first."""
    query = (
        select(PanelEnrolmentToken)
        .where(PanelEnrolmentToken.used_at.is_(None), PanelEnrolmentToken.expires_at > pending_at)
        .order_by(PanelEnrolmentToken.created_at.desc(), PanelEnrolmentToken.id)
    )
    return list((await session.scalars(query)).all())


async def delete_enrolment_token(session: AsyncSession, token_id: uuid.UUID) -> bool:
    result = await session.execute(delete(PanelEnrolmentToken).where(PanelEnrolmentToken.id == token_id))
    return int(result.rowcount or 0) == 1  # type: ignore[attr-defined]


# ------------------------------------------------------------------ allocations


async def get_allocation(session: AsyncSession, allocation_id: uuid.UUID) -> PanelAllocation | None:
    return await session.get(PanelAllocation, allocation_id)


async def list_allocations(
    session: AsyncSession,
    *,
    node_id: uuid.UUID | None = None,
    server_id: uuid.UUID | None = None,
    free: bool | None = None,
) -> list[PanelAllocation]:
    query = select(PanelAllocation)
    if node_id is not None:
        query = query.where(PanelAllocation.node_id == node_id)
    if server_id is not None:
        query = query.where(PanelAllocation.server_id == server_id)
    if free is True:
        query = query.where(PanelAllocation.server_id.is_(None))
    elif free is False:
        query = query.where(PanelAllocation.server_id.is_not(None))
    query = query.order_by(PanelAllocation.ip, PanelAllocation.port, PanelAllocation.id)
    return list((await session.scalars(query)).all())


async def list_server_allocations(
    session: AsyncSession, server_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, list[PanelAllocation]]:
    """The allocations of each of the servers (one query), by server, each list in ip/port order."""
    found: dict[uuid.UUID, list[PanelAllocation]] = {server_id: [] for server_id in server_ids}
    if not server_ids:
        return found
    query = (
        select(PanelAllocation)
        .where(PanelAllocation.server_id.in_(list(server_ids)))
        .order_by(PanelAllocation.ip, PanelAllocation.port, PanelAllocation.id)
    )
    for allocation in (await session.scalars(query)).all():
        assert allocation.server_id is not None
        found[allocation.server_id].append(allocation)
    return found


async def existing_ports(
    session: AsyncSession, node_id: uuid.UUID, ip: str, ports: Collection[int]
) -> list[int]:
    if not ports:
        return []
    query = select(PanelAllocation.port).where(
        PanelAllocation.node_id == node_id, PanelAllocation.ip == ip, PanelAllocation.port.in_(list(ports))
    )
    return sorted((await session.scalars(query)).all())


async def get_allocations(session: AsyncSession, ids: Sequence[uuid.UUID]) -> list[PanelAllocation]:
    if not ids:
        return []
    """The allocations, locked (FOR UPDATE where the engine has it) and read afresh: a row this session
    loaded before may have been taken by another server since."""
    query = (
        select(PanelAllocation)
        .where(PanelAllocation.id.in_(list(ids)))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list((await session.scalars(query)).all())


async def release_allocations(session: AsyncSession, server_id: uuid.UUID) -> None:
    await session.execute(
        update(PanelAllocation)
        .where(PanelAllocation.server_id == server_id)
        .values(server_id=None)
        .execution_options(synchronize_session=False)
    )


# ------------------------------------------------------------------ templates


async def get_template(session: AsyncSession, template_id: uuid.UUID) -> PanelTemplate | None:
    return await session.get(PanelTemplate, template_id)


async def get_template_by_slug(session: AsyncSession, slug: str) -> PanelTemplate | None:
    found: PanelTemplate | None = await session.scalar(
        select(PanelTemplate).where(PanelTemplate.slug == slug)
    )
    return found


async def list_templates(session: AsyncSession) -> list[PanelTemplate]:
    return list((await session.scalars(select(PanelTemplate).order_by(PanelTemplate.name))).all())


async def list_template_variables(
    session: AsyncSession, template_ids: Collection[uuid.UUID]
) -> list[PanelTemplateVariable]:
    if not template_ids:
        return []
    query = (
        select(PanelTemplateVariable)
        .where(PanelTemplateVariable.template_id.in_(list(template_ids)))
        .order_by(
            PanelTemplateVariable.template_id, PanelTemplateVariable.sort, PanelTemplateVariable.env_name
        )
    )
    return list((await session.scalars(query)).all())


async def delete_template_variables(session: AsyncSession, ids: Collection[uuid.UUID]) -> None:
    if ids:
        await session.execute(delete(PanelTemplateVariable).where(PanelTemplateVariable.id.in_(list(ids))))


async def count_servers(
    session: AsyncSession, *, template_id: uuid.UUID | None = None, node_id: uuid.UUID | None = None
) -> int:
    query = select(func.count(PanelServer.id))
    if template_id is not None:
        query = query.where(PanelServer.template_id == template_id)
    if node_id is not None:
        query = query.where(PanelServer.node_id == node_id)
    return int(await session.scalar(query) or 0)


# ------------------------------------------------------------------ servers


async def get_server(session: AsyncSession, server_id: uuid.UUID) -> PanelServer | None:
    return await session.get(PanelServer, server_id)


async def short_id_taken(session: AsyncSession, short_id: str) -> bool:
    found = await session.scalar(select(PanelServer.id).where(PanelServer.short_id == short_id))
    return found is not None


async def list_servers(
    session: AsyncSession,
    *,
    ids: Collection[uuid.UUID] | None = None,
    owner_id: uuid.UUID | None = None,
    node_id: uuid.UUID | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> list[PanelServer]:
    """Servers by name; `ids` with `owner_id` is their union (mine and shared with me)."""
    query = select(PanelServer)
    if ids is not None:
        either: list[ColumnElement[bool]] = [PanelServer.id.in_(list(ids))] if ids else []
        if owner_id is not None:
            either.append(PanelServer.owner_id == owner_id)
        if not either:
            return []
        query = query.where(or_(*either))
    elif owner_id is not None:
        query = query.where(PanelServer.owner_id == owner_id)
    if node_id is not None:
        query = query.where(PanelServer.node_id == node_id)
    query = query.order_by(PanelServer.name, PanelServer.id).limit(limit).offset(offset)
    return list((await session.scalars(query)).all())


async def list_server_variables(session: AsyncSession, server_id: uuid.UUID) -> list[PanelServerVariable]:
    query = select(PanelServerVariable).where(PanelServerVariable.server_id == server_id)
    return list((await session.scalars(query)).all())


async def node_names(session: AsyncSession, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The names of the nodes (one query), by id."""
    if not ids:
        return {}
    query = select(PanelNode.id, PanelNode.name).where(PanelNode.id.in_(list(ids)))
    return {row.id: row.name for row in (await session.execute(query)).all()}


async def get_schedule(session: AsyncSession, schedule_id: uuid.UUID) -> PanelSchedule | None:
    return await session.get(PanelSchedule, schedule_id)


async def list_schedules(session: AsyncSession, server_id: uuid.UUID) -> list[PanelSchedule]:
    query = (
        select(PanelSchedule)
        .where(PanelSchedule.server_id == server_id)
        .order_by(PanelSchedule.name, PanelSchedule.id)
    )
    return list((await session.scalars(query)).all())


async def get_schedule_run(session: AsyncSession, run_id: uuid.UUID) -> PanelScheduleRun | None:
    return await session.get(PanelScheduleRun, run_id)


async def list_schedule_runs(
    session: AsyncSession, schedule_id: uuid.UUID, limit: int
) -> list[PanelScheduleRun]:
    query = (
        select(PanelScheduleRun)
        .where(PanelScheduleRun.schedule_id == schedule_id)
        .order_by(PanelScheduleRun.started_at.desc(), PanelScheduleRun.id.desc())
        .limit(limit)
    )
    return list((await session.scalars(query)).all())


# --- backups ---


async def get_backup(session: AsyncSession, server_id: uuid.UUID, backup_id: uuid.UUID) -> PanelBackup | None:
    backup = await session.get(PanelBackup, backup_id)
    return backup if backup is not None and backup.server_id == server_id else None


async def list_backups(session: AsyncSession, server_id: uuid.UUID) -> list[PanelBackup]:
    """The server's backups, newest first."""
    query = (
        select(PanelBackup)
        .where(PanelBackup.server_id == server_id)
        .order_by(PanelBackup.created_at.desc(), PanelBackup.id.desc())
    )
    return list((await session.scalars(query)).all())


async def busy_backup(session: AsyncSession, server_id: uuid.UUID) -> PanelBackup | None:
    """A backup of the server still pending or running, if any."""
    query = select(PanelBackup).where(
        PanelBackup.server_id == server_id, PanelBackup.status.in_(("pending", "running"))
    )
    return (await session.scalars(query.limit(1))).first()
