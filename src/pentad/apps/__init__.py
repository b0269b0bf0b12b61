"""The installed apps, as the entry points know them before loading any.

Loading an app's AppSpec imports its routers, models and everything they need, which takes seconds; the
command line only needs its settings model (`pentad config show`, the unknown-variable warning) and its
click group (`pentad <app> …`, listed in `pentad --help` by its one-line help). So each installed app is
named here by dotted paths, loaded on demand: `spec` to its AppSpec, `settings` to its settings model (a
light module: the app package's `__init__` imports nothing), `cli` to its click group.
tests/apps/test_installed.py checks that the paths agree with the AppSpec.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import click
    from pydantic import BaseModel

    from pentad.core.apps import AppSpec
    from pentad.core.config import Settings


def _load(target: str) -> Any:
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class InstalledApp:
    """spec, settings, cli: `module:attribute` of the AppSpec, its settings model and its click group;
    cli_help: the group's one-line help, shown by `pentad --help` without loading it."""

    spec: str
    settings: str | None = None
    cli: str | None = None
    cli_help: str = ""

    def load_spec(self) -> AppSpec:
        from pentad.core.apps import AppSpec  # the core loads with the app, not before

        spec = _load(self.spec)
        assert isinstance(spec, AppSpec)
        return spec

    def load_settings(self) -> type[BaseModel] | None:
        model: type[BaseModel] | None = _load(self.settings) if self.settings else None
        return model

    def load_cli(self) -> click.Group | None:
        group: click.Group | None = _load(self.cli) if self.cli else None
        return group


INSTALLED: dict[str, InstalledApp] = {
    "chat": InstalledApp(
        spec="pentad.apps.chat.spec:APP",
        settings="pentad.apps.chat.settings:ChatSettings",
        cli="pentad.apps.chat.cli:chat",
        cli_help="Chat tenants, server keys and the search index.",
    ),
    "ads": InstalledApp(
        spec="pentad.apps.ads.spec:APP",
        settings="pentad.apps.ads.settings:AdsSettings",
        cli="pentad.apps.ads.cli:ads",
        cli_help="Ads advertisers and sites.",
    ),
    "analytics": InstalledApp(
        spec="pentad.apps.analytics.spec:APP",
        settings="pentad.apps.analytics.settings:AnalyticsSettings",
        cli="pentad.apps.analytics.cli:analytics",
        cli_help="Analytics sites and who may see them.",
    ),
    "streams": InstalledApp(
        spec="pentad.apps.streams.spec:APP",
        settings="pentad.apps.streams.settings:StreamsSettings",
        cli="pentad.apps.streams.cli:streams",
        cli_help="Streams cameras and their stream keys.",
    ),
    "market": InstalledApp(
        spec="pentad.apps.market.spec:APP",
        settings="pentad.apps.market.settings:MarketSettings",
        cli="pentad.apps.market.cli:market",
        cli_help="Market static data (EVE SDE) and trade hubs.",
    ),
    "panel": InstalledApp(
        spec="pentad.apps.panel.spec:APP",
        settings="pentad.apps.panel.settings:PanelSettings",
        cli="pentad.apps.panel.cli:panel",
        cli_help="Panel nodes, enrolment tokens, templates and plugins.",
    ),
}


def enabled_names(settings: Settings) -> list[str]:
    """The app names PENTAD_APPS gives (`*` = every installed app); SettingsError for an unknown one."""
    from pentad.core.config import SettingsError

    names = list(INSTALLED) if "*" in settings.apps else list(settings.apps)
    unknown = [name for name in names if name not in INSTALLED]
    if unknown:
        installed = ", ".join(INSTALLED) or "none"
        raise SettingsError(
            f"invalid setting PENTAD_APPS: unknown app {unknown[0]!r} (installed: {installed})"
        )
    return names


def enabled_apps(settings: Settings) -> list[AppSpec]:
    """The AppSpecs named by PENTAD_APPS."""
    return [INSTALLED[name].load_spec() for name in enabled_names(settings)]
