"""Request and response bodies of the panel API."""

from __future__ import annotations

import ipaddress
import re
import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
MAX_PORTS_PER_REQUEST = 1000


def _node_name(value: str) -> str:
    if not NAME_PATTERN.match(value):
        raise ValueError("use 1-100 letters, digits, `_`, `.` or `-`, starting with a letter or digit")
    return value


def _text(value: str) -> str:
    text = value.strip()
    if not text:
        raise ValueError("may not be blank")
    return text


# ------------------------------------------------------------------ nodes


class NodeCapacity(BaseModel):
    memory_mb: int = Field(0, ge=0, le=16_777_216, description="Memory servers may use, MiB (0: no check).")
    disk_mb: int = Field(0, ge=0, le=1_073_741_824, description="Disk servers may use, MiB (0: no check).")
    cpu_percent: int = Field(0, ge=0, le=100_000, description="CPU servers may use, percent (100 per core).")
    overalloc_percent: int = Field(
        0, ge=-1, le=1000, description="How far limits may add up beyond the capacity, % (-1: no check)."
    )


class NodeCreate(NodeCapacity):
    name: str = Field(min_length=1, max_length=100)
    description: str = Field("", max_length=500)
    public_host: str = Field("", max_length=255, description="Host name players connect to.")

    _name = field_validator("name")(_node_name)


class NodeUpdate(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=100)
    description: str | None = Field(None, max_length=500)
    public_host: str | None = Field(None, max_length=255)
    draining: bool | None = Field(None, description="True: no new servers go to this node.")
    memory_mb: int | None = Field(None, ge=0, le=16_777_216)
    disk_mb: int | None = Field(None, ge=0, le=1_073_741_824)
    cpu_percent: int | None = Field(None, ge=0, le=100_000)
    overalloc_percent: int | None = Field(None, ge=-1, le=1000)

    @field_validator("name")
    @classmethod
    def _named(cls, value: str | None) -> str | None:
        return None if value is None else _node_name(value)


class NodeFacts(BaseModel):
    """What an agent reports about its host (at enrolment and in every `hello`)."""

    model_config = ConfigDict(extra="allow")

    cores: int | None = Field(None, ge=0, le=100_000)
    memory_mb: int | None = Field(None, ge=0)
    disk_mb: int | None = Field(None, ge=0)
    kernel: str | None = Field(None, max_length=200)
    limits_backend: str | None = Field(None, max_length=32)
    sandbox: str | None = Field(None, max_length=32)
    agent_version: str | None = Field(None, max_length=64)
    protocol: int | None = Field(None, ge=0)
    hostname: str | None = Field(None, max_length=255)


class NodeRead(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    public_host: str
    status: str
    draining: bool
    last_seen_at: datetime | None
    enrolled_at: datetime | None
    memory_mb: int
    disk_mb: int
    cpu_percent: int
    overalloc_percent: int
    facts: dict[str, Any]
    servers: int = Field(description="Servers on the node.")
    allocated_memory_mb: int
    allocated_disk_mb: int
    allocated_cpu_percent: int
    created_at: datetime


class EnrolmentTokenCreate(BaseModel):
    """Name a new node, or give an existing node's id to enrol it again (its credentials are replaced)."""

    node_name: str | None = Field(None, min_length=1, max_length=100)
    node_id: uuid.UUID | None = None
    ttl: int | None = Field(None, ge=60, le=604_800, description="Seconds; None: ENROLMENT_TOKEN_TTL.")

    @field_validator("node_name")
    @classmethod
    def _named(cls, value: str | None) -> str | None:
        return None if value is None else _node_name(value)

    @model_validator(mode="after")
    def _one(self) -> EnrolmentTokenCreate:
        if (self.node_name is None) == (self.node_id is None):
            raise ValueError("give either `node_name` (a new node) or `node_id` (enrol a node again)")
        return self


class EnrolmentTokenRead(BaseModel):
    id: uuid.UUID
    hint: str
    node_name: str
    node_id: uuid.UUID | None
    expires_at: datetime
    created_at: datetime


class EnrolmentTokenCreated(EnrolmentTokenRead):
    token: str = Field(description="`pne_…`: shown once; `pentad agent enrol --panel URL --token …`.")
    command: str = Field(description="The command to run on the node.")


class Enrolment(BaseModel):
    """An agent's enrolment request (public route, the token is the credential)."""

    token: str = Field(min_length=1, max_length=200)
    facts: NodeFacts = Field(default_factory=NodeFacts)


class Enrolled(BaseModel):
    node_id: uuid.UUID
    node_name: str
    credential: str = Field(description="`pnd_…`: the node's credential, shown once; keep it 0600.")


# ------------------------------------------------------------------ allocations


class AllocationCreate(BaseModel):
    ip: str = Field(description="The address servers bind to, e.g. 0.0.0.0 or 192.0.2.10.")
    ports: list[str] = Field(
        min_length=1, max_length=100, description='Ports and ranges, e.g. ["25565", "27015-27030"].'
    )
    notes: str = Field("", max_length=200)

    @field_validator("ip")
    @classmethod
    def _ip(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError:
            raise ValueError("not an IPv4 or IPv6 address") from None

    @field_validator("ports")
    @classmethod
    def _ports(cls, value: list[str]) -> list[str]:
        expand_ports(value)
        return value

    def port_numbers(self) -> list[int]:
        return expand_ports(self.ports)


def expand_ports(specs: list[str]) -> list[int]:
    """`["25565", "27015-27030"]` → the sorted ports; ValueError for anything else."""
    ports: set[int] = set()
    for spec in specs:
        low, dash, high = spec.strip().partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ValueError(f"{spec!r}: write a port (25565) or a range (27015-27030)")
        start, end = int(low), int(high) if dash else int(low)
        if not 1024 <= start <= end <= 65_535:
            raise ValueError(f"{spec!r}: ports are 1024-65535, a range low-high")
        ports.update(range(start, end + 1))
        if len(ports) > MAX_PORTS_PER_REQUEST:
            raise ValueError(f"at most {MAX_PORTS_PER_REQUEST} ports per request")
    return sorted(ports)


class AllocationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    node_id: uuid.UUID
    ip: str
    port: int
    server_id: uuid.UUID | None
    notes: str


# ------------------------------------------------------------------ templates


class TemplateVariableRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    env_name: str
    name: str
    description: str
    default_value: str
    user_viewable: bool
    user_editable: bool
    rules: str
    sort: int


class TemplateRead(BaseModel):
    id: uuid.UUID
    slug: str
    name: str
    description: str
    author: str
    source: str
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
    warnings: list[str]
    variables: list[TemplateVariableRead]
    created_at: datetime
    updated_at: datetime


class TemplateImport(BaseModel):
    egg: dict[str, Any] = Field(description="The egg's JSON export (PTDL_v1, PTDL_v2, PLCN_v1-v3).")
    slug: str | None = Field(None, min_length=1, max_length=100, description="None: made from the name.")
    replace: bool = Field(False, description="Update the template of this slug if it exists.")

    @field_validator("slug")
    @classmethod
    def _slug(cls, value: str | None) -> str | None:
        return None if value is None else _node_name(value)


class TemplateImported(BaseModel):
    template: TemplateRead
    created: bool
    warnings: list[str]


# ------------------------------------------------------------------ servers


class ServerLimits(BaseModel):
    memory_mb: int = Field(ge=16, le=16_777_216, description="Memory limit, MiB.")
    disk_mb: int = Field(ge=16, le=1_073_741_824, description="Disk quota, MiB.")
    cpu_percent: int = Field(0, ge=0, le=100_000, description="CPU limit, percent (100 per core; 0: none).")


class ServerCreate(ServerLimits):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=1000)
    node_id: uuid.UUID
    template_id: uuid.UUID
    allocation_id: uuid.UUID | None = Field(
        None, description="The primary port; None: the node's first free."
    )
    extra_allocation_ids: list[uuid.UUID] = Field(default_factory=list, max_length=50)
    variables: dict[str, str] = Field(
        default_factory=dict, description="Startup variables by environment name; others take their default."
    )
    owner_id: uuid.UUID | None = Field(None, description="Admins: create it for this account.")
    startup: str | None = Field(None, max_length=10_000, description="Admins: a startup command of its own.")
    restart_on_crash: bool = True

    _named = field_validator("name")(_text)

    @field_validator("variables")
    @classmethod
    def _variables(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_variables(value)


def _check_variables(value: dict[str, str]) -> dict[str, str]:
    if len(value) > 200:
        raise ValueError("at most 200 variables")
    for name, text in value.items():
        if not ENV_NAME.match(name):
            raise ValueError(f"{name!r} is not an environment variable name")
        if len(text) > 4096:
            raise ValueError(f"{name}: at most 4096 characters")
    return value


class ServerUpdate(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=1000)
    restart_on_crash: bool | None = None
    memory_mb: int | None = Field(None, ge=16, le=16_777_216, description="Admins only.")
    disk_mb: int | None = Field(None, ge=16, le=1_073_741_824, description="Admins only.")
    cpu_percent: int | None = Field(None, ge=0, le=100_000, description="Admins only.")
    startup: str | None = Field(None, max_length=10_000, description="Admins only; empty: the template's.")

    @field_validator("name")
    @classmethod
    def _named(cls, value: str | None) -> str | None:
        return None if value is None else _text(value)


class StartupUpdate(BaseModel):
    variables: dict[str, str] = Field(min_length=1)

    @field_validator("variables")
    @classmethod
    def _variables(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_variables(value)


class ServerVariableRead(BaseModel):
    env_name: str
    name: str
    description: str
    value: str
    default_value: str
    editable: bool
    rules: str


class ServerStartup(BaseModel):
    startup: str = Field(description="The startup command, placeholders not yet filled in.")
    variables: list[ServerVariableRead]


class ServerRead(BaseModel):
    id: uuid.UUID
    short_id: str
    name: str
    description: str
    owner_id: uuid.UUID
    node_id: uuid.UUID
    template_id: uuid.UUID
    status: str
    state: str
    state_reason: str | None
    memory_mb: int
    disk_mb: int
    cpu_percent: int
    restart_on_crash: bool
    allocation: AllocationRead | None
    allocations: list[AllocationRead]
    permissions: list[str] = Field(description="Your keys on this server (`control.console`, …).")
    installed_at: datetime | None
    suspended_at: datetime | None
    created_at: datetime


# ------------------------------------------------------------------ subusers, activity


def _server_keys(value: list[str]) -> list[str]:
    from pentad.apps.panel.permissions import SERVER_KEYS

    unknown = sorted({key for key in value if key not in SERVER_KEYS})
    if unknown:
        raise ValueError(f"unknown permission keys: {', '.join(unknown)}")
    return sorted(set(value))


class SubuserCreate(BaseModel):
    email: str = Field(min_length=3, max_length=320, description="An existing account's email address.")
    permissions: list[str] = Field(
        min_length=1, max_length=64, description="The keys to give (`control.console`, …); ones you hold."
    )

    @field_validator("permissions")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        return _server_keys(value)


class SubuserUpdate(BaseModel):
    permissions: list[str] = Field(min_length=1, max_length=64, description="The subuser's keys from now on.")

    @field_validator("permissions")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        return _server_keys(value)


class SubuserRead(BaseModel):
    user_id: uuid.UUID
    email: str
    display_name: str
    owner: bool = Field(description="The server's owner (every key; not a subuser).")
    permissions: list[str]
    since: datetime = Field(description="When the oldest of its keys was given.")


class ActivityRead(BaseModel):
    id: uuid.UUID
    at: datetime
    action: str = Field(description="What was done (`panel.server.power`, `grant.create`, …).")
    actor_type: str = Field(description="`user`, `service` or `system`.")
    actor_id: str | None
    actor_label: str | None = Field(description="Who (an email address, a service's name, `system`).")
    details: dict[str, Any]


# ------------------------------------------------------------------ schedules

SCHEDULE_ACTIONS = ("command", "power", "backup")
POWER_TASKS = ("start", "stop", "restart", "kill")
MAX_TASKS = 20
MAX_TASK_DELAY = 900


class ScheduleTask(BaseModel):
    """One step of a schedule's chain, run after the previous one (and `delay_s` seconds)."""

    action: str = Field(
        description="`command` (payload: the line), `power` (payload: start/stop/restart/kill), `backup` "
        "(when backups are installed; payload: the backup's name, may be empty)."
    )
    payload: str = Field("", max_length=4096)
    delay_s: int = Field(0, ge=0, le=MAX_TASK_DELAY, description="Seconds to wait before this task.")
    continue_on_failure: bool = Field(False, description="Go on with the chain when this task fails.")

    @model_validator(mode="after")
    def _check(self) -> ScheduleTask:
        if self.action not in SCHEDULE_ACTIONS:
            raise ValueError(f"action: one of {', '.join(SCHEDULE_ACTIONS)}")
        if self.action == "power" and self.payload not in POWER_TASKS:
            raise ValueError(f"a power task's payload is one of {', '.join(POWER_TASKS)}")
        if self.action == "command" and (
            not self.payload.strip() or "\n" in self.payload or "\r" in self.payload
        ):
            raise ValueError("a command task's payload is one line")
        return self


class ScheduleWrite(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    cron: str = Field(
        min_length=9, max_length=100, description="Five cron fields (minute hour day month weekday), UTC."
    )
    only_when_online: bool = Field(False, description="Skip a tick while the server is not running.")
    enabled: bool = True
    tasks: list[ScheduleTask] = Field(min_length=1, max_length=MAX_TASKS)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _text(value)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from croniter import croniter

        text = " ".join(value.split())
        if len(text.split()) != 5 or not croniter.is_valid(text):
            raise ValueError("give five cron fields (minute hour day month weekday), e.g. `*/30 * * * *`")
        return text


class ScheduleRead(BaseModel):
    id: uuid.UUID
    server_id: uuid.UUID
    name: str
    cron: str
    only_when_online: bool
    enabled: bool
    tasks: list[ScheduleTask]
    next_run_at: datetime | None
    last_run_at: datetime | None
    created_at: datetime


class ScheduleRunRead(BaseModel):
    id: uuid.UUID
    schedule_id: uuid.UUID
    trigger: str = Field(description="`cron` or `manual`.")
    status: str = Field(description="`running`, `ok`, `failed` or `skipped` (the server was not running).")
    started_at: datetime
    finished_at: datetime | None
    steps: list[dict[str, Any]] = Field(description="Per task run: index, action, ok, detail.")
