"""The market app's errors a client can act on (problem+json with a stable `code`)."""

from __future__ import annotations

from typing import Any

from pentad.core.errors import AppError, BadRequest, Conflict, NotFound, ServiceUnavailable


class UnknownType(AppError):
    """No item type with that id in the imported static data."""

    status, code = 404, "unknown_type"


class SdeMissing(AppError):
    """No static data has been imported yet (`pentad market sde import`)."""

    status, code = 409, "sde_missing"


class CharacterNotFound(NotFound):
    code = "character_not_found"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("No such character among yours.", **kwargs)


class SsoNotConfigured(Conflict):
    code = "sso_not_configured"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            "Linking EVE characters is not set up here: an admin must set PENTAD_MARKET__ESI_CLIENT_ID.",
            **kwargs,
        )


class SsoStateInvalid(BadRequest):
    code = "sso_state_invalid"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            "This sign-in link is unknown, used, expired or was started by another session; start again.",
            **kwargs,
        )


class SsoDenied(BadRequest):
    code = "sso_denied"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("EVE SSO did not give access (the request was declined); start again.", **kwargs)


class SsoCodeRefused(BadRequest):
    code = "sso_code_refused"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("EVE SSO refused the sign-in code (expired or used); start again.", **kwargs)


class SsoUnavailable(ServiceUnavailable):
    code = "sso_unavailable"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("EVE SSO cannot be reached right now; try again in a few minutes.", **kwargs)


class SsoFailed(AppError):
    """The SSO answered something we cannot accept: a token that fails verification, or a refusal of our
    own client credentials (a configuration problem for the admins)."""

    status, code = 502, "sso_failed"

    def __init__(self, reason: str, **kwargs: Any) -> None:
        super().__init__(f"EVE SSO's answer could not be accepted ({reason}).", **kwargs)


# --- a trader's own data (character sync, orders, P&L, alerts) ---------------------------------------


class CharacterNeedsReauth(Conflict):
    code = "character_needs_reauth"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("EVE SSO no longer accepts this character's link: link it again first.", **kwargs)


class UnknownStation(NotFound):
    code = "unknown_station"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("No such station in the static data.", **kwargs)


class AlertRuleNotFound(NotFound):
    code = "alert_rule_not_found"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("No such alert rule among yours.", **kwargs)


class BadAlertRule(BadRequest):
    code = "bad_alert_rule"


class UnknownHub(NotFound):
    code = "unknown_hub"

    def __init__(self, key: str, **kwargs: Any) -> None:
        super().__init__(f"No trade hub {key!r} is configured here (see /api/market/hubs).", **kwargs)


class NoMarketData(AppError):
    """The hub's region has no stored order book yet (the first ingest has not run)."""

    status, code = 409, "no_market_data"

    def __init__(self, key: str, **kwargs: Any) -> None:
        super().__init__(f"No order book of hub {key!r} is stored yet; try again in a few minutes.", **kwargs)


class ConversationNotFound(NotFound):
    code = "conversation_not_found"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("No such advisor conversation among yours.", **kwargs)


class AiBudgetExhausted(AppError):
    """The user spent the day's AI tokens on every key the advisor could use."""

    status, code = 429, "ai_budget_exhausted"

    def __init__(self, resets_at: str, **kwargs: Any) -> None:
        super().__init__(f"You have used today's AI advisor budget; it renews at {resets_at} UTC.", **kwargs)


class AiKeyInvalid(BadRequest):
    code = "ai_key_invalid"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("That does not look like an API key of this provider.", **kwargs)


class AiKeyNotFound(NotFound):
    code = "ai_key_not_found"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("You have no key stored for that provider.", **kwargs)
