"""The installed apps: name -> module whose `APP` attribute is its AppSpec."""

from __future__ import annotations

import importlib

from pentad.core.apps import AppSpec
from pentad.core.config import Settings, SettingsError

INSTALLED: dict[str, str] = {"chat": "pentad.apps.chat"}


def enabled_apps(settings: Settings) -> list[AppSpec]:
    """The AppSpecs named by PENTAD_APPS (`*` = every installed app)."""
    names = list(INSTALLED) if "*" in settings.apps else settings.apps
    unknown = [name for name in names if name not in INSTALLED]
    if unknown:
        installed = ", ".join(INSTALLED) or "none"
        raise SettingsError(
            f"invalid setting PENTAD_APPS: unknown app {unknown[0]!r} (installed: {installed})"
        )
    specs = []
    for name in names:
        spec = importlib.import_module(INSTALLED[name]).APP
        assert isinstance(spec, AppSpec)
        specs.append(spec)
    return specs
