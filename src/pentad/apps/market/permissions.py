"""The market app's named permissions and the per-character roles that grant them (docs/plans/market.md §3).

`market.use` covers the product (scans, hauling, one's own characters, alerts); `market.advisor` spends AI
tokens, so admins may withhold it; `market.admin` runs the data side (hubs, SDE import, ingest runs,
budgets). A linked EVE character is a resource (`market.character`): its owner holds `owner`, and may let
another user (a corp mate) read its orders and P&L with `viewer`."""

from __future__ import annotations

from pentad.core.auth.permissions import Permission

MARKET_USE = Permission(
    "market.use", "Use the market tools: scans, hauling, your own characters, orders, P&L and alerts."
)
MARKET_ADVISOR = Permission("market.advisor", "Ask the AI trading advisor (spends AI tokens).")
MARKET_ADMIN = Permission(
    "market.admin", "Run the market data: hubs, static data imports, ingest runs, AI budgets."
)

CHARACTER_VIEW = Permission("market.character.view", "See a linked character's orders, wallet and P&L.")
CHARACTER_MANAGE = Permission(
    "market.character.manage",
    "Manage a linked character: sync it, unlink it, decide who may see it, ask the advisor about it.",
)

CHARACTER_RESOURCE = "market.character"

CHARACTER_ROLES = {
    "viewer": (CHARACTER_VIEW,),
    "owner": (CHARACTER_VIEW, CHARACTER_MANAGE),
}

ALL = (MARKET_USE, MARKET_ADVISOR, MARKET_ADMIN, CHARACTER_VIEW, CHARACTER_MANAGE)
