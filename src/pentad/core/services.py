"""Long-running services of apps: supervised async tasks and child processes (`AppSpec.services`).

A service is an async function `run(context)` that is meant to run until it is cancelled: an RTMP
listener, an ESI poller, a plugin host. `ServiceSpec.process(...)` makes a service of one child process
(e.g. a relay). A service that raises, or returns, is restarted after an exponential backoff with jitter,
capped at `backoff_max`; a run that lasted `stable_after` seconds resets the backoff. Three failures in a
row without such a run is a crash loop: /readyz and the logs say so, and a `critical` service that is not
running makes /readyz answer 503.

Placement. `serve` services run inside `pentad serve`, `worker` services inside `pentad worker` (and inside
`pentad serve` when it runs the in-process job worker), both once per node: the processes of one placement
on a node (one PENTAD_DATA_DIR) elect a holder through a lock file, the holder runs them, the others stand
by and take over within a second when it dies. Standby processes report the holder's health from a status
file next to the lock. `own` services run only under `pentad run-service NAME`, one per command.

Child processes. A service starts children through `context.processes` (a ProcessSupervisor), at start or
at runtime (one ffmpeg per live stream). Each child gets its own session and process group and, on Linux,
PR_SET_PDEATHSIG=SIGKILL: when the Pentad process dies, even by SIGKILL, the kernel kills its children, so
nothing is orphaned. A stop sends SIGTERM to the child's whole process group, waits `stop_timeout`, then
sends SIGKILL. Children see the environment without the platform's PENTAD_* settings (secrets among
them), plus what the service passes in `env`. Their stdout and stderr lines are logged with the service
name (each line cut at MAX_LINE_CHARS, at most MAX_LINES_PER_SECOND per stream; the rest is counted).
The guarantee covers the child itself: a child that forks grandchildren should `exec` the real program
(no shell in between), or the grandchildren must set their own parent-death signal. `limits`
(ChildLimits) caps a child's memory, CPU time, open files and processes with setrlimit before it execs;
`child.exit` (ChildExit) tells how its last run ended and which limit it most likely hit.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import json
import multiprocessing
import os
import random
import re
import resource
import signal
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import structlog
from pydantic import BaseModel

from pentad.core.context import AppContext
from pentad.core.metrics import Metrics

Placement = Literal["serve", "worker", "own"]
ServiceStatus = Literal["running", "restarting", "crash_loop", "standby", "stopped", "disabled"]
HEALTHY_STATUSES: frozenset[ServiceStatus] = frozenset({"running", "standby"})
CRASH_LOOP_FAILURES = 3
MAX_LINE_CHARS = 2000
MAX_LINES_PER_SECOND = 50
STANDBY_POLL_SECONDS = 1.0
PR_SET_PDEATHSIG = 1
CHILD_ENV_HIDDEN_PREFIXES = ("PENTAD_", "PROMETHEUS_MULTIPROC_DIR")
STDERR_TAIL_LINES = 20
"""Last stderr lines of a run kept to guess why a child ended (ChildExit.limit_exceeded)."""
LimitName = Literal["cpu", "memory", "open_files", "processes"]
# What programs print when a limit refuses them: Python, C (strerror), C++ and Go runtimes.
_LIMIT_MESSAGES: tuple[tuple[LimitName, re.Pattern[str]], ...] = (
    ("memory", re.compile(r"MemoryError|Cannot allocate memory|out of memory|bad_alloc", re.IGNORECASE)),
    ("open_files", re.compile(r"Too many open files|EMFILE")),
    ("processes", re.compile(r"Resource temporarily unavailable|EAGAIN|can't start new thread")),
)

logger = structlog.get_logger("pentad.services")


class ServiceError(Exception):
    """A service or child process cannot be started as asked."""


def backoff_delay(
    failures: int, base: float, maximum: float, rand: Callable[[], float] = random.random
) -> float:
    """Seconds before the restart after `failures` failures in a row: exponential, capped at `maximum`, with
    equal jitter (between half and all of it) so the restarts of many services spread."""
    capped = min(maximum, base * 2.0 ** min(max(failures, 1) - 1, 64))
    return capped / 2 + rand() * capped / 2


@dataclass(frozen=True)
class ServiceContext:
    """What a running service gets: its name, the platform's app context (core/context.py: its app's
    settings, the database, storage, ...), its child processes, a logger.

    Deliberately not the whole Platform nor the core's Settings: a service writes through
    `platform.database.transaction()` (realtime publishes and jobs enqueued there run after the commit, as in
    a request)."""

    name: str
    platform: AppContext
    processes: ProcessSupervisor
    log: Any


ServiceRun = Callable[[ServiceContext], Awaitable[None]]


@dataclass(frozen=True)
class ServiceSpec:
    """A long-running service of an app; its name starts with the app's name (`streams.rtmp`).

    placement: where it runs (`serve`, `worker` or `own`, see the module text).
    critical: /readyz answers 503 while the service is not running.
    backoff_base, backoff_max: seconds before a restart (doubling per failure in a row, capped).
    stable_after: a run this long counts as healthy: the next failure starts the backoff afresh.
    stop_timeout: seconds a stopping service, and each of its children after SIGTERM, get to finish.
    enabled: whether it runs at all, decided from the app's settings (`lambda c:
    c.app_settings(M).relay_enabled`), asked once when its placement starts; a disabled service is never
    started, shows as `disabled` in /readyz and is never critical.
    """

    name: str
    run: ServiceRun
    placement: Placement = "serve"
    critical: bool = False
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    stable_after: float = 60.0
    stop_timeout: float = 10.0
    enabled: Callable[[AppContext], bool] | None = None

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*(\.[a-z0-9_-]+)+", self.name):
            raise ValueError(f"service name {self.name!r} must be `<app>.<service>` in lower case")
        if self.placement not in get_args(Placement):
            raise ValueError(f"service {self.name}: placement must be one of {get_args(Placement)}")
        if min(self.backoff_base, self.backoff_max, self.stable_after, self.stop_timeout) <= 0:
            raise ValueError(f"service {self.name}: backoff, stable_after and stop_timeout must be > 0")

    @classmethod
    def process(
        cls,
        name: str,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        limits: ChildLimits | None = None,
        **options: Any,
    ) -> ServiceSpec:
        """A service that is one child process: restarted when it exits, stopped with the service."""
        argv = tuple(command)
        extra = dict(env or {})

        async def run(context: ServiceContext) -> None:
            child = await context.processes.start("main", argv, env=extra, cwd=cwd, limits=limits)
            returncode = await child.wait()
            raise ServiceError(f"{argv[0]} exited with status {returncode}")

        return cls(name, run, **options)


class ServiceHealth(BaseModel):
    status: ServiceStatus
    critical: bool
    restarts: int


# ------------------------------------------------------------------ children


@dataclass(frozen=True)
class ChildLimits:
    """Resource limits of a child process, set (setrlimit) between fork and exec; None: inherited.

    memory_bytes: its address space (RLIMIT_AS): an allocation beyond it fails (Python: MemoryError).
    cpu_seconds: CPU time (RLIMIT_CPU): SIGXCPU when it is used up, SIGKILL one second later.
    open_files: file descriptors (RLIMIT_NOFILE): opening more fails with EMFILE.
    processes: processes and threads of the child's user, all of them, not only its own (RLIMIT_NPROC;
    meaningful when the child runs as a user of its own; root ignores it).
    """

    memory_bytes: int | None = None
    cpu_seconds: int | None = None
    open_files: int | None = None
    processes: int | None = None

    def __post_init__(self) -> None:
        for name in ("memory_bytes", "cpu_seconds", "open_files", "processes"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"ChildLimits.{name} must be a positive integer")

    def check(self) -> None:
        """ServiceError when a limit is above this process's hard limit, which a child cannot raise
        without privilege (it would fail between fork and exec, with a less helpful error)."""
        if os.geteuid() == 0:
            return
        for which, (_, hard) in self.rlimits():
            own = resource.getrlimit(which)[1]
            if own != resource.RLIM_INFINITY and hard > own:
                raise ServiceError(f"{self} is above this process's hard limit ({own})")

    def rlimits(self) -> list[tuple[int, tuple[int, int]]]:
        """(resource, (soft, hard)) pairs to set."""
        found = []
        if self.memory_bytes is not None:
            found.append((resource.RLIMIT_AS, (self.memory_bytes, self.memory_bytes)))
        if self.cpu_seconds is not None:
            found.append((resource.RLIMIT_CPU, (self.cpu_seconds, self.cpu_seconds + 1)))
        if self.open_files is not None:
            found.append((resource.RLIMIT_NOFILE, (self.open_files, self.open_files)))
        if self.processes is not None:
            found.append((resource.RLIMIT_NPROC, (self.processes, self.processes)))
        return found


@dataclass(frozen=True)
class ChildExit:
    """How a child's last run ended, so its service can say why.

    returncode: the exit status, or minus the signal number. signal: the signal that ended it, if one did.
    stopped: the supervisor stopped it (stop, or the service ending). limit_exceeded: the ChildLimits
    limit that most likely ended it (a best guess): `cpu` for SIGXCPU, or a SIGKILL the supervisor did not
    send after at least `cpu_seconds`; `memory`, `open_files` or `processes` when the child had that limit
    and its last stderr lines say an allocation, an open or a fork was refused."""

    returncode: int
    signal: int | None
    stopped: bool
    limit_exceeded: LimitName | None


_LIMIT_FIELDS: dict[LimitName, str] = {
    "cpu": "cpu_seconds",
    "memory": "memory_bytes",
    "open_files": "open_files",
    "processes": "processes",
}


def _limit_exceeded(
    limits: ChildLimits | None, returncode: int, *, stopped: bool, lasted: float, stderr_tail: Iterable[str]
) -> LimitName | None:
    if limits is None or stopped or returncode == 0:
        return None
    if limits.cpu_seconds is not None:
        if returncode == -signal.SIGXCPU:
            return "cpu"
        # The kernel's SIGKILL at the hard limit, if it could have used that much CPU in the time it ran.
        if returncode == -signal.SIGKILL and lasted * (os.cpu_count() or 1) >= limits.cpu_seconds:
            return "cpu"
    text = "\n".join(stderr_tail)
    for name, pattern in _LIMIT_MESSAGES:
        if getattr(limits, _LIMIT_FIELDS[name]) is not None and pattern.search(text):
            return name
    return None


def _load_prctl() -> Any:
    # Resolved before any fork: the child must not load libraries between fork and exec.
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()


def _die_with_parent(parent: int, rlimits: Sequence[tuple[int, tuple[int, int]]] = ()) -> None:
    """Runs in the child between fork and exec: SIGKILL when the parent dies (if the parent is already
    gone, having died between fork and prctl, the signal will never come: exit at once), then its resource
    limits, last, so that nothing in here runs under a memory cap meant for the program."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)
    for which, values in rlimits:
        resource.setrlimit(which, values)


def dies_with_this_process() -> Callable[[], None]:
    """A `preexec_fn` for a one-off child started outside `context.processes` (e.g. with
    asyncio.create_subprocess_exec): the child is SIGKILLed when this process dies, even by SIGKILL."""
    parent = os.getpid()
    return lambda: _die_with_parent(parent)


def die_with_supervisor() -> None:
    """In a worker process of `pentad serve --workers N` (which uvicorn's supervisor starts through
    multiprocessing): be SIGKILLed when the supervisor dies, so that a SIGKILLed `pentad serve` takes its
    workers, and through them their services' children, along. Elsewhere it does nothing."""
    supervisor = multiprocessing.parent_process()
    if supervisor is None or _PRCTL is None:
        return
    _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != supervisor.pid:
        os.kill(os.getpid(), signal.SIGKILL)


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without the platform's settings (which hold its secrets), plus `extra`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(CHILD_ENV_HIDDEN_PREFIXES)}
    env.update(extra or {})
    return env


async def _spawn(
    command: Sequence[str], env: Mapping[str, str] | None, cwd: Path | None, limits: ChildLimits | None
) -> asyncio.subprocess.Process:
    parent = os.getpid()
    rlimits = limits.rlimits() if limits is not None else []
    return await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_environment(env),
        cwd=cwd,
        start_new_session=True,
        preexec_fn=lambda: _die_with_parent(parent, rlimits),
    )


def _signal_group(pid: int, signum: int) -> None:
    # The child leads its own group (start_new_session): the signal reaches what it started, too. Linux
    # reuses no pid while a group of that id exists, so signalling after the leader exited is safe.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


class _LineBudget:
    """At most MAX_LINES_PER_SECOND lines a second; the number of dropped lines is logged once a second."""

    def __init__(self, log: Any) -> None:
        self.log = log
        self.window = time.monotonic()
        self.count = 0
        self.dropped = 0

    def allow(self) -> bool:
        now = time.monotonic()
        if now - self.window >= 1.0:
            self.flush()
            self.window, self.count = now, 0
        self.count += 1
        if self.count > MAX_LINES_PER_SECOND:
            self.dropped += 1
            return False
        return True

    def flush(self) -> None:
        if self.dropped:
            self.log.warning("service_output_dropped", lines=self.dropped)
            self.dropped = 0


async def _log_lines(
    stream: asyncio.StreamReader | None, budget: _LineBudget, tail: deque[str] | None = None
) -> None:
    if stream is None:
        return
    pending = b""
    skipping = False  # the rest of a line that was already cut

    def emit(raw: bytes) -> None:
        text = raw.decode("utf-8", errors="replace").rstrip()
        if text and tail is not None:
            tail.append(text[:MAX_LINE_CHARS])
        if text and budget.allow():
            budget.log.info("service_output", line=text[:MAX_LINE_CHARS])

    while chunk := await stream.read(65536):
        pending += chunk
        *lines, pending = re.split(rb"[\r\n]", pending)
        for line in lines:
            if not skipping:
                emit(line)
            skipping = False
        if len(pending) > MAX_LINE_CHARS * 4:
            if not skipping:
                emit(pending)
            skipping, pending = True, b""
    if pending and not skipping:
        emit(pending)


class ChildProcess:
    """A supervised child process (see ProcessSupervisor.start)."""

    def __init__(
        self,
        supervisor: ProcessSupervisor,
        key: str,
        command: tuple[str, ...],
        env: Mapping[str, str] | None,
        cwd: Path | None,
        *,
        restart: bool,
        limits: ChildLimits | None = None,
    ) -> None:
        self.supervisor = supervisor
        self.key = key
        self.command = command
        self.env = env
        self.cwd = cwd
        self.restart = restart
        self.limits = limits
        self.restarts = 0
        self.returncode: int | None = None
        self.exit: ChildExit | None = None
        """How the last run ended (None while the first runs)."""
        self.log = supervisor.log.bind(child=key)
        self._process: asyncio.subprocess.Process | None = None
        self._stopping = False
        self._wake = asyncio.Event()
        self._done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        """The running process's id (None between a crash and its restart, and after the end)."""
        process = self._process
        return process.pid if process is not None and process.returncode is None else None

    async def wait(self) -> int | None:
        """Wait until the child has ended for good (stopped, or exited without `restart`)."""
        await self._done.wait()
        return self.returncode

    async def stop(self) -> int | None:
        """SIGTERM to the child's process group; SIGKILL after the supervisor's stop_timeout."""
        self._stopping = True
        self._wake.set()
        self._signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(self.supervisor.stop_timeout):
                await self._done.wait()
        except TimeoutError:
            self.log.warning("service_child_killed", timeout=self.supervisor.stop_timeout)
            self._signal(signal.SIGKILL)
            await self._done.wait()
        return self.returncode

    def _signal(self, signum: int) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            _signal_group(process.pid, signum)

    async def _supervise(self, first: asyncio.subprocess.Process) -> None:
        supervisor = self.supervisor
        process: asyncio.subprocess.Process | None = first
        failures = 0
        try:
            while True:
                started = time.monotonic()
                if process is not None:
                    self.returncode = await self._run(process)
                if self._stopping or not self.restart:
                    return
                stable = process is not None and time.monotonic() - started >= supervisor.stable_after
                failures = 1 if stable else failures + 1
                delay = backoff_delay(failures, supervisor.backoff_base, supervisor.backoff_max)
                self.log.warning(
                    "service_child_restarting",
                    returncode=self.returncode,
                    limit_exceeded=self.exit.limit_exceeded if self.exit else None,
                    retry_in=round(delay, 3),
                )
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                if self._stopping:
                    return
                try:
                    process = await _spawn(self.command, self.env, self.cwd, self.limits)
                except OSError as exc:
                    self.log.warning("service_child_spawn_failed", error=str(exc))
                    process = None
                    continue
                self._started(process)
                self.restarts += 1
                supervisor.metrics.restarts.labels(supervisor.service).inc()
                if self._stopping:
                    _signal_group(process.pid, signal.SIGTERM)
        finally:
            if self._process is not None and self._process.returncode is None:
                _signal_group(self._process.pid, signal.SIGKILL)
            supervisor._forget(self)
            self._done.set()

    def _started(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self.supervisor.metrics.children.labels(self.supervisor.service).inc()
        self.log.info("service_child_started", pid=process.pid, command=self.command[0])

    async def _run(self, process: asyncio.subprocess.Process) -> int:
        supervisor = self.supervisor
        budgets = [_LineBudget(self.log.bind(stream=name)) for name in ("stdout", "stderr")]
        stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        readers = [
            asyncio.create_task(_log_lines(stream, budget, tail))
            for stream, budget, tail in zip(
                (process.stdout, process.stderr), budgets, (None, stderr_tail), strict=True
            )
        ]
        started = time.monotonic()
        try:
            returncode = await process.wait()
        finally:
            supervisor.metrics.children.labels(supervisor.service).dec()
            # Whatever the child left in its group goes with it (and releases the pipes).
            _signal_group(process.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.supervisor.stop_timeout):
                    await asyncio.gather(*readers, return_exceptions=True)
            for reader in readers:
                reader.cancel()
            for budget in budgets:
                budget.flush()
        stopped = self._stopping
        lasted = time.monotonic() - started
        self.exit = ChildExit(
            returncode=returncode,
            signal=-returncode if returncode < 0 else None,
            stopped=stopped,
            limit_exceeded=_limit_exceeded(
                self.limits, returncode, stopped=stopped, lasted=lasted, stderr_tail=stderr_tail
            ),
        )
        self.log.info(
            "service_child_exited",
            pid=process.pid,
            returncode=returncode,
            limit_exceeded=self.exit.limit_exceeded,
        )
        return returncode


class ProcessSupervisor:
    """The child processes of one service, started and stopped at runtime by key (e.g. a stream's id).

    Every child is stopped when its service stops or restarts."""

    def __init__(self, service: str, spec: ServiceSpec, metrics: ServiceMetrics, log: Any) -> None:
        self.service = service
        self.stop_timeout = spec.stop_timeout
        self.backoff_base = spec.backoff_base
        self.backoff_max = spec.backoff_max
        self.stable_after = spec.stable_after
        self.metrics = metrics
        self.log = log
        self._children: dict[str, ChildProcess] = {}

    @property
    def children(self) -> Mapping[str, ChildProcess]:
        """The children that have not ended for good, by key."""
        return dict(self._children)

    async def start(
        self,
        key: str,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        restart: bool = False,
        limits: ChildLimits | None = None,
    ) -> ChildProcess:
        """Start `command` (no shell) as the child `key`. With `restart`, it is started again (with the
        service's backoff) whenever it exits until stopped; without, its exit ends it (see `wait()`).
        `limits` caps its memory, CPU time, open files and processes (ChildLimits); `child.exit` says how
        each run ended and which limit it most likely hit.
        Raises ServiceError when `key` is taken or a limit is above this process's own hard limit, and
        OSError when the program cannot be started."""
        if key in self._children:
            raise ServiceError(f"service {self.service} already has a child {key!r}")
        argv = tuple(command)
        if not argv:
            raise ServiceError("a child process needs a command")
        if limits is not None:
            limits.check()
        child = ChildProcess(self, key, argv, env, cwd, restart=restart, limits=limits)
        spawning = asyncio.ensure_future(_spawn(argv, env, cwd, limits))
        try:
            process = await asyncio.shield(spawning)
        except asyncio.CancelledError:
            # Cancelled after the fork: asyncio would kill only the child, leaving what it started.
            with contextlib.suppress(OSError):
                started = await spawning
                _signal_group(started.pid, signal.SIGKILL)
                await started.wait()
            raise
        self._children[key] = child
        child._started(process)
        child._task = asyncio.create_task(child._supervise(process), name=f"service {self.service} {key}")
        return child

    def get(self, key: str) -> ChildProcess | None:
        return self._children.get(key)

    async def stop(self, key: str) -> int | None:
        """Stop the child `key` (SIGTERM, then SIGKILL after stop_timeout); its exit status, if it had one."""
        child = self._children.get(key)
        if child is None:
            return None
        return await child.stop()

    async def stop_all(self) -> None:
        await asyncio.gather(*(child.stop() for child in list(self._children.values())))

    def _forget(self, child: ChildProcess) -> None:
        if self._children.get(child.key) is child:
            del self._children[child.key]


# ------------------------------------------------------------------ services


class ServiceMetrics:
    """pentad_service_up, pentad_service_restarts_total and pentad_service_children, by service."""

    def __init__(self, metrics: Metrics) -> None:
        self.up = metrics.gauge(
            "pentad_service_up", "1 while the service runs in this process, 0 while it is down.", ("service",)
        )
        self.restarts = metrics.counter(
            "pentad_service_restarts_total",
            "Restarts of a service, or of one of its child processes, after it failed or exited.",
            ("service",),
        )
        self.children = metrics.gauge(
            "pentad_service_children", "Child processes of the service running now.", ("service",)
        )


class _Runner:
    """Runs one service, restarting it with backoff, until stopped."""

    def __init__(self, spec: ServiceSpec, platform: AppContext, metrics: ServiceMetrics) -> None:
        self.spec = spec
        self.metrics = metrics
        self.log = logger.bind(service=spec.name)
        self.processes = ProcessSupervisor(spec.name, spec, metrics, self.log)
        self.context = ServiceContext(spec.name, platform, self.processes, self.log)
        self.state: Literal["running", "waiting", "stopped"] = "stopped"
        self.since = time.time()
        self.failures = 0
        self.restarts = 0
        self.on_change: Callable[[], None] = lambda: None
        self._stopping = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._set("running")
        self._task = asyncio.create_task(self._loop(), name=f"service {self.spec.name}")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        self._task.cancel()
        # Its children get stop_timeout after SIGTERM; a service that ignores cancellation is left behind.
        done, _ = await asyncio.wait([self._task], timeout=self.spec.stop_timeout * 2 + 1)
        if not done:
            self.log.error("service_did_not_stop")

    def snapshot(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "since": self.since,
            "failures": self.failures,
            "restarts": self.restarts,
            "stable_after": self.spec.stable_after,
            "critical": self.spec.critical,
        }

    def _set(self, state: Literal["running", "waiting", "stopped"]) -> None:
        self.state, self.since = state, time.time()
        self.metrics.up.labels(self.spec.name).set(1 if state == "running" else 0)
        self.on_change()

    async def _loop(self) -> None:
        spec = self.spec
        try:
            while not self._stopping:
                self._set("running")
                self.log.info("service_started", restarts=self.restarts)
                lasted = await self._run_once()
                await self._stop_children()
                if self._stopping:
                    break
                self.failures = 1 if lasted >= spec.stable_after else self.failures + 1
                delay = backoff_delay(self.failures, spec.backoff_base, spec.backoff_max)
                self._set("waiting")
                event = "service_crash_loop" if self.failures >= CRASH_LOOP_FAILURES else "service_restarting"
                self.log.warning(event, failures=self.failures, retry_in=round(delay, 3))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                if not self._stopping:
                    self.restarts += 1
                    self.metrics.restarts.labels(spec.name).inc()
        finally:
            await self._stop_children()
            self._set("stopped")
            self.log.info("service_stopped")

    async def _run_once(self) -> float:
        """Run the service once; how many seconds it lasted."""
        started = time.monotonic()
        try:
            await self.spec.run(self.context)
        except Exception:
            lasted = time.monotonic() - started
            self.log.exception("service_failed")
        else:
            lasted = time.monotonic() - started
            self.log.warning("service_exited")
        return lasted

    async def _stop_children(self) -> None:
        # Shielded: a service cancelled at shutdown still takes its children down with it.
        await asyncio.shield(self.processes.stop_all())


def _status(snapshot: Mapping[str, Any], now: float) -> ServiceStatus:
    state = snapshot["state"]
    looping = snapshot["failures"] >= CRASH_LOOP_FAILURES
    if state == "running":
        # After a crash loop a run counts as healthy only once it has lasted stable_after.
        return "crash_loop" if looping and now - snapshot["since"] < snapshot["stable_after"] else "running"
    if state == "waiting":
        return "crash_loop" if looping else "restarting"
    return "stopped"


def _health(snapshot: Mapping[str, Any], now: float) -> ServiceHealth:
    return ServiceHealth(
        status=_status(snapshot, now), critical=snapshot["critical"], restarts=snapshot["restarts"]
    )


class _Group:
    """The services of one placement in this process. With a lock file, only the process holding it on
    this node runs them; the others stand by, report the holder's status file and take over."""

    def __init__(self, runners: list[_Runner], lock_path: Path | None) -> None:
        self.runners = runners
        self.lock_path = lock_path
        self.status_path = lock_path.with_suffix(".json") if lock_path else None
        self.holding = False
        self._lock_fd: int | None = None
        self._standby: asyncio.Task[None] | None = None
        for runner in runners:
            runner.on_change = self._write_status

    async def start(self) -> None:
        if self._try_lock():
            self._run()
        else:
            logger.info("services_standby", services=[runner.spec.name for runner in self.runners])
            self._standby = asyncio.create_task(self._wait_for_lock(), name="services standby")

    async def stop(self) -> None:
        if self._standby is not None:
            self._standby.cancel()
            await asyncio.gather(self._standby, return_exceptions=True)
        await asyncio.gather(*(runner.stop() for runner in self.runners))
        if self._lock_fd is not None:
            if self.status_path is not None:
                self.status_path.unlink(missing_ok=True)
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None

    def health(self, now: float) -> dict[str, ServiceHealth]:
        if self.holding or self.status_path is None:
            return {runner.spec.name: _health(runner.snapshot(), now) for runner in self.runners}
        try:
            held: dict[str, Any] = json.loads(self.status_path.read_text())
        except (OSError, ValueError):
            held = {}
        result = {}
        for runner in self.runners:
            name = runner.spec.name
            if name in held:
                result[name] = _health(held[name], now)
            else:
                result[name] = ServiceHealth(status="standby", critical=runner.spec.critical, restarts=0)
        return result

    def _run(self) -> None:
        self.holding = True
        for runner in self.runners:
            runner.start()

    def _try_lock(self) -> bool:
        if self.lock_path is None:
            return True
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    async def _wait_for_lock(self) -> None:
        while True:
            if self._try_lock():
                break
            await asyncio.sleep(STANDBY_POLL_SECONDS)
        logger.info("services_taken_over", services=[runner.spec.name for runner in self.runners])
        self._run()

    def _write_status(self) -> None:
        if self.status_path is None or not self.holding:
            return
        snapshot = {runner.spec.name: runner.snapshot() for runner in self.runners}
        partial = self.status_path.with_suffix(".tmp")
        try:
            partial.write_text(json.dumps(snapshot))
            partial.replace(self.status_path)
        except OSError:
            logger.warning("services_status_not_written", path=str(self.status_path), exc_info=True)


class Services:
    """The services of the enabled apps, and those this process runs (Platform.services)."""

    def __init__(self, specs: Sequence[ServiceSpec], *, platform: AppContext, metrics: Metrics) -> None:
        self.specs: dict[str, ServiceSpec] = {}
        for spec in specs:
            if spec.name in self.specs:
                raise ServiceError(f"two services are named {spec.name!r}")
            self.specs[spec.name] = spec
        self.platform = platform
        self._metrics: ServiceMetrics | None = None
        self._metrics_source = metrics
        self._groups: list[_Group] = []
        self._disabled: dict[str, ServiceSpec] = {}

    @property
    def metrics(self) -> ServiceMetrics:
        # Registered on first start only: a platform that runs no service exposes no service metrics.
        if self._metrics is None:
            self._metrics = ServiceMetrics(self._metrics_source)
        return self._metrics

    def lock_path(self, placement: Placement) -> Path:
        return self.platform.data_dir / "services" / f"{placement}.lock"

    async def start(self, placements: Iterable[Placement]) -> None:
        """Start (or stand by for) the services of these placements, once per node (see the module text)."""
        for placement in placements:
            specs = self._enabled([spec for spec in self.specs.values() if spec.placement == placement])
            if specs:
                await self._start_group(specs, self.lock_path(placement))

    def _enabled(self, specs: list[ServiceSpec]) -> list[ServiceSpec]:
        """The specs whose `enabled` says they run; the others are noted as disabled."""
        running = []
        for spec in specs:
            if spec.enabled is None or spec.enabled(self.platform):
                running.append(spec)
            else:
                self._disabled[spec.name] = spec
                logger.info("service_disabled", service=spec.name)
        return running

    async def start_own(self, name: str) -> None:
        """Start one `own` service in this process (`pentad run-service NAME`)."""
        spec = self.specs.get(name)
        if spec is None:
            own = ", ".join(sorted(n for n, s in self.specs.items() if s.placement == "own")) or "none"
            raise ServiceError(f"no service named {name!r} (services of their own: {own})")
        if spec.placement != "own":
            raise ServiceError(f"service {name!r} runs inside `pentad {spec.placement}`, not on its own")
        if spec.enabled is not None and not spec.enabled(self.platform):
            raise ServiceError(f"service {name!r} is disabled by its app's settings")
        await self._start_group([spec], None)

    async def _start_group(self, specs: list[ServiceSpec], lock_path: Path | None) -> None:
        runners = [_Runner(spec, self.platform, self.metrics) for spec in specs]
        group = _Group(runners, lock_path)
        self._groups.append(group)
        await group.start()

    async def stop(self) -> None:
        """Stop every service this process runs, and their children; release the node locks."""
        groups, self._groups = self._groups, []
        self._disabled.clear()
        await asyncio.gather(*(group.stop() for group in groups))

    def health(self) -> dict[str, ServiceHealth]:
        """The health of the services this process runs or stands by for, by name."""
        now = time.time()
        health = {
            name: ServiceHealth(status="disabled", critical=False, restarts=0) for name in self._disabled
        }
        health.update((name, found) for group in self._groups for name, found in group.health(now).items())
        return health

    @staticmethod
    def ready(health: Mapping[str, ServiceHealth]) -> bool:
        """False while a critical service is not running."""
        return all(h.status in HEALTHY_STATUSES for h in health.values() if h.critical)
