"""What users rely on in the README is true: every setting (the core's and each installed app's, read from the
models themselves) is in a settings table with its variable name and its default, an app's in the app's own
section; no table or text names a variable that is no setting; every `make` target and every `pentad`
command and option it names exists."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import click
import pytest
from pydantic import BaseModel, SecretStr

from pentad.agent.settings import AgentSettings
from pentad.apps import INSTALLED
from pentad.cli import main
from pentad.core.apps import AppSpec
from pentad.core.config import ENV_PREFIX, NESTED_DELIMITER, TEST_HARNESS_PREFIX, Settings, setting_names

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
MAKEFILE = (ROOT / "Makefile").read_text()
APPS: list[AppSpec] = [app.load_spec() for app in INSTALLED.values()]

SETTING_ROW = re.compile(r"^\| `(PENTAD_[A-Z0-9_]+)` \| (.+?) \| .+ \|$")
FENCED_BLOCK = re.compile(r"^```.*?^```$", re.MULTILINE | re.DOTALL)


def _sections() -> dict[str, str]:
    """README text by `## ` heading (the text before the first heading under "")."""
    sections: dict[str, str] = {}
    title = ""
    for line in README.splitlines():
        if line.startswith("## "):
            title = line[3:].strip()
        sections[title] = sections.get(title, "") + line + "\n"
    return sections


def _rows(text: str) -> dict[str, str]:
    """Settings-table rows in `text`: variable name -> default cell."""
    return {
        match.group(1): match.group(2) for line in text.splitlines() if (match := SETTING_ROW.match(line))
    }


def _shown(value: Any) -> str:
    """A default as the README writes it."""
    if value is None:
        return "`unset`"
    if isinstance(value, SecretStr):
        return _shown(value.get_secret_value() or None)
    if isinstance(value, list):
        return f"`{','.join(map(str, value))}`" if value else "`empty`"
    return f"`{value}`"


def _values(model: BaseModel, prefix: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        variable = prefix + name.upper()
        if isinstance(value, BaseModel):
            values |= _values(value, variable + NESTED_DELIMITER)
        else:
            values[variable] = value
    return values


def _app_defaults(model: type[BaseModel], prefix: str) -> dict[str, str]:
    defaults: dict[str, str] = {}
    for name, field in model.model_fields.items():
        variable = prefix + name.upper()
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            defaults |= _app_defaults(annotation, variable + NESTED_DELIMITER)
        else:
            defaults[variable] = (
                "required" if field.is_required() else _shown(field.get_default(call_default_factory=True))
            )
    return defaults


@pytest.fixture
def core_defaults(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Each core setting's default in effect when nothing is set (the SQLite file in the default data dir)."""
    for name in [name for name in os.environ if name.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(name)
    return {name: _shown(value) for name, value in _values(Settings(_env_file=None), ENV_PREFIX).items()}


def _app_prefix(spec: AppSpec) -> str:
    return f"{ENV_PREFIX}{spec.name.upper()}{NESTED_DELIMITER}"


def test_every_core_setting_is_documented_with_its_default(core_defaults: dict[str, str]) -> None:
    documented = _rows(README)
    assert {name: documented.get(name) for name in core_defaults} == core_defaults


@pytest.mark.parametrize("spec", [spec for spec in APPS if spec.settings], ids=lambda spec: spec.name)
def test_every_app_setting_is_documented_in_the_apps_section_with_its_default(spec: AppSpec) -> None:
    assert spec.settings is not None
    section = _sections().get(spec.title)
    assert section is not None, f"README has no section `## {spec.title}`"
    expected = _app_defaults(spec.settings, _app_prefix(spec))
    documented = _rows(section)
    assert {name: documented.get(name) for name in expected} == expected


def test_every_variable_the_readme_names_is_a_setting() -> None:
    known = set(setting_names(Settings)) | set(setting_names(AgentSettings, "PENTAD_AGENT__"))
    for spec in APPS:
        known |= set(setting_names(spec.settings, _app_prefix(spec)) if spec.settings else [])
    tabled = [name for title, text in _sections().items() for name in _rows(text)]
    assert [name for name in tabled if name not in known] == []
    assert len(tabled) == len(set(tabled)), "a setting has two rows"
    prose = FENCED_BLOCK.sub("", README)
    named = set(re.findall(r"`(PENTAD_[A-Z0-9_]*[A-Z0-9])[`=]", prose))
    assert sorted(name for name in named - known if not name.startswith(TEST_HARNESS_PREFIX)) == []


def test_every_make_target_the_readme_names_exists() -> None:
    targets = set(re.findall(r"^([a-zA-Z_-]+):", MAKEFILE, re.MULTILINE))
    named = set(re.findall(r"`make ([\w-]+)`", README)) | set(
        re.findall(r"^make ([\w-]+)", README, re.MULTILINE)
    )
    assert named >= {"run", "test", "lint"}
    assert sorted(named - targets) == []


def _resolve(words: list[str]) -> click.Command:
    """The `pentad` command `words` name; AssertionError for a command or an option that does not exist."""
    command: click.Command = main
    arguments = iter(words)
    for word in arguments:
        found = (
            command.get_command(click.Context(command), word) if isinstance(command, click.Group) else None
        )
        if found is not None:
            command = found
            continue
        if isinstance(command, click.Group):
            assert not re.fullmatch(r"[a-z][a-z-]*", word), (
                f"no command `{word}` in `pentad {' '.join(words)}`"
            )
        break
    options = {"--help", "-h"} | {option for param in command.params for option in param.opts}
    for option in re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", " ".join(words)):
        assert option in options, f"no option {option} in `pentad {' '.join(words)}`"
    return command


def test_every_pentad_command_and_option_the_readme_names_exists() -> None:
    block = _sections()["Command line"]
    usage_lines = [line for line in block.splitlines() if line.startswith("pentad ")]
    assert len(usage_lines) > 10
    checked = 0
    for line in usage_lines:
        usage = re.split(r"\s{2,}", line)[0]  # drop the description column
        first, *alternatives = usage.removeprefix("pentad ").split(" | ")
        words = first.split()
        command = _resolve(words)
        parent = words[: words.index(command.name) if command.name in words else len(words)]
        for alternative in alternatives:
            _resolve(parent + alternative.split())
        checked += 1 + len(alternatives)
    for mention in re.findall(r"`pentad ([^`]+)`", README):
        _resolve(mention.split())
        checked += 1
    assert checked > 20
