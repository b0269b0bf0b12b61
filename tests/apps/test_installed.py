"""pentad.apps.INSTALLED: the light paths the command line uses name the same objects as the AppSpec."""

from __future__ import annotations

import click
import pytest

from pentad.apps import INSTALLED, InstalledApp


@pytest.mark.parametrize("name", sorted(INSTALLED))
def test_the_installed_paths_agree_with_the_apps_spec(name: str) -> None:
    app = INSTALLED[name]
    spec = app.load_spec()
    assert spec.name == name
    assert app.load_settings() is spec.settings
    group = app.load_cli()
    assert isinstance(group, click.Group)
    assert app.cli_help == (group.help or "").splitlines()[0]


def test_an_app_without_settings_or_commands_loads_none() -> None:
    bare = InstalledApp("pentad.apps.chat.spec:APP")
    assert bare.load_settings() is None
    assert bare.load_cli() is None
