"""Egg config-file rewriting: every parser, placeholders, wildcards, and malformed eggs refused clearly."""

from __future__ import annotations

import json

import pytest
import yaml

from pentad.panel_wire.configfiles import ConfigFile, ConfigFileError, from_egg, render, resolve

VALUES = {"server.build.default.port": "25565", "SERVER_PORT": "25565", "MOTD": "Hello", "MAX": "20"}


def test_placeholders_resolve_and_unknown_ones_stay() -> None:
    assert resolve("{{server.build.default.port}}", VALUES) == "25565"
    assert resolve("{{ env.MOTD }} / {{server.build.env.MAX}}", VALUES) == "Hello / 20"
    assert resolve("{{unknown.thing}}", VALUES) == "{{unknown.thing}}"


def test_properties_set_existing_keys_and_add_missing_ones() -> None:
    file = ConfigFile(
        path="server.properties",
        parser="properties",
        find={"server-port": "{{server.build.default.port}}", "motd": "{{env.MOTD}}", "query.port": "1"},
    )
    text = "# comment\nserver-port=1\nmotd = old\nonline-mode=true\n"
    assert render(file, text, VALUES) == (
        "# comment\nserver-port=25565\nmotd=Hello\nonline-mode=true\nquery.port=1\n"
    )


def test_ini_sections() -> None:
    file = ConfigFile(path="a.ini", parser="ini", find={"server.port": "{{SERVER_PORT}}", "new.key": "v"})
    out = render(file, "[server]\nport = 1\nname = x\n", VALUES)
    assert "[server]\nport = 25565\nname = x\n" in out
    assert "[new]\nkey = v\n" in out
    with pytest.raises(ConfigFileError):
        render(ConfigFile(path="a.ini", parser="ini", find={"nosection": "1"}), "", VALUES)


def test_json_paths_wildcards_and_types() -> None:
    file = ConfigFile(
        path="config.json",
        parser="json",
        find={
            "listeners.*.port": "{{SERVER_PORT}}",
            "server.max": "{{MAX}}",
            "server.pvp": "false",
            "new.a": "x",
        },
    )
    text = json.dumps({"listeners": [{"port": 1}, {"port": 2}], "server": {"max": 5, "pvp": True}})
    data = json.loads(render(file, text, VALUES))
    assert data["listeners"] == [{"port": 25565}, {"port": 25565}]  # numbers stay numbers
    assert data["server"] == {"max": 20, "pvp": False}
    assert data["new"] == {"a": "x"}
    with pytest.raises(ConfigFileError):
        render(file, "{not json", VALUES)


def test_yaml_and_file_parsers() -> None:
    file = ConfigFile(path="c.yml", parser="yaml", find={"server.port": "{{SERVER_PORT}}"})
    assert yaml.safe_load(render(file, "server:\n  port: 1\n  name: x\n", VALUES)) == {
        "server": {"port": 25565, "name": "x"}
    }
    lines = ConfigFile(path="s.cfg", parser="file", find={"sv_port": "sv_port {{SERVER_PORT}}"})
    assert render(lines, "sv_name a\nsv_port 8303\n", VALUES) == "sv_name a\nsv_port 25565\n"
    with pytest.raises(ConfigFileError):
        render(file, "a: [unclosed", VALUES)


def test_egg_config_files_in_both_export_shapes() -> None:
    egg_v1 = json.dumps(
        {
            "server.properties": {
                "parser": "properties",
                "find": {"server-port": "{{server.build.default.port}}"},
            }
        }
    )
    egg_v2 = {"config.yml": {"parser": "yaml", "find": {"listeners[0].host": "0.0.0.0:25565"}}}
    assert from_egg(egg_v1)[0].parser == "properties"
    assert from_egg(egg_v2)[0].path == "config.yml"
    assert from_egg("") == []
    assert from_egg(None) == []


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ("{broken", "not JSON"),
        ({"a": {"parser": "toml", "find": {}}}, "unknown parser 'toml'"),
        ({"a": "properties"}, "must be an object"),
        ({"a": {"parser": "json", "find": ["x"]}}, "find must be an object"),
        ({"a": {"parser": "json", "find": {"k": {"nested": 1}}}}, "value must be"),
        ([1, 2], "must be an object"),
    ],
)
def test_malformed_egg_config_is_refused_with_the_reason(files: object, message: str) -> None:
    with pytest.raises(ConfigFileError, match=message):
        from_egg(files)  # type: ignore[arg-type]


async def test_the_runtime_never_rewrites_through_a_symlink(opened: object) -> None:
    """A game that planted a symlink named like its config file cannot make the agent write outside."""
    from pentad.agent.runtime import Runtime
    from pentad.panel_wire.serverspec import ServerSpec
    from tests.agent.conftest import Events

    runtime, events = opened  # type: ignore[misc]
    assert isinstance(runtime, Runtime)
    assert isinstance(events, Events)
    victim = runtime.settings.data_dir / "victim.txt"
    victim.write_text("untouched\n")
    spec = ServerSpec(
        server_id="planted",
        startup="echo up; cat",
        config_files=[ConfigFile(path="server.cfg", parser="file", find={"port": "port 1"})],
    )
    await runtime.configure(spec)
    (runtime.settings.servers_dir / "planted" / "server.cfg").symlink_to(victim)
    await runtime.start(spec)
    await events.wait_line("planted", "up")
    assert victim.read_text() == "untouched\n"
    assert any("config file server.cfg" in line and "refused" in line for line in events.lines("planted"))
