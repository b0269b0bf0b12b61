"""What the panel tells an agent about one game server: everything the agent needs to install, configure,
start, feed and stop it. The panel builds it from the server's template (an egg) and variables; the agent's
Runtime takes it as is. Stdlib + pydantic only (shared by both sides)."""

from __future__ import annotations

import re
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pentad.panel_wire.configfiles import ConfigFile

SERVER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}")


class StopSpec(BaseModel):
    """How to ask the game to stop: a console command (`stop`, `shutdown`), or a signal. Eggs write `^C`
    for SIGINT and `^^C` for SIGTERM; `from_egg` reads that."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["command", "signal"] = "signal"
    value: str = "SIGTERM"

    @classmethod
    def from_egg(cls, stop: str) -> StopSpec:
        if stop == "^C":
            return cls(kind="signal", value="SIGINT")
        if stop == "^^C":
            return cls(kind="signal", value="SIGTERM")
        if stop.startswith("^"):
            return cls(kind="signal", value=stop[1:] if stop[1:].startswith("SIG") else "SIG" + stop[1:])
        return cls(kind="command", value=stop)

    @field_validator("value")
    @classmethod
    def _check(cls, value: str) -> str:
        if "\n" in value or "\r" in value or not value:
            raise ValueError("one line, not empty")
        return value


class ConsoleInput(BaseModel):
    """Where console commands go: the game's stdin, or (teeworlds, which ignores stdin) its external
    console (econ: TCP on 127.0.0.1:port, a password line first)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["stdin", "econ"] = "stdin"
    port: int | None = Field(None, ge=1, le=65535)
    password: str | None = None


QueryKind = Literal["teeworlds"]
QUERY_KINDS: tuple[str, ...] = get_args(QueryKind)
QUERY_FEATURE = "query:"
"""A template feature `query:<kind>` names the status query its game answers (see GameQuery)."""


class GameQuery(BaseModel):
    """Where the agent asks the game for its players (a template's `query:<kind>` feature; the primary
    allocation). `host` 0.0.0.0 or :: is asked on loopback."""

    model_config = ConfigDict(frozen=True)

    kind: QueryKind
    host: str = Field(max_length=64)
    port: int = Field(ge=1, le=65535)


class ServerLimits(BaseModel):
    """Resource limits; 0 means unlimited."""

    model_config = ConfigDict(frozen=True)

    memory_mb: int = Field(0, ge=0)
    cpu_percent: int = Field(0, ge=0, description="100 = one core.")
    disk_mb: int = Field(0, ge=0)
    pids: int = Field(512, ge=0)
    open_files: int = Field(4096, ge=0)


class ServerSpec(BaseModel):
    """One game server as the agent runs it.

    `startup` is a shell command line run with /bin/sh -c inside the sandbox, its working directory the
    server folder (/home/container inside). `{{NAME}}` placeholders become `${NAME}` (expanded by the shell
    from `env`, never re-parsed as shell syntax); `{{server.build.default.port}}` style placeholders are
    resolved by the panel before sending. `done`: regexes, the first console line matching one marks the
    server running (none: running at once)."""

    model_config = ConfigDict(frozen=True)

    server_id: str
    startup: str = Field(min_length=1, max_length=16_384)
    env: dict[str, str] = Field(default_factory=dict)
    stop: StopSpec = StopSpec()
    done: list[str] = Field(default_factory=list)
    console_input: ConsoleInput = ConsoleInput()
    query: GameQuery | None = None
    limits: ServerLimits = ServerLimits()
    install_script: str | None = Field(None, max_length=1_048_576)
    install_entrypoint: str = Field("bash", pattern=r"^(bash|sh|ash)$")
    config_files: list[ConfigFile] = Field(default_factory=list)
    restart_on_crash: bool = True
    stop_timeout: float | None = Field(None, gt=0, le=3600)
    ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(
        default_factory=list, max_length=1024, description="The allocated ports (network counters, TCP+UDP)."
    )

    @field_validator("server_id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not SERVER_ID.match(value):
            raise ValueError("letters, digits, _ and -, at most 64, not starting with _ or -")
        return value

    @field_validator("env")
    @classmethod
    def _check_env(cls, value: dict[str, str]) -> dict[str, str]:
        for name, item in value.items():
            if not ENV_NAME.match(name):
                raise ValueError(f"{name!r} is not an environment variable name")
            if "\x00" in item:
                raise ValueError(f"{name}: NUL in value")
        return value

    @field_validator("done")
    @classmethod
    def _check_done(cls, value: list[str]) -> list[str]:
        for pattern in value:
            re.compile(pattern)
        return value

    def shell_command(self) -> str:
        """`startup` with `{{NAME}}` placeholders turned into `${NAME}` for the shell to expand."""

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            name = name.removeprefix("env.").removeprefix("server.build.env.")
            return "${" + name + "}" if ENV_NAME.match(name) else match.group(0)

        return PLACEHOLDER.sub(replace, self.startup)
