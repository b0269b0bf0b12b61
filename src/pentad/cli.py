"""The `pentad` command: serve, migrate, workers and jobs, users, API keys, service tokens, settings, keys.

Each command imports what it needs when it runs: loading the platform (FastAPI, SQLAlchemy, the apps'
routers) takes seconds, and `pentad --help`, `pentad config show` or `pentad keys generate` need none of
it. The installed apps' groups (`pentad chat …`) load only when one of them is run (pentad/apps).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar, cast

import click

from pentad.agent.cli import agent
from pentad.apps import INSTALLED, enabled_apps, enabled_names
from pentad.core.auth.permissions import ADMIN, GLOBAL_ROLES, MEMBER

if TYPE_CHECKING:
    from pentad.core.auth.service import AuthService
    from pentad.core.config import Settings
    from pentad.core.jobs.models import JobStatus
    from pentad.core.platform import Platform

T = TypeVar("T")

DEFAULT_ADMIN_EMAIL = "admin@example.com"
FIRST_ADMIN_PASSWORD_FILE = "first-admin-password"  # noqa: S105 (a file name)


def _settings() -> Settings:
    """The environment's settings, the enabled apps' included; an invalid one stops with one line."""
    from pentad.core.config import SettingsError, load_settings

    try:
        settings = load_settings()
        for name in enabled_names(settings):
            model = INSTALLED[name].load_settings()
            if model is not None:
                settings.app_settings(name, model)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    return settings


def _warn_of_unknown_settings() -> None:
    """One stderr line per PENTAD_ variable that names no setting (a typo, an app not installed)."""
    from pentad.core.config import SettingsError, load_settings, unknown_settings

    try:
        settings = load_settings()
        from pentad.agent.settings import AgentSettings

        apps = {name: app.load_settings() for name, app in INSTALLED.items()}
        warnings = unknown_settings(settings, {**apps, "agent": AgentSettings})
    except SettingsError:
        return  # the command itself stops with the error
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)


def _log_to_stderr() -> None:
    """A command's output is its stdout (scripts read it); log lines of a command go to stderr. `serve`,
    `worker` and `run-service` send theirs to stdout again, as a server's log."""
    from pentad.core.config import LogSettings, SettingsError, load_settings
    from pentad.core.logging import configure_logging

    try:
        log = load_settings().log
    except SettingsError:
        log = LogSettings()
    configure_logging(log, stream=cast(TextIO, _CurrentStderr()))


class _CurrentStderr:
    """Whatever `sys.stderr` is when a line is written (a test runner swaps it per command)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _platform() -> Platform:
    """The platform of the environment's settings and enabled apps."""
    from pentad.core.cli_support import build_platform

    settings = _settings()
    return build_platform(enabled_apps(settings), settings, installed=INSTALLED)


def _run(work: Callable[[Platform, AuthService], Awaitable[T]]) -> T:
    """Run `work` in one committed transaction on a platform built from the environment."""
    from pentad.core.auth.service import AuthService
    from pentad.core.cli_support import run_in_transaction

    settings = _settings()
    return run_in_transaction(
        lambda session, platform: work(platform, AuthService(session, platform)),
        apps=enabled_apps(settings),
        settings=settings,
        installed=INSTALLED,
    )


class _Pentad(click.Group):
    """The root command: the core's commands, and each installed app's group, loaded when it runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        apps = [name for name, app in INSTALLED.items() if app.cli]
        return sorted({*super().list_commands(ctx), *apps})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in INSTALLED:
            command = INSTALLED[cmd_name].load_cli()
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of `pentad --help`: an app's group by its declared help, without loading it."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names), default=0)
        rows = []
        for name in names:
            command = super().get_command(ctx, name)
            if command is None:
                rows.append((name, INSTALLED[name].cli_help))
            elif not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=_Pentad, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pentad")
def main() -> None:
    """Pentad: a self-hosted real-time platform."""
    # Files Pentad creates (database, uploads, generated keys) are readable by its own user only.
    os.umask(0o077)
    _log_to_stderr()
    _warn_of_unknown_settings()


# ----------------------------------------------------------------------- serve


@main.command()
@click.option("--host", help="Bind address (default: PENTAD_SERVER__HOST).")
@click.option("--port", type=int, help="Port (default: PENTAD_SERVER__PORT).")
@click.option("--workers", type=int, help="Worker processes (default: PENTAD_SERVER__WORKERS).")
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the platform over HTTP (creates the first admin on an empty database)."""
    import uvicorn

    from pentad.core.realtime.wsserver import SERVE_PROTOCOL

    # The options are the settings, for the app factory too: links (base_url) follow the served port.
    if host is not None:
        os.environ["PENTAD_SERVER__HOST"] = host
    if port is not None:
        os.environ["PENTAD_SERVER__PORT"] = str(port)
    settings = _settings()
    _ensure_first_admin(settings)
    worker_count = workers or settings.server.workers
    # The workers read their settings from the environment: they must know they are not alone (the
    # credential cache keeps entries briefly when processes cannot tell each other of a revocation).
    os.environ["PENTAD_SERVER__WORKERS"] = str(worker_count)
    if worker_count > 1:
        _prepare_multiprocess_metrics(settings)
    uvicorn.run(
        "pentad.app:create_app_from_env",
        factory=True,
        host=settings.server.host,
        port=settings.server.port,
        workers=worker_count,
        loop="uvloop",
        http="httptools",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        # Writes the hub's events encoded once per event, not once per subscriber (core/realtime/wsserver.py).
        ws=SERVE_PROTOCOL,
        # Compression would run once per subscriber for every realtime frame (encode once, send many).
        ws_per_message_deflate=False,
        # The protocol layer refuses a larger frame (1009) from its header, before buffering it.
        ws_max_size=settings.realtime.max_message_bytes,
        log_config=None,
        # A worker answers uvicorn's health check only once the app is imported; on a busy small machine
        # that takes longer than uvicorn's 5 s, which would restart the workers for ever.
        timeout_worker_healthcheck=60,
    )


def _prepare_multiprocess_metrics(settings: Settings) -> None:
    """Several workers share their metrics through files; start from an empty folder (metrics.py)."""
    from pentad.core.metrics import MULTIPROCESS_DIR_VARIABLE

    folder = Path(os.environ.get(MULTIPROCESS_DIR_VARIABLE) or settings.data_dir / "prometheus")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ[MULTIPROCESS_DIR_VARIABLE] = str(folder)


def _ensure_first_admin(settings: Settings) -> None:
    from pentad.core.crypto import write_private_file

    email = settings.admin.email or DEFAULT_ADMIN_EMAIL
    password = settings.admin.password.get_secret_value() if settings.admin.password else None
    generated = password is None
    chosen = password or secrets.token_urlsafe(18)

    async def work(_platform: Platform, service: AuthService) -> bool:
        return await service.ensure_first_admin(email, chosen) is not None

    if _run(work) and generated:
        # Never logged: a supervisor that captures stderr (systemd, Kubernetes) would keep it. The file is
        # for the operator; a terminal also gets it once.
        path = settings.data_dir / FIRST_ADMIN_PASSWORD_FILE
        write_private_file(path, chosen + "\n")
        click.echo(f"Created the first admin: {email}", err=True)
        if sys.stderr.isatty():
            click.echo(f"Its password: {chosen}", err=True)
        click.echo(
            f"The generated password is in {path} (readable by this user only). Sign in, change it "
            "(Account > Password), then delete the file.",
            err=True,
        )


@main.command()
@click.option(
    "--check",
    is_flag=True,
    help="Change nothing: exit 0 when the schema is up to date for this version, 1 when migrations are "
    "pending (a pod's init step waits on it while the migration job runs).",
)
@click.option(
    "--wait",
    type=click.IntRange(0, 86400),
    default=0,
    help="With --check: keep checking every 2 s for up to this many seconds.",
)
def migrate(*, check: bool, wait: int) -> None:
    """Bring the database schema up to date (core and enabled apps)."""
    from pentad.core.crypto import CryptoError, load_keyring
    from pentad.core.db.migrate import pending, upgrade

    settings = _settings()
    if check:
        deadline = time.monotonic() + wait
        while missing := pending(settings.database.url, enabled_apps(settings)):
            if time.monotonic() >= deadline:
                raise click.ClickException("migrations pending: " + ", ".join(missing))
            time.sleep(2)
        click.echo("Database is up to date.")
        return
    try:
        keyring = load_keyring(settings)
    except CryptoError:
        keyring = None  # only a migration that moves encrypted values needs it, and says so
    upgrade(settings.database.url, enabled_apps(settings), keyring=keyring)
    click.echo("Database is up to date.")


# ------------------------------------------------------------------------ users


@main.group()
def user() -> None:
    """Manage user accounts."""


@user.command("create")
@click.option("--email", required=True)
@click.option("--password", help="Omit to be prompted (keeps it out of shell history).")
@click.option("--name", "display_name", help="Display name.")
@click.option(
    "--role", "roles", multiple=True, type=click.Choice(GLOBAL_ROLES), help="Repeatable; default member."
)
def user_create(email: str, password: str | None, display_name: str | None, roles: tuple[str, ...]) -> None:
    """Create a user."""
    from pentad.core import audit

    password = password or click.prompt("Password", hide_input=True, confirmation_prompt=True)
    chosen_roles = list(roles) or [MEMBER]
    if ADMIN in chosen_roles and MEMBER not in chosen_roles:
        chosen_roles.append(MEMBER)

    async def work(_platform: Platform, service: AuthService) -> str:
        created = await service.create_user(
            email=email, password=password, display_name=display_name, roles=chosen_roles, actor=audit.SYSTEM
        )
        return str(created.id)

    click.echo(f"Created user {_run(work)} ({email}).")


@user.command("reset-link")
@click.argument("email")
def user_reset_link(email: str) -> None:
    """Print a single-use password reset link (for installs without a mail relay)."""
    from pentad.core import audit

    async def work(_platform: Platform, service: AuthService) -> str:
        found = await service.get_user_by_email(email)
        return await service.new_password_reset_link(found, audit.SYSTEM)

    link = _run(work)
    click.echo(f"Give this link to the user over a trusted channel; it works once: {link}")


@user.command("list")
def user_list() -> None:
    """List users."""

    async def work(_platform: Platform, service: AuthService) -> list[tuple[str, ...]]:
        users, _ = await service.list_users(search=None, limit=10_000, offset=0)
        return [
            (
                u.email,
                ",".join(sorted(u.roles)),
                "active" if u.is_active else "disabled",
                "2fa" if u.totp_enabled else "",
            )
            for u in users
        ]

    for row in _run(work):
        click.echo("\t".join(row))


def _set_active(email: str, *, active: bool) -> None:
    from pentad.core import audit

    async def work(_platform: Platform, service: AuthService) -> None:
        found = await service.get_user_by_email(email)
        await service.update_user(found.id, is_active=active, actor=audit.SYSTEM)

    _run(work)


@user.command("disable")
@click.argument("email")
def user_disable(email: str) -> None:
    """Disable a user and end their sessions."""
    _set_active(email, active=False)
    click.echo(f"Disabled {email}.")


@user.command("enable")
@click.argument("email")
def user_enable(email: str) -> None:
    """Re-enable a disabled user."""
    _set_active(email, active=True)
    click.echo(f"Enabled {email}.")


@user.command("grant")
@click.argument("email")
@click.argument("role")
@click.option("--resource", help="TYPE:ID to grant a role on one resource instead of a global role.")
def user_grant(email: str, role: str, resource: str | None) -> None:
    """Give a user a global role, or a role on one resource (--resource chat.channel:ID)."""
    from pentad.core import audit

    async def work(_platform: Platform, service: AuthService) -> None:
        found = await service.get_user_by_email(email)
        if resource:
            resource_type, sep, resource_id = resource.partition(":")
            if not sep or not resource_id:
                raise click.BadParameter("use TYPE:ID", param_hint="--resource")
            await service.grant(found.id, resource_type, resource_id, role, actor=audit.SYSTEM)
        else:
            await service.update_user(found.id, roles=[*found.roles, role], actor=audit.SYSTEM)

    _run(work)
    click.echo(f"Granted {role} to {email}" + (f" on {resource}." if resource else "."))


# --------------------------------------------------------------------- API keys


@main.group()
def apikey() -> None:
    """Manage API keys."""


@apikey.command("create")
@click.option("--email", required=True, help="Owner of the key.")
@click.option("--name", required=True)
@click.option(
    "--scope", "scopes", multiple=True, help="Permission key (repeatable); default: all of the owner's."
)
@click.option("--expires-days", type=click.IntRange(1, 3650))
def apikey_create(email: str, name: str, scopes: tuple[str, ...], expires_days: int | None) -> None:
    """Create an API key; it is printed once."""
    from pentad.core import audit

    async def work(_platform: Platform, service: AuthService) -> str:
        owner = await service.get_user_by_email(email)
        _, token = await service.create_api_key(
            owner, name=name, scopes=list(scopes) or ["*"], expires_in_days=expires_days, actor=audit.SYSTEM
        )
        return token

    token = _run(work)
    click.echo("API key (shown only now):", err=True)
    click.echo(token)


@apikey.command("list")
@click.option("--email", help="Only this user's keys.")
def apikey_list(email: str | None) -> None:
    """List API keys (never the keys themselves)."""

    async def work(_platform: Platform, service: AuthService) -> list[str]:
        owner = (await service.get_user_by_email(email)).id if email else None
        keys = await service.list_api_keys(owner)
        return [
            f"{k.id}\t{k.hint}\t{k.name}\t{','.join(k.scopes)}\t{'revoked' if k.revoked_at else 'active'}"
            for k in keys
        ]

    for line in _run(work):
        click.echo(line)


@apikey.command("revoke")
@click.argument("key_id", type=click.UUID)
def apikey_revoke(key_id: uuid.UUID) -> None:
    """Revoke an API key by id."""
    from pentad.core import audit

    async def work(_platform: Platform, service: AuthService) -> None:
        await service.revoke_api_key(key_id, audit.SYSTEM)

    _run(work)
    click.echo(f"Revoked {key_id}.")


# --------------------------------------------------------------- service tokens


@main.group("service-token")
def service_token() -> None:
    """Manage service tokens for machine clients (agents, scrapers)."""


@service_token.command("create")
@click.option("--name", required=True)
@click.option("--scope", "scopes", multiple=True, required=True, help="Permission key (repeatable).")
@click.option("--expires-days", type=click.IntRange(1, 3650))
def service_token_create(name: str, scopes: tuple[str, ...], expires_days: int | None) -> None:
    """Issue a service token; it is printed once."""
    from pentad.core import audit

    async def work(_platform: Platform, service: AuthService) -> str:
        _, token = await service.create_service_token(
            name=name, scopes=list(scopes), expires_in_days=expires_days, actor=audit.SYSTEM
        )
        return token

    token = _run(work)
    click.echo("Service token (shown only now):", err=True)
    click.echo(token)


# ------------------------------------------------------------------------- jobs


@main.command()
@click.option(
    "--concurrency", type=click.IntRange(1, 256), help="Jobs run at once (default: PENTAD_JOBS__CONCURRENCY)."
)
@click.option("--burst", is_flag=True, help="Run the jobs that are due, then exit.")
@click.option(
    "--queue",
    "queues",
    multiple=True,
    metavar="NAME",
    help="Claim only jobs routed to this queue (repeatable; default: PENTAD_JOBS__QUEUES, else every queue).",
)
def worker(*, concurrency: int | None, burst: bool, queues: tuple[str, ...]) -> None:
    """Run background jobs until stopped (SIGTERM or Ctrl-C); start as many as needed, on any node.

    It also flushes the ingest streams' spools that crashed processes left behind."""
    from pentad.core.jobs.worker import Worker
    from pentad.core.logging import configure_logging
    from pentad.core.web.metrics_port import MetricsPort

    async def main() -> None:
        platform = _platform()
        configure_logging(platform.settings.log)
        unknown = sorted(set(queues) - set(platform.jobs.registry.queues))
        if unknown:
            await platform.close()
            raise click.BadParameter(
                f"no job is routed to {', '.join(unknown)}; known queues: "
                + ", ".join(platform.jobs.registry.queues),
                param_hint="--queue",
            )
        runner = Worker(platform, concurrency=concurrency, queues=queues)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, runner.stop)
        jobs = platform.settings.jobs
        metrics_port = None
        if jobs.metrics_port is not None and not burst:
            metrics_port = MetricsPort(platform, jobs.metrics_host, jobs.metrics_port)
        try:
            await platform.open_resources()
            await platform.ingest.start()
            if metrics_port is not None:
                await metrics_port.start()
            if not burst:
                await platform.services.start(("worker",))
            await runner.run(until_idle=burst)
        finally:
            if metrics_port is not None:
                await metrics_port.close()
            await platform.close()

    try:
        asyncio.run(main())
    except RuntimeError as exc:  # a burst that could not reach the database
        raise click.ClickException(str(exc)) from None


@main.command("run-service")
@click.argument("name")
def run_service(name: str) -> None:
    """Run one service of placement `own` (AppSpec.services) until stopped (SIGTERM or Ctrl-C)."""
    from pentad.core.logging import configure_logging
    from pentad.core.services import ServiceError

    async def main() -> None:
        platform = _platform()
        configure_logging(platform.settings.log)
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopped.set)
        try:
            await platform.open_resources()
            await platform.services.start_own(name)
            await stopped.wait()
        finally:
            await platform.close()

    try:
        asyncio.run(main())
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from None


class _JobStatusType(click.ParamType["JobStatus"]):
    """A job state, checked against JobStatus when given (the job tables load only then)."""

    name = "status"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> JobStatus:
        from pentad.core.jobs.models import JobStatus

        try:
            return JobStatus(value)
        except ValueError:
            self.fail(f"{value!r} is not one of {', '.join(JobStatus)}.", param, ctx)


@main.group()
def jobs() -> None:
    """Inspect background jobs and retry dead ones."""


@jobs.command("list")
@click.option("--status", type=_JobStatusType(), help="Only jobs in this state.")
@click.option("--name", help="Only jobs of this kind.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
def jobs_list(status: JobStatus | None, name: str | None, limit: int) -> None:
    """List jobs, newest first: id, kind, state, attempts, due (or finished) time, last error."""
    from pentad.core.jobs.service import JobsService

    async def work(platform: Platform, service: AuthService) -> list[str]:
        found = await JobsService(service.session, platform).list_jobs(
            status=status, name=name, before=None, limit=limit
        )
        return [
            "\t".join(
                (
                    str(job.id),
                    job.name,
                    job.status,
                    str(job.attempts),
                    (job.finished_at or job.run_at).isoformat(timespec="seconds"),
                    job.last_error.splitlines()[-1] if job.last_error else "",
                )
            )
            for job in found
        ]

    for line in _run(work):
        click.echo(line)


@jobs.command("retry")
@click.argument("job_id", type=click.UUID)
def jobs_retry(job_id: uuid.UUID) -> None:
    """Queue a dead job again with a fresh set of attempts."""
    from pentad.core import audit
    from pentad.core.jobs.service import JobsService

    async def work(platform: Platform, service: AuthService) -> None:
        await JobsService(service.session, platform).retry_job(job_id, audit.SYSTEM)

    _run(work)
    click.echo(f"Queued job {job_id} again.")


# ---------------------------------------------------------------- settings, keys


@main.group()
def config() -> None:
    """Inspect settings."""


@config.command("show")
def config_show() -> None:
    """Print the effective settings, each installed app's too, secrets masked."""
    from pentad.core.config import SettingsError, masked

    settings = _settings()
    shown = masked(settings)
    for name, app in INSTALLED.items():
        model = app.load_settings()
        if model is None:
            continue
        try:
            shown[name] = masked(settings.app_settings(name, model))
        except SettingsError as exc:
            # Only a disabled app's settings can be invalid here: _settings() has checked the enabled ones.
            click.echo(f"warning: {exc} (app {name} is not enabled)", err=True)
            shown[name] = None
    click.echo(json.dumps(shown, indent=2, default=str))


@main.group()
def keys() -> None:
    """Manage the data-encryption keys (PENTAD_CRYPTO__KEYS)."""


@keys.command("generate")
def keys_generate() -> None:
    """Print a new `kid:key` entry; put it first in PENTAD_CRYPTO__KEYS, then run `pentad keys rotate`."""
    from pentad.core.crypto import generate_key

    click.echo(generate_key())


@keys.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every encrypted value with the first (active) key."""
    from pentad.core.db import keyrotation

    async def work(platform: Platform, service: AuthService) -> int:
        return await keyrotation.reencrypt_all(service.session, platform.keyring)

    count = _run(work)
    click.echo(f"Re-encrypted {count} value(s).")


main.add_command(agent)  # `pentad agent …` (pentad/agent/cli.py; loads nothing of the platform)
