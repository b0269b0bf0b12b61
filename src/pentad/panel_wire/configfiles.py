"""Egg config-file rewriting (Pterodactyl/Pelican `config.files`): before each start the agent sets keys
in the game's own config files. Parsers: `properties`, `ini` (`section.key`), `json` and `yaml` (dotted
paths, `*` matches every key or list item), and `file` (every line starting with the key becomes the
value). Values may hold placeholders (`{{server.build.default.port}}`, `{{env.NAME}}`,
`{{server.build.env.NAME}}`), resolved from a mapping. Pure functions: text in, text out; the agent reads
and writes through its confined paths."""

from __future__ import annotations

import configparser
import io
import json
import re
from collections.abc import Mapping
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

Parser = Literal["file", "properties", "ini", "json", "yaml"]
PARSERS: tuple[str, ...] = ("file", "properties", "ini", "json", "yaml")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}")


class ConfigFileError(ValueError):
    """A config file that cannot be parsed as its parser says, or a find entry that cannot apply."""


class ConfigFile(BaseModel):
    """One file to rewrite: its path relative to the server folder, its parser, and key -> value."""

    model_config = ConfigDict(frozen=True)

    path: str = Field(min_length=1, max_length=4096)
    parser: Parser
    find: dict[str, Any] = Field(default_factory=dict)

    @field_validator("find")
    @classmethod
    def _check_find(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, item in value.items():
            if not key:
                raise ValueError("empty key")
            if not isinstance(item, (str, int, float, bool)) or item is None:
                raise ValueError(f"{key}: value must be a string, number or boolean")
        return value


def from_egg(files: str | Mapping[str, Any] | None) -> list[ConfigFile]:
    """An egg's `config.files` (a JSON string in PTDL_v1 exports, an object in v2) as ConfigFiles. Raises
    ConfigFileError for an unknown parser or a malformed entry, naming the file."""
    if files is None or files == "":
        return []
    if isinstance(files, str):
        try:
            files = json.loads(files)
        except json.JSONDecodeError as exc:
            raise ConfigFileError(f"config.files is not JSON: {exc.msg}") from None
    if not isinstance(files, Mapping):
        raise ConfigFileError("config.files must be an object of path -> {parser, find}")
    result = []
    for path, entry in files.items():
        if not isinstance(entry, Mapping):
            raise ConfigFileError(f"{path}: must be an object with parser and find")
        parser = entry.get("parser")
        if parser not in PARSERS:
            raise ConfigFileError(f"{path}: unknown parser {parser!r} (known: {', '.join(PARSERS)})")
        find = entry.get("find") or {}
        if not isinstance(find, Mapping):
            raise ConfigFileError(f"{path}: find must be an object")
        try:
            result.append(ConfigFile(path=str(path), parser=parser, find=dict(find)))
        except ValueError as exc:
            raise ConfigFileError(f"{path}: {exc}") from None
    return result


def resolve(value: Any, values: Mapping[str, str]) -> Any:
    """`value` with its placeholders replaced; `{{env.X}}` and `{{server.build.env.X}}` read `X`. An
    unknown placeholder stays as written (so it shows in the file rather than vanishing)."""
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        for key in (name, name.removeprefix("server.build.env."), name.removeprefix("env.")):
            if key in values:
                return values[key]
        return match.group(0)

    return _PLACEHOLDER.sub(replace, value)


def render(file: ConfigFile, text: str, values: Mapping[str, str]) -> str:
    """The file's new text: `text` (the current content, "" for a missing file) with every key of
    `file.find` set to its resolved value."""
    find = {key: resolve(value, values) for key, value in file.find.items()}
    match file.parser:
        case "file":
            return _render_lines(text, find)
        case "properties":
            return _render_properties(text, find)
        case "ini":
            return _render_ini(text, find)
        case "json":
            return _render_json(text, find)
        case "yaml":
            return _render_yaml(text, find)
    raise ConfigFileError(f"unknown parser {file.parser!r}")  # pragma: no cover


def _render_lines(text: str, find: Mapping[str, Any]) -> str:
    lines = text.splitlines()
    for key, value in find.items():
        lines = [str(value) if line.startswith(key) else line for line in lines]
    return "\n".join(lines) + ("\n" if lines else "")


def _render_properties(text: str, find: Mapping[str, Any]) -> str:
    lines = text.splitlines()
    seen: set[str] = set()
    out = []
    for line in lines:
        stripped = line.lstrip()
        if stripped and stripped[0] not in "#!":
            key = re.split(r"\s*[=:]\s*|\s+", stripped, maxsplit=1)[0]
            if key in find:
                out.append(f"{key}={_text(find[key])}")
                seen.add(key)
                continue
        out.append(line)
    out += [f"{key}={_text(value)}" for key, value in find.items() if key not in seen]
    return "\n".join(out) + "\n"


def _render_ini(text: str, find: Mapping[str, Any]) -> str:
    config = configparser.RawConfigParser(interpolation=None, strict=False)
    config.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        config.read_string(text)
    except configparser.Error as exc:
        raise ConfigFileError(f"not an ini file: {exc}") from None
    for key, value in find.items():
        section, dot, option = key.rpartition(".")
        if not dot:
            raise ConfigFileError(f"{key}: ini keys are section.key")
        if not config.has_section(section):
            config.add_section(section)
        config.set(section, option, _text(value))
    out = io.StringIO()
    config.write(out, space_around_delimiters=True)
    return out.getvalue()


def _render_json(text: str, find: Mapping[str, Any]) -> str:
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise ConfigFileError(f"not JSON: {exc.msg} at line {exc.lineno}") from None
    for key, value in find.items():
        data = _set_path(data, key.split("."), value)
    return json.dumps(data, indent=4, ensure_ascii=False) + "\n"


def _render_yaml(text: str, find: Mapping[str, Any]) -> str:
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise ConfigFileError(f"not YAML: {exc}") from None
    for key, value in find.items():
        data = _set_path(data if data is not None else {}, key.split("."), value)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _set_path(node: Any, path: list[str], value: Any) -> Any:
    """`node` with the value at `path` set (missing objects created; `*` sets every key or item)."""
    if not path:
        return _typed(value, node)
    head, rest = path[0], path[1:]
    if head == "*":
        if isinstance(node, dict):
            return {key: _set_path(item, rest, value) for key, item in node.items()}
        if isinstance(node, list):
            return [_set_path(item, rest, value) for item in node]
        return node
    if node is None:
        node = {}
    if isinstance(node, list) and head.isdigit() and int(head) < len(node):
        node[int(head)] = _set_path(node[int(head)], rest, value)
        return node
    if not isinstance(node, dict):
        raise ConfigFileError(f"cannot set {head!r} inside a {type(node).__name__}")
    node[head] = _set_path(node.get(head), rest, value)
    return node


def _typed(value: Any, old: Any) -> Any:
    """A replacement keeps the type the value had (a port stays a number, a flag a boolean)."""
    if not isinstance(value, str):
        return value
    if isinstance(old, bool):
        if value.lower() in ("true", "false"):
            return value.lower() == "true"
    elif isinstance(old, int):
        if re.fullmatch(r"-?\d+", value):
            return int(value)
    elif isinstance(old, float) and re.fullmatch(r"-?\d+(\.\d+)?", value):
        return float(value)
    return value


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
