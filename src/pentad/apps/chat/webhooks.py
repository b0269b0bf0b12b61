"""Outgoing webhooks of a tenant (placeholder: filled in by the integrations work)."""

from __future__ import annotations

import uuid

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.core.platform import Platform


async def dispatch(
    session: AsyncSession, platform: Platform, tenant_id: uuid.UUID, event_type: str, data: BaseModel
) -> None:
    """Queue a delivery of `event_type` to every active webhook of the tenant that wants it."""
    del session, platform, tenant_id, event_type, data
