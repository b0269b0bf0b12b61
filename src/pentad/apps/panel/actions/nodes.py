"""Nodes: create, list, change, delete (admins); one-time enrolment tokens; the enrolment itself, which
swaps a token for a node credential (called by the agent's public enrolment route)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.panel import repository
from pentad.apps.panel.actions.context import PanelContext
from pentad.apps.panel.credentials import ENROLMENT_TOKEN, NODE_CREDENTIAL, NODE_PRINCIPAL
from pentad.apps.panel.exceptions import (
    EnrolmentTokenInvalid,
    EnrolmentTokenNotFound,
    NodeInUse,
    NodeNameTaken,
    NodeNotFound,
)
from pentad.apps.panel.models import PanelEnrolmentToken, PanelNode, PanelNodeCredential
from pentad.apps.panel.schemas import (
    EnrolmentTokenCreate,
    EnrolmentTokenCreated,
    EnrolmentTokenRead,
    NodeCreate,
    NodeFacts,
    NodeRead,
    NodeUpdate,
)
from pentad.apps.panel.views import enrolment_token_read, node_read
from pentad.core import audit
from pentad.core.audit import Actor
from pentad.core.auth import tokens
from pentad.core.auth.cache import forget_on_commit
from pentad.core.context import AppContext
from pentad.core.db.base import utcnow, uuid7
from pentad.core.errors import BadRequest
from pentad.core.realtime.publish import recheck

NODE_RESOURCE = "panel.node"
MAX_FACTS_BYTES = 16_384


async def get_node(panel: PanelContext, node_id: uuid.UUID) -> NodeRead:
    node = await _node(panel, node_id)
    return node_read(node, await repository.node_usage(panel.session, node.id))


async def list_nodes(panel: PanelContext) -> list[NodeRead]:
    return [
        node_read(node, await repository.node_usage(panel.session, node.id))
        for node in await repository.list_nodes(panel.session)
    ]


async def _node(panel: PanelContext, node_id: uuid.UUID) -> PanelNode:
    node = await repository.get_node(panel.session, node_id)
    if node is None:
        raise NodeNotFound()
    return node


async def _check_name_free(session: AsyncSession, name: str, node_id: uuid.UUID | None = None) -> None:
    found = await repository.get_node_by_name(session, name)
    if found is not None and found.id != node_id:
        raise NodeNameTaken(name)


async def do_create_node(panel: PanelContext, data: NodeCreate) -> PanelNode:
    """A node not yet enrolled (offline until its agent swaps an enrolment token for a credential)."""
    await _check_name_free(panel.session, data.name)
    node = PanelNode(id=uuid7(), facts={}, **data.model_dump())
    panel.session.add(node)
    await panel.session.flush()
    audit.record(
        panel.session, panel.audit_actor, "panel.node.create", resource_type=NODE_RESOURCE,
        resource_id=str(node.id), name=node.name,
    )  # fmt: skip
    return node


async def do_update_node(panel: PanelContext, node_id: uuid.UUID, data: NodeUpdate) -> PanelNode:
    node = await _node(panel, node_id)
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    if "name" in changes:
        await _check_name_free(panel.session, changes["name"], node.id)
    for field, value in changes.items():
        setattr(node, field, value)
    await panel.session.flush()
    audit.record(
        panel.session, panel.audit_actor, "panel.node.update", resource_type=NODE_RESOURCE,
        resource_id=str(node.id), changes=changes,
    )  # fmt: skip
    return node


async def do_delete_node(panel: PanelContext, node_id: uuid.UUID) -> None:
    """Delete a node without servers: its credentials stop working at once (an open agent socket closes),
    its allocations and enrolment tokens go with it. NodeInUse (409) while servers are on it."""
    node = await _node(panel, node_id)
    servers = await repository.count_servers(panel.session, node_id=node.id)
    if servers:
        raise NodeInUse(servers)
    _forget_node(panel.session, panel.platform, node.id)
    await panel.session.delete(node)
    await panel.session.flush()
    audit.record(
        panel.session, panel.audit_actor, "panel.node.delete", resource_type=NODE_RESOURCE,
        resource_id=str(node_id), name=node.name,
    )  # fmt: skip


def _forget_node(session: AsyncSession, platform: AppContext | None, node_id: uuid.UUID) -> None:
    """The node's credentials changed: drop its cached principal and, after the commit, re-check (and so
    close) its agent's socket on every node."""
    if platform is not None:
        forget_on_commit(session, platform.principals, node_id)
    recheck(session, [node_id])


# ------------------------------------------------------------------ enrolment tokens


async def do_create_enrolment_token(panel: PanelContext, data: EnrolmentTokenCreate) -> EnrolmentTokenCreated:
    """A one-time token (`pne_…`, shown once, stored hashed) that enrols a new node named `node_name`, or
    enrols the node `node_id` again (replacing its credentials)."""
    if data.node_id is not None:
        node_name = (await _node(panel, data.node_id)).name
    else:
        assert data.node_name is not None
        await _check_name_free(panel.session, data.node_name)
        node_name = data.node_name
    ttl = data.ttl or panel.settings.enrolment_token_ttl
    token_id = uuid7()
    raw = tokens.new_token(ENROLMENT_TOKEN, token_id)
    row = PanelEnrolmentToken(
        id=token_id,
        token_hash=raw.secret_hash,
        hint=raw.hint,
        node_name=node_name,
        node_id=data.node_id,
        expires_at=utcnow() + timedelta(seconds=ttl),
        created_by=panel.user_id,
    )
    panel.session.add(row)
    await panel.session.flush()
    audit.record(
        panel.session, panel.audit_actor, "panel.node.enrolment_token_create", resource_type=NODE_RESOURCE,
        resource_id=str(data.node_id) if data.node_id else None, node_name=node_name, token_id=str(token_id),
        expires_at=row.expires_at.isoformat(),
    )  # fmt: skip
    base = str(panel.platform.base_url).rstrip("/")
    return EnrolmentTokenCreated(
        **enrolment_token_read(row).model_dump(),
        token=str(raw),
        command=f"pentad agent enrol --panel {base} --token {raw}",
    )


async def list_enrolment_tokens(panel: PanelContext) -> list[EnrolmentTokenRead]:
    """Tokens still usable (neither used nor expired)."""
    rows = await repository.list_enrolment_tokens(panel.session, pending_at=utcnow())
    return [enrolment_token_read(row) for row in rows]


async def do_delete_enrolment_token(panel: PanelContext, token_id: uuid.UUID) -> None:
    if not await repository.delete_enrolment_token(panel.session, token_id):
        raise EnrolmentTokenNotFound()
    audit.record(
        panel.session, panel.audit_actor, "panel.node.enrolment_token_delete", resource_type=NODE_RESOURCE,
        token_id=str(token_id),
    )  # fmt: skip


# ------------------------------------------------------------------ enrolment (the agent's side)


def _facts(facts: NodeFacts | Mapping[str, Any]) -> NodeFacts:
    try:
        parsed = facts if isinstance(facts, NodeFacts) else NodeFacts.model_validate(dict(facts))
    except ValidationError as exc:
        issues = [
            {"loc": ["body", "facts", *error["loc"]], "msg": error["msg"], "type": error["type"]}
            for error in exc.errors()
        ]
        raise BadRequest("The node's facts are not valid.", code="invalid_facts", errors=issues) from None
    if len(parsed.model_dump_json()) > MAX_FACTS_BYTES:
        raise BadRequest(f"The node's facts exceed {MAX_FACTS_BYTES} bytes.", code="invalid_facts")
    return parsed


async def enrol_node(
    session: AsyncSession,
    raw_token: str,
    facts: NodeFacts | Mapping[str, Any],
    *,
    platform: AppContext | None = None,
    ip_address: str | None = None,
) -> tuple[PanelNode, str]:
    """Swap a one-time enrolment token (`pne_…`) for a node credential: the node (created now for a token
    naming a new node; for one naming an existing node, its earlier credentials are revoked) and the raw
    `pnd_…` credential, which is never stored (only its SHA-256). The token is spent even if two agents race
    with it: one wins, the other gets EnrolmentTokenInvalid (401), as for an unknown, used or expired token.
    NodeNameTaken (409) when another node took the name since the token was made. `platform`: pass it so
    the revoked credentials' cached principal is forgotten at once (otherwise within 60 s)."""
    parsed = _facts(facts)
    token = tokens.parse_token(raw_token.strip(), ENROLMENT_TOKEN)
    if token is None:
        raise EnrolmentTokenInvalid()
    row = await repository.get_enrolment_token(session, token.id)
    now = utcnow()
    if row is None or not tokens.secret_matches(token.secret, row.token_hash):
        raise EnrolmentTokenInvalid()
    if not await repository.use_enrolment_token(session, row.id, now):
        raise EnrolmentTokenInvalid()
    reported = parsed.model_dump(exclude_none=True)
    if row.node_id is not None:
        node = await repository.get_node(session, row.node_id)
        if node is None:
            raise EnrolmentTokenInvalid()
        await repository.revoke_node_credentials(session, node.id, now)
        _forget_node(session, platform, node.id)
        node.facts = reported
    else:
        await _check_name_free(session, row.node_name)
        node = PanelNode(
            id=uuid7(),
            name=row.node_name,
            facts=reported,
            memory_mb=parsed.memory_mb or 0,
            disk_mb=parsed.disk_mb or 0,
            cpu_percent=(parsed.cores or 0) * 100,
        )
        session.add(node)
    node.enrolled_at = now
    credential_id = uuid7()
    raw = tokens.new_token(NODE_CREDENTIAL, credential_id)
    session.add(
        PanelNodeCredential(id=credential_id, node_id=node.id, token_hash=raw.secret_hash, hint=raw.hint)
    )
    await session.flush()
    actor = Actor(NODE_PRINCIPAL, str(node.id), f"panel node {node.name}", ip_address)
    audit.record(
        session, actor, "panel.node.enrol", resource_type=NODE_RESOURCE, resource_id=str(node.id),
        name=node.name, token_id=str(row.id), credential_id=str(credential_id), again=row.node_id is not None,
    )  # fmt: skip
    return node, str(raw)
