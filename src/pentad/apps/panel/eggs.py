"""Pterodactyl / Pelican egg import: an egg's JSON export → a template and its variables.

Formats: Pterodactyl `PTDL_v1` (images as a list or one `image`) and `PTDL_v2` (`docker_images` map),
Pelican `PLCN_v1` to `PLCN_v3` (`startup_commands` map, rules as lists, `tags`). `config.files`,
`config.startup` and `config.logs` are JSON strings in exports and objects in hand-written eggs: both are
taken. `config.startup.done` is a string or a list. A malformed egg raises InvalidEgg (422) with one issue
per problem, located by the JSON pointer in the egg (`/variables/2/env_variable`).

What the import cannot take over becomes a warning, never a silent change: rules outside the subset of
rules.py (ignored), rules it cannot compile (ignored), and Docker images — servers run on the host's
binaries in bubblewrap, so an egg whose startup needs what only its image has will not run; generic OS
images (Debian, Ubuntu, Alpine …) get no warning. An egg may carry a `pentad` object with the panel's own
extensions (`slug`, `console_input`: `stdin` or `econ`), as the shipped templates do.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pentad.apps.panel.exceptions import InvalidEgg, InvalidRule
from pentad.apps.panel.rules import parse_rules, split_rules

FORMATS = ("PTDL_v1", "PTDL_v2", "PLCN_v1", "PLCN_v2", "PLCN_v3")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
GENERIC_IMAGE = re.compile(r"(debian|ubuntu|bookworm|bullseye|trixie|alpine|busybox|generic|installer)", re.I)
SLUG_CHARS = re.compile(r"[^a-z0-9]+")
CONSOLE_INPUTS = ("stdin", "econ")


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


class EggMeta(_Loose):
    version: str

    @field_validator("version")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in FORMATS:
            raise ValueError(f"unknown egg format {value!r} (known: {', '.join(FORMATS)})")
        return value


class EggConfig(_Loose):
    files: str | dict[str, Any] | None = None
    startup: str | dict[str, Any] | None = None
    logs: str | dict[str, Any] | list[Any] | None = None
    stop: str | None = None
    file_denylist: list[str] | None = None


class EggInstallation(_Loose):
    script: str | None = None
    container: str | None = None
    entrypoint: str | None = None


class EggScripts(_Loose):
    installation: EggInstallation | None = None


class EggVariable(_Loose):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    env_variable: str
    default_value: str | int | float | bool | None = None
    user_viewable: bool | int = True
    user_editable: bool | int = True
    rules: str | list[str] | None = None
    sort: int | None = None

    @field_validator("env_variable")
    @classmethod
    def _env(cls, value: str) -> str:
        if not ENV_NAME.match(value):
            raise ValueError("not an environment variable name (letters, digits, `_`)")
        return value


class EggExtensions(_Loose):
    slug: str | None = None
    console_input: str = "stdin"

    @field_validator("console_input")
    @classmethod
    def _input(cls, value: str) -> str:
        if value not in CONSOLE_INPUTS:
            raise ValueError(f"use one of {', '.join(CONSOLE_INPUTS)}")
        return value


class Egg(_Loose):
    meta: EggMeta
    name: str = Field(min_length=1, max_length=200)
    author: str | None = None
    uuid: str | None = Field(None, max_length=64)
    description: str | None = None
    features: list[str] | None = None
    docker_images: dict[str, str] | None = None
    images: list[str] | None = None
    image: str | None = None
    file_denylist: list[str] | str | None = None
    startup: str | None = Field(None, max_length=10_000)
    startup_commands: dict[str, str] | None = None
    config: EggConfig = Field(default_factory=EggConfig)
    scripts: EggScripts | None = None
    variables: list[EggVariable] = Field(default_factory=list, max_length=200)
    pentad: EggExtensions | None = None


@dataclass
class ParsedVariable:
    env_name: str
    name: str
    description: str
    default_value: str
    user_viewable: bool
    user_editable: bool
    rules: str
    sort: int


@dataclass
class ParsedEgg:
    """An egg as the panel keeps it (the fields of PanelTemplate), its variables and the warnings."""

    slug: str
    name: str
    description: str
    author: str
    egg_uuid: str | None
    egg_format: str
    startup: str
    stop: str
    done: list[str]
    config_files: dict[str, Any]
    install_script: str
    install_entrypoint: str
    file_denylist: list[str]
    console_input: str
    docker_images: dict[str, Any]
    features: list[str]
    variables: list[ParsedVariable]
    warnings: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    def template_fields(self) -> dict[str, Any]:
        return {
            "slug": self.slug, "name": self.name, "description": self.description, "author": self.author,
            "egg_uuid": self.egg_uuid, "egg_format": self.egg_format, "startup": self.startup,
            "stop": self.stop, "done": self.done, "config_files": self.config_files,
            "install_script": self.install_script, "install_entrypoint": self.install_entrypoint,
            "file_denylist": self.file_denylist, "console_input": self.console_input,
            "docker_images": self.docker_images, "features": self.features, "warnings": self.warnings,
            "raw_egg": self.raw,
        }  # fmt: skip


def _pointer(location: tuple[str | int, ...]) -> str:
    return "/" + "/".join(str(part).replace("~", "~0").replace("/", "~1") for part in location)


def _issue(location: tuple[str | int, ...], message: str, kind: str) -> dict[str, Any]:
    return {"loc": ["body", "egg", *location], "msg": f"{_pointer(location)}: {message}", "type": kind}


def make_slug(name: str) -> str:
    return SLUG_CHARS.sub("-", name.lower()).strip("-")[:100] or "egg"


def _json_part(
    value: str | dict[str, Any] | list[Any] | None, where: tuple[str | int, ...], issues: list[dict[str, Any]]
) -> Any:
    if value is None or not isinstance(value, str):
        return value
    if not value.strip():
        return None
    try:
        return json.loads(value)
    except ValueError as exc:
        issues.append(_issue(where, f"not valid JSON ({exc})", "json_invalid"))
        return None


def parse_egg(document: Any) -> ParsedEgg:
    """The egg `document` (parsed JSON) as a template; InvalidEgg (422) when it is not an egg."""
    if not isinstance(document, dict):
        raise InvalidEgg([_issue((), "an egg is a JSON object", "type_error")])
    try:
        egg = Egg.model_validate(document)
    except ValidationError as exc:
        raise InvalidEgg(
            [_issue(tuple(error["loc"]), error["msg"], error["type"]) for error in exc.errors()]
        ) from None
    issues: list[dict[str, Any]] = []
    warnings: list[str] = []

    if egg.startup_commands:
        startup = next(iter(egg.startup_commands.values()))
        if len(egg.startup_commands) > 1:
            warnings.append(
                f"the egg has {len(egg.startup_commands)} startup commands; the first "
                f"({next(iter(egg.startup_commands))!r}) is used"
            )
    else:
        startup = egg.startup or ""
    if not startup.strip():
        issues.append(_issue(("startup",), "the egg has no startup command", "missing"))

    startup_config = _json_part(egg.config.startup, ("config", "startup"), issues)
    done: list[str] = []
    if isinstance(startup_config, dict):
        raw_done = startup_config.get("done")
        if isinstance(raw_done, str):
            done = [raw_done] if raw_done else []
        elif isinstance(raw_done, list) and all(isinstance(item, str) for item in raw_done):
            done = [item for item in raw_done if item]
        elif raw_done is not None:
            issues.append(
                _issue(("config", "startup", "done"), "a string or a list of strings", "type_error")
            )
    elif startup_config is not None:
        issues.append(_issue(("config", "startup"), "a JSON object", "type_error"))

    files = _json_part(egg.config.files, ("config", "files"), issues)
    if files is not None and not isinstance(files, dict):
        issues.append(_issue(("config", "files"), "a JSON object of file → parser and changes", "type_error"))
        files = None
    _json_part(egg.config.logs, ("config", "logs"), issues)

    denylist_source = egg.file_denylist if egg.file_denylist is not None else egg.config.file_denylist
    if isinstance(denylist_source, str):
        denylist = [line.strip() for line in denylist_source.splitlines() if line.strip()]
    else:
        denylist = list(denylist_source or [])

    images: dict[str, Any] = dict(egg.docker_images or {})
    for image in [*(egg.images or []), *([egg.image] if egg.image else [])]:
        images.setdefault(image, image)
    specific = sorted({image for image in images.values() if not GENERIC_IMAGE.search(str(image))})
    if specific:
        warnings.append(
            "the egg assumes a Docker image (" + ", ".join(specific) + "); servers run with the host's "
            "programs in bubblewrap, so its startup command must work with what the node has installed"
        )

    installation = egg.scripts.installation if egg.scripts and egg.scripts.installation else EggInstallation()
    if installation.container and not GENERIC_IMAGE.search(installation.container):
        warnings.append(
            f"the install script expects the image {installation.container!r}; it runs with the node's own "
            "programs (bash, curl, …) instead"
        )

    variables: list[ParsedVariable] = []
    seen: set[str] = set()
    for index, variable in enumerate(egg.variables):
        where: tuple[str | int, ...] = ("variables", index)
        if variable.env_variable in seen:
            issues.append(
                _issue((*where, "env_variable"), f"{variable.env_variable} appears twice", "duplicate")
            )
            continue
        seen.add(variable.env_variable)
        kept = _rules(variable, warnings)
        default = variable.default_value
        default_text = (
            "" if default is None else str(default).lower() if isinstance(default, bool) else str(default)
        )
        variables.append(
            ParsedVariable(
                env_name=variable.env_variable,
                name=variable.name,
                description=variable.description or "",
                default_value=default_text,
                user_viewable=bool(variable.user_viewable),
                user_editable=bool(variable.user_editable),
                rules=kept,
                sort=variable.sort if variable.sort is not None else index,
            )
        )
    if issues:
        raise InvalidEgg(issues)

    extensions = egg.pentad or EggExtensions()
    stop = (egg.config.stop or "^C").strip() or "^C"
    return ParsedEgg(
        slug=make_slug(extensions.slug or egg.name),
        name=egg.name,
        description=egg.description or "",
        author=egg.author or "",
        egg_uuid=egg.uuid,
        egg_format=egg.meta.version,
        startup=startup,
        stop=stop,
        done=done,
        config_files=files or {},
        install_script=(installation.script or "").replace("\r\n", "\n"),
        install_entrypoint=installation.entrypoint or "bash",
        file_denylist=denylist,
        console_input=extensions.console_input,
        docker_images=images,
        features=list(egg.features or []),
        variables=variables,
        warnings=warnings,
        raw=document,
    )


def _rules(variable: EggVariable, warnings: list[str]) -> str:
    """The variable's rules the panel checks, as one `|` string; the rest become warnings."""
    source = variable.rules or ""
    texts = [source] if isinstance(source, str) else list(source)
    kept: list[str] = []
    for text in texts:
        for rule in split_rules(text) if isinstance(source, str) else [text]:
            try:
                parsed = parse_rules([rule])
            except InvalidRule as exc:
                warnings.append(f"{variable.env_variable}: rule {rule!r} ignored ({exc.message})")
                continue
            if parsed.unknown:
                warnings.append(f"{variable.env_variable}: rule {rule!r} is not supported and ignored")
                continue
            kept.append(rule.strip())
    return "|".join(kept)
