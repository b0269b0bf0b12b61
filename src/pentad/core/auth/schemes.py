"""Bearer-token kinds that apps define, next to the core's API keys, service and access tokens.

A scheme owns every token that starts with `<prefix>_` (e.g. the chat app's user tokens `pcu_…`):
AuthService.authenticate_bearer hands such a token to the scheme, the realtime endpoint asks it when the
token expires. The principal it returns is cached like any other (PENTAD_AUTH__PRINCIPAL_CACHE_TTL).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from pentad.core.auth.principal import Principal
from pentad.core.context import AppContext

Authenticate = Callable[[AsyncSession, AppContext, str], Awaitable[tuple[Principal, datetime]]]
"""Verify the raw token; return the principal and when the answer stops being valid. Raise InvalidToken."""


def _no_expiry(_platform: AppContext, _token: str) -> float | None:
    return None


@dataclass(frozen=True)
class CredentialScheme:
    prefix: str
    authenticate: Authenticate
    expiry: Callable[[AppContext, str], float | None] = _no_expiry
    """Unix time the token itself expires, if it says so (a signed token), else None."""
