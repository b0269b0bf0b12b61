"""Plugin rows, folders and settings: what the host, the actions and the CLI share."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.panel.models import PanelPlugin, PanelTrustedPublisher
from pentad.apps.panel.settings import PanelSettings
from pentad.core.context import AppContext
from pentad.core.crypto import column_context


def plugins_root(settings: PanelSettings, platform: AppContext) -> Path:
    """Where packages are unpacked: PENTAD_PANEL__PLUGINS_DIR, or `<data dir>/panel/plugins`."""
    return Path(settings.plugins_dir) if settings.plugins_dir else platform.data_dir / "panel" / "plugins"


def plugin_directory(settings: PanelSettings, platform: AppContext, plugin_id: str) -> Path:
    return plugins_root(settings, platform) / plugin_id


async def get_plugin(session: AsyncSession, plugin_id: str) -> PanelPlugin | None:
    return await session.scalar(select(PanelPlugin).where(PanelPlugin.plugin_id == plugin_id))


async def list_plugins(session: AsyncSession) -> list[PanelPlugin]:
    return list((await session.scalars(select(PanelPlugin).order_by(PanelPlugin.plugin_id))).all())


async def trusted_publishers(session: AsyncSession) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for row in (await session.scalars(select(PanelTrustedPublisher))).all():
        found.setdefault(row.publisher, []).append(row.public_key)
    return found


def _settings_context(plugin: PanelPlugin) -> str:
    return column_context("panel_plugins", "settings_enc", plugin.id)


def plugin_settings(platform: AppContext, plugin: PanelPlugin) -> dict[str, Any]:
    if not plugin.settings_enc:
        return {}
    value = json.loads(platform.keyring.decrypt(plugin.settings_enc, context=_settings_context(plugin)))
    return value if isinstance(value, dict) else {}


def set_plugin_settings(platform: AppContext, plugin: PanelPlugin, settings: dict[str, Any]) -> None:
    plugin.settings_enc = platform.keyring.encrypt(json.dumps(settings), context=_settings_context(plugin))
