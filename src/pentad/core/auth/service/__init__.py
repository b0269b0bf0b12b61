"""The accounts service: the rules of accounts, sessions and credentials, one module per area.

`AuthService(session, platform)` offers them all; it never commits (the caller owns the transaction).
"""

from __future__ import annotations

from pentad.core.auth.service.authentication import Authentication
from pentad.core.auth.service.base import (
    API,
    BROWSER,
    LAST_USED_RESOLUTION,
    MFA_TOKEN_TTL,
    BrowserSession,
    TokenPair,
    TotpSetup,
    csrf_matches,
    csrf_token,
)
from pentad.core.auth.service.credentials import Credentials
from pentad.core.auth.service.passwords import PasswordChanges
from pentad.core.auth.service.signin import SignIn
from pentad.core.auth.service.two_factor import TwoFactor
from pentad.core.auth.service.users import UserAdministration

__all__ = [
    "API",
    "BROWSER",
    "LAST_USED_RESOLUTION",
    "MFA_TOKEN_TTL",
    "AuthService",
    "BrowserSession",
    "TokenPair",
    "TotpSetup",
    "csrf_matches",
    "csrf_token",
]


class AuthService(UserAdministration, SignIn, Authentication, PasswordChanges, TwoFactor, Credentials):
    """Every area of the accounts service on one session."""
