"""Schedules: a cron expression (five fields, UTC) and a chain of tasks (send a command, a power action,
make a backup) run in order, each after its delay; a failed task ends
the chain unless it says `continue_on_failure`; "only when online" skips a tick while the server is not
running. Every run is kept with each task's outcome (the history) and audited on the server.

How they run (core jobs): each enabled schedule has one queued job `panel.schedule_run` for its next tick
(`run_at` = the tick, dedupe key `panel.schedule:<id>:<tick>`). The job first queues the following tick,
then runs the chain; a change or deletion drops the queued job (`cancel_queued`) and queues the new tick.
A job whose tick is no longer the schedule's `next_run_at` (a change raced it) does nothing. "Run now"
queues a job of its own. Tasks run as the system on the author's behalf: creating or changing a schedule
needs, besides `schedule.create`/`schedule.update`, the key each task would need if done by hand
(`control.console` for a command, `control.start` for a start, …), so a schedule gives nobody more than
they hold.

Extension point: `register_task(action, runner, key)` adds a task kind; `backup` queues a backup (the
backups part's job) and needs `backup.create`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from croniter import croniter

from pentad.apps.panel import repository
from pentad.apps.panel.access import ServerAccess
from pentad.apps.panel.actions import backups, console, power
from pentad.apps.panel.actions.context import PanelContext
from pentad.apps.panel.exceptions import KeysNotHeld, ScheduleInvalid, ScheduleNotFound
from pentad.apps.panel.models import PanelSchedule, PanelScheduleRun
from pentad.apps.panel.permissions import (
    SERVER_CONSOLE,
    SERVER_RESOURCE,
    SERVER_RESTART,
    SERVER_SCHEDULE_CREATE,
    SERVER_SCHEDULE_DELETE,
    SERVER_SCHEDULE_READ,
    SERVER_SCHEDULE_UPDATE,
    SERVER_START,
    SERVER_STOP,
)
from pentad.apps.panel.schemas import ScheduleRead, ScheduleRunRead, ScheduleTask, ScheduleWrite
from pentad.core import audit
from pentad.core.audit import Actor
from pentad.core.auth.permissions import Permission
from pentad.core.context import JobContext
from pentad.core.db.base import utcnow, uuid7
from pentad.core.errors import AppError
from pentad.core.jobs.queue import cancel_queued, enqueue
from pentad.core.jobs.registry import JobSpec

RUN_JOB = "panel.schedule_run"
RUN_TIMEOUT = 3600.0
"""Seconds one run may take (its delays included: the tasks' delays may add up to MAX_TOTAL_DELAY)."""
MAX_TOTAL_DELAY = 3000
RUNS_LIMIT_MAX = 100

TaskRunner = Callable[[PanelContext, uuid.UUID, str], Awaitable[str]]
"""Runs one task on the server (acting as the system); returns what to show in the history, raises an
AppError when the task fails."""


@dataclass(frozen=True)
class TaskKind:
    runner: TaskRunner
    key: Callable[[str], Permission]
    """The key a task with this payload needs when done by hand (what the schedule's author must hold)."""


TASKS: dict[str, TaskKind] = {}


def register_task(action: str, runner: TaskRunner, key: Callable[[str], Permission]) -> None:
    """Add a task kind (`backup`: the backups part's runner, with `backup.create`)."""
    TASKS[action] = TaskKind(runner, key)


async def _command(panel: PanelContext, server_id: uuid.UUID, payload: str) -> str:
    await console.do_send_command(panel, server_id, payload)
    return "sent"


async def _power(panel: PanelContext, server_id: uuid.UUID, payload: str) -> str:
    result = await power.do_power(panel, server_id, cast("power.PowerAction", payload))
    return f"{payload}: {result.state}"


async def _backup(panel: PanelContext, server_id: uuid.UUID, payload: str) -> str:
    """A backup named `payload` (empty: the date), made by the backups part's job."""
    created = await backups.do_create_backup(panel, server_id, backups.BackupCreate(name=payload[:200]))
    return f"backup {created.id} queued"


POWER_KEYS = {"start": SERVER_START, "stop": SERVER_STOP, "kill": SERVER_STOP, "restart": SERVER_RESTART}
register_task("command", _command, lambda _: SERVER_CONSOLE)
register_task("power", _power, lambda payload: POWER_KEYS[payload])
register_task("backup", _backup, lambda _: backups.BACKUP_CREATE)


# ------------------------------------------------------------------ views and checks


def _read(schedule: PanelSchedule) -> ScheduleRead:
    return ScheduleRead(
        id=schedule.id,
        server_id=schedule.server_id,
        name=schedule.name,
        cron=schedule.cron,
        only_when_online=schedule.only_when_online,
        enabled=schedule.enabled,
        tasks=[ScheduleTask.model_validate(task) for task in schedule.tasks],
        next_run_at=schedule.next_run_at,
        last_run_at=schedule.last_run_at,
        created_at=schedule.created_at,
    )


def _run_read(run: PanelScheduleRun) -> ScheduleRunRead:
    return ScheduleRunRead(
        id=run.id,
        schedule_id=run.schedule_id,
        trigger=run.trigger,
        status=run.status,
        started_at=run.started_at,
        finished_at=run.finished_at,
        steps=run.steps,
    )


def next_tick(cron: str, after: datetime) -> datetime:
    tick: datetime = croniter(cron, after).get_next(datetime)
    return tick


def _tick_key(schedule_id: uuid.UUID, tick: datetime) -> str:
    return f"panel.schedule:{schedule_id}:{tick.isoformat()}"


def _check(panel: PanelContext, access: ServerAccess, data: ScheduleWrite) -> None:
    first = next_tick(data.cron, utcnow())
    if (next_tick(data.cron, first) - first).total_seconds() < panel.settings.schedule_min_interval:
        raise ScheduleInvalid(
            f"The schedule runs more often than every {panel.settings.schedule_min_interval} s."
        )
    if sum(task.delay_s for task in data.tasks) > MAX_TOTAL_DELAY:
        raise ScheduleInvalid(f"The tasks' delays add up to more than {MAX_TOTAL_DELAY} s.")
    missing: set[str] = set()
    for task in data.tasks:
        kind = TASKS.get(task.action)
        if kind is None:
            raise ScheduleInvalid(f"`{task.action}` tasks are not available on this panel yet.")
        key = kind.key(task.payload)
        if not panel.is_admin and not access.has(key):
            missing.add(key.key.removeprefix(SERVER_RESOURCE + "."))
    if missing:
        raise KeysNotHeld(sorted(missing))


async def _plan(panel: PanelContext, schedule: PanelSchedule) -> None:
    """Drop the queued run of the schedule's old tick; queue the next tick when it is enabled."""
    if schedule.next_run_at is not None:
        await cancel_queued(panel.session, dedupe_key=_tick_key(schedule.id, schedule.next_run_at))
    schedule.next_run_at = None
    if schedule.enabled:
        tick = next_tick(schedule.cron, utcnow())
        schedule.next_run_at = tick
        await enqueue(
            panel.session,
            RUN_JOB,
            {"schedule_id": str(schedule.id), "trigger": "cron", "due": tick.isoformat()},
            run_at=tick,
            dedupe_key=_tick_key(schedule.id, tick),
        )


async def _schedule(panel: PanelContext, access: ServerAccess, schedule_id: uuid.UUID) -> PanelSchedule:
    schedule = await repository.get_schedule(panel.session, schedule_id)
    if schedule is None or schedule.server_id != access.server.id:
        raise ScheduleNotFound()
    return schedule


# ------------------------------------------------------------------ API


async def list_schedules(panel: PanelContext, server_id: uuid.UUID) -> list[ScheduleRead]:
    access = await panel.access(server_id, SERVER_SCHEDULE_READ)
    return [_read(schedule) for schedule in await repository.list_schedules(panel.session, access.server.id)]


async def get_schedule(panel: PanelContext, server_id: uuid.UUID, schedule_id: uuid.UUID) -> ScheduleRead:
    access = await panel.access(server_id, SERVER_SCHEDULE_READ)
    return _read(await _schedule(panel, access, schedule_id))


def _fields(data: ScheduleWrite) -> dict[str, Any]:
    return {
        "name": data.name,
        "cron": data.cron,
        "only_when_online": data.only_when_online,
        "enabled": data.enabled,
        "tasks": [task.model_dump() for task in data.tasks],
    }


async def do_create_schedule(panel: PanelContext, server_id: uuid.UUID, data: ScheduleWrite) -> ScheduleRead:
    access = await panel.access(server_id, SERVER_SCHEDULE_CREATE)
    _check(panel, access, data)
    schedule = PanelSchedule(id=uuid7(), server_id=access.server.id, **_fields(data))
    panel.session.add(schedule)
    await panel.session.flush()
    await _plan(panel, schedule)
    await panel.session.flush()
    audit.record(
        panel.session, panel.audit_actor, "panel.schedule.create", resource_type=SERVER_RESOURCE,
        resource_id=str(access.server.id), schedule_id=str(schedule.id), name=schedule.name,
        cron=schedule.cron,
    )  # fmt: skip
    return _read(schedule)


async def do_update_schedule(
    panel: PanelContext, server_id: uuid.UUID, schedule_id: uuid.UUID, data: ScheduleWrite
) -> ScheduleRead:
    access = await panel.access(server_id, SERVER_SCHEDULE_UPDATE)
    schedule = await _schedule(panel, access, schedule_id)
    _check(panel, access, data)
    for field, value in _fields(data).items():
        setattr(schedule, field, value)
    await _plan(panel, schedule)
    await panel.session.flush()
    audit.record(
        panel.session, panel.audit_actor, "panel.schedule.update", resource_type=SERVER_RESOURCE,
        resource_id=str(access.server.id), schedule_id=str(schedule.id), name=schedule.name,
        cron=schedule.cron, enabled=schedule.enabled,
    )  # fmt: skip
    return _read(schedule)


async def do_delete_schedule(panel: PanelContext, server_id: uuid.UUID, schedule_id: uuid.UUID) -> None:
    access = await panel.access(server_id, SERVER_SCHEDULE_DELETE)
    schedule = await _schedule(panel, access, schedule_id)
    if schedule.next_run_at is not None:
        await cancel_queued(panel.session, dedupe_key=_tick_key(schedule.id, schedule.next_run_at))
    await panel.session.delete(schedule)
    await panel.session.flush()
    audit.record(
        panel.session, panel.audit_actor, "panel.schedule.delete", resource_type=SERVER_RESOURCE,
        resource_id=str(access.server.id), schedule_id=str(schedule_id), name=schedule.name,
    )  # fmt: skip


async def do_run_now(panel: PanelContext, server_id: uuid.UUID, schedule_id: uuid.UUID) -> ScheduleRead:
    """Queue a run of the schedule's chain at once (`schedule.update`); its next tick stays as it is."""
    access = await panel.access(server_id, SERVER_SCHEDULE_UPDATE)
    schedule = await _schedule(panel, access, schedule_id)
    await enqueue(panel.session, RUN_JOB, {"schedule_id": str(schedule.id), "trigger": "manual"})
    audit.record(
        panel.session, panel.audit_actor, "panel.schedule.run_now", resource_type=SERVER_RESOURCE,
        resource_id=str(access.server.id), schedule_id=str(schedule.id), name=schedule.name,
    )  # fmt: skip
    return _read(schedule)


async def list_runs(
    panel: PanelContext, server_id: uuid.UUID, schedule_id: uuid.UUID, limit: int = 20
) -> list[ScheduleRunRead]:
    """The schedule's latest runs, newest first (`schedule.read`)."""
    access = await panel.access(server_id, SERVER_SCHEDULE_READ)
    schedule = await _schedule(panel, access, schedule_id)
    runs = await repository.list_schedule_runs(panel.session, schedule.id, max(1, min(limit, RUNS_LIMIT_MAX)))
    return [_run_read(run) for run in runs]


# ------------------------------------------------------------------ the job


async def run_schedule(context: JobContext, payload: dict[str, Any]) -> None:
    """`panel.schedule_run`: queue the next tick (cron runs), then run the chain and keep its history."""
    from pentad.core.platform import Platform

    platform = cast("Platform", context.platform)
    schedule_id = uuid.UUID(str(payload["schedule_id"]))
    trigger = "manual" if payload.get("trigger") == "manual" else "cron"
    async with platform.database.transaction() as session:
        schedule = await repository.get_schedule(session, schedule_id)
        server = None if schedule is None else await repository.get_server(session, schedule.server_id)
        if schedule is None or server is None:
            return  # deleted since (with its server, or on its own)
        if trigger == "cron":
            due = datetime.fromisoformat(str(payload["due"]))
            if not schedule.enabled or schedule.next_run_at != due:
                return  # stale: the schedule changed after this tick was queued
            tick = next_tick(schedule.cron, max(utcnow(), due))
            schedule.next_run_at = tick
            following = {"schedule_id": str(schedule.id), "trigger": "cron", "due": tick.isoformat()}
            await enqueue(session, RUN_JOB, following, run_at=tick, dedupe_key=_tick_key(schedule.id, tick))
        schedule.last_run_at = utcnow()
        run = PanelScheduleRun(
            id=uuid7(), schedule_id=schedule.id, trigger=trigger, status="running", steps=[]
        )
        session.add(run)
        run_id, server_id, name, state = run.id, server.id, schedule.name, server.state
        tasks = [ScheduleTask.model_validate(task) for task in schedule.tasks]
        only_when_online = schedule.only_when_online
    actor = Actor("system", label=f"schedule {name}")
    steps: list[dict[str, Any]] = []
    status = "ok"
    if only_when_online and state != "running":
        status = "skipped"
        steps.append({"index": None, "action": None, "ok": True, "detail": f"the server is {state}"})
    else:
        for index, task in enumerate(tasks):
            if task.delay_s:
                await asyncio.sleep(task.delay_s)
            kind = TASKS.get(task.action)
            try:
                if kind is None:
                    raise ScheduleInvalid(f"`{task.action}` tasks are not available on this panel.")
                async with platform.database.transaction() as session:
                    detail = await kind.runner(
                        PanelContext(session, platform, None, actor), server_id, task.payload
                    )
                steps.append({"index": index, "action": task.action, "ok": True, "detail": detail})
            except AppError as exc:
                steps.append(
                    {
                        "index": index,
                        "action": task.action,
                        "ok": False,
                        "detail": f"{exc.code}: {exc.message}",
                    }
                )
                status = "failed"
                if not task.continue_on_failure:
                    break
    async with platform.database.transaction() as session:
        run_row = await repository.get_schedule_run(session, run_id)
        if run_row is not None:
            run_row.status, run_row.finished_at, run_row.steps = status, utcnow(), steps
        audit.record(
            session, actor, "panel.schedule.run", resource_type=SERVER_RESOURCE, resource_id=str(server_id),
            schedule_id=str(schedule_id), trigger=trigger, status=status,
        )  # fmt: skip


JOBS = [JobSpec(RUN_JOB, run_schedule, max_attempts=1, timeout=RUN_TIMEOUT)]
"""One attempt: a chain half run is not run again (its history says where it stopped)."""
