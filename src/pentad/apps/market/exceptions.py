"""The market app's errors a client can act on (problem+json with a stable `code`). Later parts add theirs
here (CharacterNotFound, ReauthRequired, NoMarketData, BudgetExhausted, …; plan §2)."""

from __future__ import annotations

from pentad.core.errors import AppError


class UnknownType(AppError):
    """No item type with that id in the imported static data."""

    status, code = 404, "unknown_type"


class SdeMissing(AppError):
    """No static data has been imported yet (`pentad market sde import`)."""

    status, code = 409, "sde_missing"
