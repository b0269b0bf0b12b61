"""Reports of messages to the moderators, and the moderators' queue."""

from __future__ import annotations

import uuid

from pentad.apps.chat import repository, schemas
from pentad.apps.chat.access import require_permission
from pentad.apps.chat.actions.context import ChatContext, check_message_access
from pentad.apps.chat.actions.edits import do_delete_message
from pentad.apps.chat.exceptions import ChannelNotFound
from pentad.apps.chat.models import ChatReport
from pentad.apps.chat.permissions import CHANNEL_MODERATE
from pentad.core import audit
from pentad.core.db.base import utcnow
from pentad.core.errors import BadRequest, NotFound


async def do_report(chat: ChatContext, message_id: uuid.UUID, reason: str) -> schemas.Report:
    """Report someone else's message once; reporting it again answers with the first report."""
    message, _ = await check_message_access(chat, message_id)
    if message.user_id == chat.actor.user_id:
        raise BadRequest("You cannot report your own message.", code="own_message")
    existing = await repository.get_report_by(chat.session, message.id, chat.actor.user_id)
    if existing is not None:
        return schemas.Report.model_validate(existing)
    report = ChatReport(
        tenant_id=chat.actor.tenant.id,
        channel_id=message.channel_id,
        message_id=message.id,
        reporter_id=chat.actor.user_id,
        reason=reason,
    )
    chat.session.add(report)
    await chat.session.flush()
    audit.record(
        chat.session,
        chat.audit_actor,
        "chat.message_reported",
        resource_type="chat.message",
        resource_id=message.id,
        report_id=str(report.id),
    )
    return schemas.Report.model_validate(report)


async def list_reports(chat: ChatContext, status: str, limit: int) -> list[schemas.Report]:
    """The moderator queue: every report of the tenant for tenant moderators, else those of the
    channels the caller moderates."""
    channel_ids: list[uuid.UUID] | None = None
    if chat.actor.user.role not in ("admin", "moderator"):
        channel_ids = await repository.moderated_channel_ids(chat.session, chat.actor.user_id)
    rows = await repository.list_reports(
        chat.session, chat.actor.tenant.id, channel_ids=channel_ids, status=status, limit=limit
    )
    return [schemas.Report.model_validate(r) for r in rows]


async def do_resolve_report(
    chat: ChatContext, report_id: uuid.UUID, data: schemas.ReportResolve
) -> schemas.Report:
    report = await repository.get_report(chat.session, report_id)
    if report is None or report.tenant_id != chat.actor.tenant.id:
        raise NotFound("No such report.", code="report_not_found")
    try:
        access = await chat.access(report.channel_id)
    except ChannelNotFound:
        raise NotFound("No such report.", code="report_not_found") from None
    require_permission(access, CHANNEL_MODERATE)
    if data.delete_message:
        await do_delete_message(chat, report.message_id)
    report.status = data.status
    report.resolution = data.resolution
    report.resolved_by = chat.actor.user_id
    report.resolved_at = utcnow()
    await chat.session.flush()
    audit.record(
        chat.session,
        chat.audit_actor,
        f"chat.report_{data.status}",
        resource_type="chat.report",
        resource_id=report.id,
        message_deleted=data.delete_message,
    )
    return schemas.Report.model_validate(report)
