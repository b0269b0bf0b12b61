"""A server's activity log: the core audit events recorded on it (`resource_type="panel.server"`): power
actions, commands, changes, subusers and their keys, schedules: who, what, when. Newest first."""

from __future__ import annotations

import uuid

from pentad.apps.panel.actions.context import PanelContext
from pentad.apps.panel.permissions import SERVER_ACTIVITY, SERVER_RESOURCE
from pentad.apps.panel.schemas import ActivityRead
from pentad.core import audit

ACTIVITY_LIMIT_MAX = 200


async def list_activity(
    panel: PanelContext, server_id: uuid.UUID, *, before: uuid.UUID | None = None, limit: int = 50
) -> list[ActivityRead]:
    """One page of the server's audit events (`activity.read`), newest first; the next page with `before`
    = the id of the last event of this one. Addresses are not shown."""
    access = await panel.access(server_id, SERVER_ACTIVITY)
    events = await audit.list_events(
        panel.session,
        resource_type=SERVER_RESOURCE,
        resource_id=str(access.server.id),
        before=before,
        limit=max(1, min(limit, ACTIVITY_LIMIT_MAX)),
    )
    return [
        ActivityRead(
            id=event.id,
            at=event.at,
            action=event.action,
            actor_type=event.actor_type,
            actor_id=event.actor_id,
            actor_label=event.actor_label,
            details=event.details,
        )
        for event in events
    ]
