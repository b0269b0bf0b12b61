"""Egg import (apps/panel/eggs.py): the published export shapes (Pterodactyl PTDL_v1 and PTDL_v2, Pelican
PLCN_v3) become templates with their variables and rules; what cannot be taken over is a warning; a
malformed egg is refused with the JSON pointers of what is wrong; the shipped templates parse."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from pentad.apps.panel.actions.templates import builtin_eggs
from pentad.apps.panel.eggs import parse_egg
from pentad.apps.panel.exceptions import InvalidEgg

DATA = Path(__file__).parent / "data" / "eggs"


def python_generic() -> dict[str, Any]:
    egg: dict[str, Any] = json.loads((DATA / "egg-python-generic.json").read_text())
    return egg


PTDL_V1: dict[str, Any] = {
    "_comment": "DO NOT EDIT: FILE GENERATED AUTOMATICALLY BY PTERODACTYL PANEL - PTERODACTYL.IO",
    "meta": {"version": "PTDL_v1", "update_url": None},
    "exported_at": "2021-03-01T00:00:00+00:00",
    "name": "Bash loop",
    "author": "someone@example.com",
    "description": None,
    "features": ["eula"],
    "images": ["ghcr.io/pterodactyl/yolks:debian"],
    "file_denylist": [],
    "startup": "bash -c 'echo started; while read l; do echo $l; done'",
    "config": {
        "files": '{"server.properties": {"parser": "properties", '
        '"find": {"server-port": "{{server.build.default.port}}"}}}',
        "startup": '{"done": "started", "userInteraction": []}',
        "logs": '{"custom": false, "location": "logs/latest.log"}',
        "stop": "stop",
    },
    "scripts": {
        "installation": {
            "script": "#!/bin/ash\necho hi",
            "container": "openjdk:8-jdk-slim",
            "entrypoint": "ash",
        }
    },
    "variables": [
        {
            "name": "Level",
            "description": "",
            "env_variable": "LEVEL",
            "default_value": 3,
            "user_viewable": 1,
            "user_editable": 0,
            "rules": "required|integer|between:1,10",
        }
    ],
}

PLCN_V3: dict[str, Any] = {
    "_comment": "DO NOT EDIT: FILE GENERATED AUTOMATICALLY BY PANEL",
    "meta": {"version": "PLCN_v3", "update_url": None},
    "exported_at": "2026-03-03T22:03:41+00:00",
    "name": "Passage Router",
    "author": "someone@example.com",
    "uuid": "3a6f6cf3-f44f-450d-8b00-d1104130f1fb",
    "description": "A router",
    "image": None,
    "tags": ["minecraft"],
    "features": [],
    "docker_images": {"Rust": "ghcr.io/parkervcp/yolks:rust_latest"},
    "file_denylist": ["*.jar"],
    "startup_commands": {
        "Default": "./passage --port {{server.allocations.default.port}}", "Debug": "./passage -v",
    },
    "config": {
        "files": {"config/config.yml": {"parser": "yaml", "find": {"port": "{{server.build.default.port}}"}}},
        "startup": {"done": ["Listening", "Ready"]},
        "logs": {},
        "stop": "^C",
    },
    "scripts": {"installation": {
        "script": "#!/bin/bash\necho ok", "container": "ghcr.io/pelican-eggs/installers:debian",
        "entrypoint": "bash",
    }},
    "variables": [
        {
            "name": "Mode",
            "description": "How it runs",
            "env_variable": "MODE",
            "default_value": "fast",
            "user_viewable": True,
            "user_editable": True,
            "rules": ["required", "string", "in:fast,safe", "starts_with:f"],
            "sort": 2,
        },
        {
            "name": "Debug",
            "description": "",
            "env_variable": "DEBUG",
            "default_value": False,
            "user_viewable": True,
            "user_editable": True,
            "rules": ["required", "boolean"],
            "sort": 1,
        },
    ],
}  # fmt: skip


def test_a_published_ptdl_v2_egg_imports_with_its_variables_and_a_docker_warning() -> None:
    egg = parse_egg(python_generic())
    assert egg.egg_format == "PTDL_v2"
    assert egg.slug == "python-generic"
    assert egg.name == "python generic"
    assert egg.startup.startswith("if [[ -d .git ]]")
    assert egg.stop == "^^C"
    assert egg.done == ["change this part"]
    assert egg.config_files == {}
    assert egg.install_entrypoint == "bash"
    assert "\r" not in egg.install_script
    assert [v.env_name for v in egg.variables] == [
        "GIT_ADDRESS", "BRANCH", "USER_UPLOAD", "AUTO_UPDATE", "PY_FILE", "PY_PACKAGES", "REQUIREMENTS_FILE",
    ]  # fmt: skip
    upload = egg.variables[2]
    assert (upload.default_value, upload.rules, upload.user_editable) == ("0", "required|boolean", True)
    assert len(egg.warnings) == 1
    assert "ghcr.io/parkervcp/yolks:python_3.12" in egg.warnings[0]
    assert "python:3.11-slim-bookworm" not in " ".join(egg.warnings)  # a Debian image: generic


def test_a_ptdl_v1_egg_with_json_string_config_and_integer_flags() -> None:
    egg = parse_egg(PTDL_V1)
    assert egg.egg_format == "PTDL_v1"
    assert egg.done == ["started"]
    assert egg.stop == "stop"
    assert egg.config_files["server.properties"]["parser"] == "properties"
    assert egg.docker_images == {"ghcr.io/pterodactyl/yolks:debian": "ghcr.io/pterodactyl/yolks:debian"}
    (warning,) = egg.warnings
    assert warning.startswith("the install script expects the image 'openjdk:8-jdk-slim'")
    (level,) = egg.variables
    assert (level.default_value, level.user_viewable, level.user_editable) == ("3", True, False)
    assert egg.features == ["eula"]


def test_a_pelican_plcn_v3_egg_with_startup_commands_rule_lists_and_object_config() -> None:
    egg = parse_egg(PLCN_V3)
    assert egg.egg_format == "PLCN_v3"
    assert egg.egg_uuid == "3a6f6cf3-f44f-450d-8b00-d1104130f1fb"
    assert egg.startup == "./passage --port {{server.allocations.default.port}}"
    assert egg.done == ["Listening", "Ready"]
    assert egg.file_denylist == ["*.jar"]
    assert egg.config_files["config/config.yml"]["parser"] == "yaml"
    mode, debug = egg.variables
    assert mode.rules == "required|string|in:fast,safe"
    assert debug.default_value == "false"
    assert (mode.sort, debug.sort) == (2, 1)
    assert any("2 startup commands" in warning for warning in egg.warnings)
    assert any("starts_with:f" in warning and "not supported" in warning for warning in egg.warnings)
    assert any("rust_latest" in warning for warning in egg.warnings)


def test_a_rule_python_cannot_compile_is_dropped_with_a_warning() -> None:
    egg = copy.deepcopy(PTDL_V1)
    egg["variables"][0]["rules"] = "required|regex:/^(?<name>a)$/"
    parsed = parse_egg(egg)
    assert parsed.variables[0].rules == "required"
    assert any("LEVEL: rule 'regex:/^(?<name>a)$/' ignored" in warning for warning in parsed.warnings)


def _errors(document: Any) -> list[dict[str, Any]]:
    with pytest.raises(InvalidEgg) as caught:
        parse_egg(document)
    assert caught.value.status == 422
    errors: list[dict[str, Any]] = caught.value.extra["errors"]
    return errors


def _break(path: list[str | int], value: Any, remove: bool = False) -> dict[str, Any]:  # noqa: FBT002
    egg = python_generic()
    target: Any = egg
    for part in path[:-1]:
        target = target[part]
    if remove:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return egg


@pytest.mark.parametrize(
    ("document", "pointer"),
    [
        (["not", "an", "object"], "/"),
        (_break(["meta"], None, remove=True), "/meta"),
        (_break(["meta", "version"], "PTDL_v9"), "/meta/version"),
        (_break(["name"], ""), "/name"),
        (_break(["startup"], "   "), "/startup"),
        (_break(["config", "startup"], "{not json"), "/config/startup"),
        (_break(["config", "files"], "[1, 2]"), "/config/files"),
        (_break(["config", "startup"], '{"done": 5}'), "/config/startup/done"),
        (_break(["variables", 2, "env_variable"], "BAD NAME"), "/variables/2/env_variable"),
        (_break(["variables", 3, "env_variable"], "USER_UPLOAD"), "/variables/3/env_variable"),
        (_break(["variables", 0, "name"], None, remove=True), "/variables/0/name"),
        (_break(["variables"], "nope"), "/variables"),
    ],
)
def test_a_malformed_egg_is_refused_with_the_pointer_of_the_problem(document: Any, pointer: str) -> None:
    errors = _errors(document)
    assert any(error["msg"].startswith(f"{pointer}:") for error in errors), errors
    assert all(error["loc"][:2] == ["body", "egg"] for error in errors)


def test_the_shipped_templates_parse_without_warnings() -> None:
    eggs = {egg.slug: egg for egg in builtin_eggs()}
    assert sorted(eggs) == ["generic", "minetest", "teeworlds"]
    assert all(egg.warnings == [] for egg in eggs.values())
    assert eggs["teeworlds"].console_input == "econ"
    assert eggs["teeworlds"].startup.startswith("/usr/games/teeworlds-server")
    assert eggs["minetest"].startup.startswith("/usr/games/minetestserver")
    assert eggs["generic"].startup == "{{STARTUP_COMMAND}}"
