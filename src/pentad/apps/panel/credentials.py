"""Node credentials: the `pnd_<id>_<secret>` bearer tokens agents connect with (core CredentialScheme), and
the `pne_<id>_<secret>` one-time enrolment tokens they are swapped for.

A node credential authenticates as a principal of kind `panel_node` whose id is the node's id and whose only
permission is `panel.agent` (explicit: no user route takes it, no API key's `*` scope implies it). Only the
SHA-256 of a secret is stored (32 random bytes: a slow hash would add a cost to every agent reconnect and
nothing else). Revoking a credential (enrolling the node again, deleting the node) forgets the node's cached
principal and re-checks its open socket (`forget_on_commit` + `recheck`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.panel import repository
from pentad.apps.panel.models import PanelNode, PanelNodeCredential
from pentad.apps.panel.permissions import PANEL_AGENT
from pentad.core.auth import tokens
from pentad.core.auth.exceptions import InvalidToken
from pentad.core.auth.principal import Principal
from pentad.core.auth.schemes import CredentialScheme
from pentad.core.context import AppContext
from pentad.core.db.base import utcnow

NODE_CREDENTIAL = "pnd"
ENROLMENT_TOKEN = "pne"  # noqa: S105 - a token prefix, not a secret
NODE_PRINCIPAL = "panel_node"
NODE_CREDENTIAL_VIA = "panel_node_credential"
CREDENTIAL_CHECK_SECONDS = 60
"""How long an authenticated node principal is cached before its credential row is read again (revocation
forgets it at once anyway)."""


async def authenticate_node(
    session: AsyncSession, raw_credential: str
) -> tuple[PanelNode, PanelNodeCredential]:
    """The node a raw `pnd_…` credential belongs to, and the credential's row; InvalidToken (401) for a
    malformed, unknown or revoked one."""
    token = tokens.parse_token(raw_credential, NODE_CREDENTIAL)
    if token is None:
        raise InvalidToken()
    credential = await repository.get_credential(session, token.id)
    if (
        credential is None
        or credential.revoked_at is not None
        or not tokens.secret_matches(token.secret, credential.token_hash)
    ):
        raise InvalidToken()
    node = await repository.get_node(session, credential.node_id)
    if node is None:
        raise InvalidToken()
    return node, credential


def node_principal(node: PanelNode, credential: PanelNodeCredential) -> Principal:
    return Principal(
        kind=NODE_PRINCIPAL,
        id=node.id,
        label=f"panel node {node.name}",
        roles=frozenset(),
        permissions=frozenset({PANEL_AGENT.key}),
        via=NODE_CREDENTIAL_VIA,
        credential_id=credential.id,
        display_name=node.name,
    )


def is_node_principal(principal: Principal) -> bool:
    return principal.kind == NODE_PRINCIPAL


async def _authenticate(session: AsyncSession, _platform: AppContext, raw: str) -> tuple[Principal, datetime]:
    node, credential = await authenticate_node(session, raw)
    return node_principal(node, credential), utcnow() + timedelta(seconds=CREDENTIAL_CHECK_SECONDS)


NODE_SCHEME = CredentialScheme(NODE_CREDENTIAL, _authenticate)
