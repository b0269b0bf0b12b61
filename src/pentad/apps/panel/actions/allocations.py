"""Port allocations of a node: add in batches (ports and ranges), list, delete a free one."""

from __future__ import annotations

import uuid

from pentad.apps.panel import repository
from pentad.apps.panel.actions.context import PanelContext
from pentad.apps.panel.actions.nodes import NODE_RESOURCE
from pentad.apps.panel.exceptions import AllocationExists, AllocationNotFound, AllocationTaken, NodeNotFound
from pentad.apps.panel.models import PanelAllocation
from pentad.apps.panel.schemas import AllocationCreate, AllocationRead
from pentad.core import audit
from pentad.core.db.base import uuid7


async def _check_node(panel: PanelContext, node_id: uuid.UUID) -> None:
    if await repository.get_node(panel.session, node_id) is None:
        raise NodeNotFound()


async def list_allocations(
    panel: PanelContext, node_id: uuid.UUID, *, free: bool | None = None
) -> list[AllocationRead]:
    await _check_node(panel, node_id)
    found = await repository.list_allocations(panel.session, node_id=node_id, free=free)
    return [AllocationRead.model_validate(allocation) for allocation in found]


async def do_create_allocations(
    panel: PanelContext, node_id: uuid.UUID, data: AllocationCreate
) -> list[AllocationRead]:
    """Every port of `data` on its ip; AllocationExists (409, naming them) if any exists already, and then
    none is added."""
    await _check_node(panel, node_id)
    ports = data.port_numbers()
    existing = await repository.existing_ports(panel.session, node_id, data.ip, ports)
    if existing:
        raise AllocationExists([f"{data.ip}:{port}" for port in existing])
    rows = [
        PanelAllocation(id=uuid7(), node_id=node_id, ip=data.ip, port=port, notes=data.notes)
        for port in ports
    ]
    panel.session.add_all(rows)
    await panel.session.flush()
    audit.record(
        panel.session, panel.audit_actor, "panel.allocation.create", resource_type=NODE_RESOURCE,
        resource_id=str(node_id), ip=data.ip, ports=data.ports, count=len(rows),
    )  # fmt: skip
    return [AllocationRead.model_validate(row) for row in rows]


async def do_delete_allocation(panel: PanelContext, node_id: uuid.UUID, allocation_id: uuid.UUID) -> None:
    allocation = await repository.get_allocation(panel.session, allocation_id)
    if allocation is None or allocation.node_id != node_id:
        raise AllocationNotFound()
    if allocation.server_id is not None:
        raise AllocationTaken()
    await panel.session.delete(allocation)
    await panel.session.flush()
    audit.record(
        panel.session, panel.audit_actor, "panel.allocation.delete", resource_type=NODE_RESOURCE,
        resource_id=str(node_id), ip=allocation.ip, port=allocation.port,
    )  # fmt: skip
