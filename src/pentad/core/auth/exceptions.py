"""Errors of accounts and credentials, each with a stable code."""

from __future__ import annotations

from pentad.core.errors import AppError, BadRequest, Conflict, NotAuthenticated, NotFound, PermissionDenied


class InvalidCredentials(NotAuthenticated):
    code = "invalid_credentials"

    def __init__(self) -> None:
        super().__init__("Invalid e-mail or password.")


class InvalidSecondFactor(NotAuthenticated):
    code = "invalid_second_factor"

    def __init__(self) -> None:
        super().__init__("The authentication code is wrong or was already used.")


class InvalidToken(NotAuthenticated):
    code = "invalid_token"

    def __init__(self, message: str = "The token is invalid, expired or revoked.") -> None:
        super().__init__(message)


class RefreshTokenReused(NotAuthenticated):
    code = "refresh_token_reused"

    def __init__(self) -> None:
        super().__init__("This refresh token was already used; the session has been revoked. Log in again.")


class ReverificationRequired(PermissionDenied):
    code = "reverification_required"

    def __init__(self) -> None:
        super().__init__(
            "Confirm it is you first: send your password (and a two-factor code when it is on) to "
            "POST /api/me/verify, then try again."
        )


class InvalidEmailAddress(AppError):
    status, code = 422, "invalid_email"


class WeakPassword(BadRequest):
    code = "weak_password"


class EmailTaken(Conflict):
    code = "email_taken"

    def __init__(self) -> None:
        super().__init__("An account with this e-mail address already exists.")


class NameTaken(Conflict):
    code = "name_taken"


class UserNotFound(NotFound):
    code = "user_not_found"

    def __init__(self) -> None:
        super().__init__("No such user.")


class CredentialNotFound(NotFound):
    code = "credential_not_found"

    def __init__(self, what: str = "credential") -> None:
        super().__init__(f"No such {what}.")


class TwoFactorState(Conflict):
    code = "two_factor_state"


class InvalidScope(AppError):
    status, code = 400, "invalid_scope"


class LastAdmin(Conflict):
    code = "last_admin"

    def __init__(self) -> None:
        super().__init__("This is the last active admin; make someone else admin first.")
