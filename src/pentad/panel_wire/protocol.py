"""The agent <-> panel wire: versioned JSON frames over one WebSocket that the agent dials out.

The agent connects to `/api/panel/agent/socket` with `Authorization: Bearer pnd_…` and speaks first:

    agent -> panel   hello      node id, agent version, protocol version, facts, the servers it runs
    panel -> agent   welcome    settings the agent applies (heartbeat, console batching), or
                     error      then close 4400 (protocol_mismatch) / 4409 (wrong node)
    both ways        heartbeat  every `heartbeat_interval` seconds; silence for `heartbeat_timeout` = gone
    panel -> agent   call       request: id, method, server id, params (one of CALL_PARAMS[method])
    agent -> panel   reply      id, ok, result (a dict) or error (code, message)
    agent -> panel   console    a batch of a server's output lines (with a count of lines dropped)
    agent -> panel   stats      one server's resource figures
    agent -> panel   state      a server's state change (from, to, reason, exit code / signal)
    both ways        error      a protocol error that does not end the link (e.g. a frame it cannot read)

Calls answer once their action has *begun*: install -> `installing`, start -> `starting`, stop ->
`stopping`, restart -> `starting`, kill -> `offline`; each reply's result is a ServerReport.
What follows (running once a `done` pattern matched, offline, crashed, install_failed) comes as `state`
frames. send_command answers `{}`, console_history a ConsoleHistory, state a ServerReport.
Errors use codes the panel shows: not_installed, not_running, already_running, unknown_server, busy.

File and backup calls (file_*, backup_*) do their work inside the server's folder on the node
(pentad.agent.files) and answer when it is done. Bytes travel base64-encoded, at most CHUNK_BYTES per
call: file_read / backup_read answer `{data, size}` for an offset, file_upload / backup_push append a
chunk at an offset (the last upload chunk has `final`, which moves the staged file into place). Their
error codes: path_refused, not_found, exists, not_a_folder, not_a_file, disk_quota, archive_refused,
bad_offset, unknown_upload, checksum_mismatch, io_error.

Every frame is one JSON object with the discriminator `t`. `encode` / `decode` turn frames into text and
back; `decode` raises `FrameError` (never pydantic's ValidationError) for anything that is not a valid
frame, so a garbage frame from either side is answered with an `error` frame, not a crash.

This module is shared by the panel (apps/panel) and the agent (pentad.agent): stdlib + pydantic only.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from pentad.panel_wire.serverspec import ServerSpec

PROTOCOL_VERSION: Final = 1
"""Bumped on any incompatible change; a panel refuses a hello with another major version (4400)."""

SOCKET_PATH: Final = "/api/panel/agent/socket"
ENROL_PATH: Final = "/api/panel/agent/enrol"

CLOSE_PROTOCOL_MISMATCH: Final = 4400
CLOSE_UNAUTHORISED: Final = 4401
CLOSE_FORBIDDEN: Final = 4403
CLOSE_WRONG_NODE: Final = 4409
CLOSE_REPLACED: Final = 4410
"""A newer socket of the same node took over (the agent reconnected before the old socket closed)."""

MAX_FRAME_BYTES: Final = 1_048_576
MAX_LINE_CHARS: Final = 8192
MAX_BATCH_LINES: Final = 512

ServerState = Literal[
    "offline",  # not running (never started, stopped, killed)
    "installing",
    "install_failed",
    "starting",  # process started, "done" pattern not seen yet
    "running",
    "stopping",
    "crashed",  # exited unexpectedly too often (crash loop) — no more automatic restarts
    "disk_exceeded",
]
SERVER_STATES: Final[tuple[str, ...]] = ServerState.__args__  # type: ignore[attr-defined]

CallMethod = Literal[
    "install",
    "start",
    "stop",
    "restart",
    "kill",
    "send_command",
    "console_history",
    "state",
    "file_list",
    "file_read",
    "file_upload",
    "file_rename",
    "file_delete",
    "file_mkdir",
    "file_archive",
    "file_extract",
    "backup_make",
    "backup_read",
    "backup_drop",
    "backup_push",
    "backup_restore",
    "delete",
]

CHUNK_BYTES: Final = 512 * 1024
"""Most bytes one file_read / file_upload / backup_read / backup_push call carries (base64 in the frame)."""
READ_CHUNK_BYTES: Final = 32 * 1024
"""What one file_read / backup_read asks for by default: its reply (base64, ~44 KB) must fit the frames the
panel's server reads (`pentad serve` refuses larger ones: PENTAD_REALTIME__MAX_MESSAGE_BYTES, 64 KiB by
default); the panel keeps several reads in flight instead (apps/panel/chunks.py)."""


class Frame(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# --- call parameters (panel -> agent) ---


class InstallParams(Frame):
    spec: ServerSpec
    reinstall: bool = False


class StartParams(Frame):
    spec: ServerSpec


class StopParams(Frame):
    timeout: float | None = Field(None, gt=0, description="None: the spec's stop timeout")


class RestartParams(Frame):
    spec: ServerSpec


class KillParams(Frame):
    pass


class SendCommandParams(Frame):
    command: str = Field(min_length=1, max_length=MAX_LINE_CHARS)


class ConsoleHistoryParams(Frame):
    lines: int = Field(100, ge=1, le=10_000)


class StateParams(Frame):
    pass


# file manager and backups (pentad.agent.files does the work; quota_bytes 0 = no disk limit)

RelPath = Annotated[str, Field(max_length=4096)]
Token = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")]


class FileListParams(Frame):
    path: RelPath = ""


class FileReadParams(Frame):
    path: RelPath
    offset: int = Field(0, ge=0)
    length: int = Field(READ_CHUNK_BYTES, ge=1, le=CHUNK_BYTES)


class FileUploadParams(Frame):
    upload_id: Token
    path: RelPath
    offset: int = Field(ge=0)
    data: str = Field(max_length=(CHUNK_BYTES * 4) // 3 + 4, description="base64")
    final: bool = False
    quota_bytes: int = Field(0, ge=0)


class FileRenameParams(Frame):
    source: RelPath
    target: RelPath


class FileDeleteParams(Frame):
    paths: list[RelPath] = Field(min_length=1, max_length=1000)


class FileMkdirParams(Frame):
    path: RelPath


class ArchiveLimitsParams(Frame):
    max_entries: int = Field(100_000, ge=1)
    max_bytes: int = Field(10 * 1024**3, ge=1)
    max_ratio: int = Field(200, ge=1)
    quota_bytes: int = Field(0, ge=0)


class FileArchiveParams(Frame):
    folder: RelPath = ""
    names: list[RelPath] = Field(default_factory=list, max_length=1000)
    format: Literal["tar.gz", "tar", "zip"] = "tar.gz"
    quota_bytes: int = Field(0, ge=0)


class FileExtractParams(ArchiveLimitsParams):
    path: RelPath
    folder: RelPath = ""


class BackupMakeParams(Frame):
    backup_id: Token
    ignore: list[Annotated[str, Field(max_length=500)]] = Field(default_factory=list, max_length=500)


class BackupReadParams(Frame):
    backup_id: Token
    offset: int = Field(0, ge=0)
    length: int = Field(READ_CHUNK_BYTES, ge=1, le=CHUNK_BYTES)


class BackupDropParams(Frame):
    backup_id: Token


class BackupPushParams(Frame):
    backup_id: Token
    offset: int = Field(ge=0)
    data: str = Field(max_length=(CHUNK_BYTES * 4) // 3 + 4, description="base64")


class BackupRestoreParams(ArchiveLimitsParams):
    backup_id: Token
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class DeleteParams(Frame):
    """Remove the server from this node: kill it if it runs, then its folder and run state (after a
    transfer to another node, or when the panel deletes it)."""


CALL_PARAMS: Final[dict[str, type[Frame]]] = {
    "install": InstallParams,
    "start": StartParams,
    "stop": StopParams,
    "restart": RestartParams,
    "kill": KillParams,
    "send_command": SendCommandParams,
    "console_history": ConsoleHistoryParams,
    "state": StateParams,
    "file_list": FileListParams,
    "file_read": FileReadParams,
    "file_upload": FileUploadParams,
    "file_rename": FileRenameParams,
    "file_delete": FileDeleteParams,
    "file_mkdir": FileMkdirParams,
    "file_archive": FileArchiveParams,
    "file_extract": FileExtractParams,
    "backup_make": BackupMakeParams,
    "backup_read": BackupReadParams,
    "backup_drop": BackupDropParams,
    "backup_push": BackupPushParams,
    "backup_restore": BackupRestoreParams,
    "delete": DeleteParams,
}
"""The params model of each call method; `Call.typed_params()` validates with it."""


# --- results (agent -> panel, in reply.result) ------------------------------------------------------------


class ServerReport(Frame):
    """A server as the agent sees it (hello's reconcile list, `state` and power calls' result)."""

    server_id: str
    state: ServerState
    pid: int | None = None
    started_at: float | None = Field(None, description="unix time the game process started")
    exit_code: int | None = None
    exit_signal: int | None = None
    restarts: int = 0


class ConsoleHistory(Frame):
    server_id: str
    lines: list[str]


# --- frames ---


class Hello(Frame):
    t: Literal["hello"] = "hello"
    protocol: int = PROTOCOL_VERSION
    node_id: str
    agent_version: str
    facts: dict[str, Any] = Field(
        default_factory=dict,
        description="cores, memory_bytes, disk_free_bytes, kernel, limits_backend, sandbox, hostname",
    )
    servers: list[ServerReport] = Field(default_factory=list, description="every server the agent runs")


class Welcome(Frame):
    t: Literal["welcome"] = "welcome"
    protocol: int = PROTOCOL_VERSION
    node_id: str
    heartbeat_interval: float = 2.0
    heartbeat_timeout: float = 6.0
    console_batch_ms: int = 50
    console_lines_per_second: int = 5000
    stats_interval: float = 1.0


class Heartbeat(Frame):
    t: Literal["heartbeat"] = "heartbeat"
    at: float = Field(description="sender's unix time")


class Call(Frame):
    t: Literal["call"] = "call"
    id: int = Field(ge=0)
    method: CallMethod
    server_id: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)

    def typed_params(self) -> Frame:
        """The params as their method's model (FrameError when they do not fit)."""
        try:
            return CALL_PARAMS[self.method].model_validate(self.params)
        except ValidationError as error:
            raise FrameError("bad_params", _describe(error)) from None


class ErrorBody(Frame):
    code: str
    message: str


class Reply(Frame):
    t: Literal["reply"] = "reply"
    id: int = Field(ge=0)
    ok: bool = True
    result: dict[str, Any] | None = None
    error: ErrorBody | None = None


class ConsoleBatch(Frame):
    t: Literal["console"] = "console"
    server_id: str
    lines: list[str] = Field(max_length=MAX_BATCH_LINES)
    dropped: int = Field(0, ge=0, description="lines the agent's throttle dropped before this batch")
    source: Literal["game", "install"] = "game"


class Stats(Frame):
    t: Literal["stats"] = "stats"
    server_id: str
    state: ServerState
    cpu_percent: float = 0.0
    memory_bytes: int = 0
    memory_limit_bytes: int | None = None
    disk_bytes: int = 0
    net_rx_bytes: int | None = None
    net_tx_bytes: int | None = None
    net_rx_packets: int | None = None
    net_tx_packets: int | None = None
    net_unavailable: str | None = Field(None, description="why net is null")
    uptime_s: float = 0.0
    players: int | None = None
    max_players: int | None = None


class StateChange(Frame):
    t: Literal["state"] = "state"
    server_id: str
    state: ServerState
    previous: ServerState | None = None
    reason: str = ""
    exit_code: int | None = None
    exit_signal: int | None = None


class Error(Frame):
    t: Literal["error"] = "error"
    code: str
    message: str


AgentFrame = Annotated[
    Hello | Heartbeat | Reply | ConsoleBatch | Stats | StateChange | Error, Field(discriminator="t")
]
PanelFrame = Annotated[Welcome | Heartbeat | Call | Error, Field(discriminator="t")]
_AGENT_FRAME: TypeAdapter[AgentFrame] = TypeAdapter(AgentFrame)
_PANEL_FRAME: TypeAdapter[PanelFrame] = TypeAdapter(PanelFrame)


class FrameError(ValueError):
    """A frame that cannot be read: `code` for the error frame, `message` says what is wrong."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class CallFailed(Exception):
    """An agent's reply with ok=false (raised by whoever awaits a call)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def encode(frame: Frame) -> str:
    return frame.model_dump_json()


def _load(text: str | bytes) -> Any:
    if len(text) > MAX_FRAME_BYTES:
        raise FrameError("frame_too_large", f"a frame is at most {MAX_FRAME_BYTES} bytes")
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise FrameError("bad_json", "a frame is one JSON object") from None


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = "/".join(str(part) for part in first["loc"])
    return f"{where or 'frame'}: {first['msg']}"


def decode_agent_frame(text: str | bytes) -> AgentFrame:
    """A frame the agent sent (read by the panel)."""
    try:
        return _AGENT_FRAME.validate_python(_load(text))
    except ValidationError as error:
        raise FrameError("bad_frame", _describe(error)) from None


def decode_panel_frame(text: str | bytes) -> PanelFrame:
    """A frame the panel sent (read by the agent)."""
    try:
        return _PANEL_FRAME.validate_python(_load(text))
    except ValidationError as error:
        raise FrameError("bad_frame", _describe(error)) from None


def ok_reply(call_id: int, result: Frame | dict[str, Any] | None = None) -> Reply:
    body = result.model_dump(mode="json") if isinstance(result, Frame) else result
    return Reply(id=call_id, ok=True, result=body)


def error_reply(call_id: int, code: str, message: str) -> Reply:
    return Reply(id=call_id, ok=False, error=ErrorBody(code=code, message=message))


# --- enrolment (plain HTTP, before any socket) --------------------------------------------------------------


class EnrolRequest(Frame):
    token: str = Field(min_length=1, max_length=200, description="the one-time enrolment token, pne_…")
    facts: dict[str, Any] = Field(default_factory=dict)


class EnrolResponse(Frame):
    node_id: str
    node_name: str
    credential: str = Field(description="pnd_…; shown once, the panel keeps only its hash")
    socket_path: str = SOCKET_PATH
    protocol: int = PROTOCOL_VERSION
