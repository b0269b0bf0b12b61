"""The process's ESI client (`AppSpec.resources`): one pooled connection and one governor per process, so
every job and request of the process spends from the same budgets; blocks (429, 420) reach the other
processes through the platform cache."""

from __future__ import annotations

from datetime import date

from pentad.apps.market.esi.client import EsiClient, EsiConfig
from pentad.apps.market.esi.governor import Governor
from pentad.apps.market.settings import MarketSettings
from pentad.core.context import AppContext, ResourceSpec


class EsiNotConfigured(RuntimeError):
    """PENTAD_MARKET__CONTACT is unset: ESI is never called without a contact in the User-Agent."""


def esi_config(settings: MarketSettings) -> EsiConfig:
    if settings.contact is None:
        raise EsiNotConfigured("set PENTAD_MARKET__CONTACT (an e-mail or URL for ESI's User-Agent) first")
    return EsiConfig(
        base_url=settings.esi_base_url,
        contact=settings.contact,
        compatibility_date=date.fromisoformat(settings.compatibility_date),
        timeout=settings.esi_timeout,
        max_retries=settings.esi_max_retries,
        page_concurrency=settings.esi_page_concurrency,
        expiry_margin=float(settings.esi_expiry_margin),
        inconsistent_restarts=settings.esi_inconsistent_restarts,
    )


def build_client(context: AppContext) -> EsiClient:
    settings = context.app_settings(MarketSettings)
    governor = Governor(
        reserve_fraction=settings.esi_reserve_fraction,
        ingest_floor=min(0.05, settings.esi_reserve_fraction),
        error_floor=settings.esi_error_floor,
        shared=context.cache,
    )
    return EsiClient(esi_config(settings), governor)


async def _open(context: AppContext) -> EsiClient | None:
    try:
        return build_client(context)
    except EsiNotConfigured:
        return None


async def _close(client: EsiClient | None) -> None:
    if client is not None:
        await client.aclose()


ESI_CLIENT: ResourceSpec[EsiClient | None] = ResourceSpec("market.esi", _open, _close)
"""None while PENTAD_MARKET__CONTACT is unset (the ingest jobs then wait, saying why)."""
