"""`pentad panel …`: nodes, their enrolment tokens and templates, as an operator (the system acts)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TextIO, TypeVar

import click
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.panel import repository
from pentad.apps.panel.actions import nodes, templates
from pentad.apps.panel.actions.context import PanelContext
from pentad.apps.panel.exceptions import InvalidEgg
from pentad.apps.panel.schemas import EnrolmentTokenCreate
from pentad.apps.panel.spec import APP
from pentad.core import audit
from pentad.core.cli_support import run_in_transaction
from pentad.core.errors import AppError
from pentad.core.platform import Platform

T = TypeVar("T")


def _run(work: Callable[[PanelContext], Awaitable[T]]) -> T:
    async def run(session: AsyncSession, platform: Platform) -> T:
        return await work(PanelContext(session, platform, None, audit.SYSTEM))

    try:
        return run_in_transaction(run, apps=[APP])
    except AppError as exc:
        raise click.ClickException(exc.message) from None


@click.group(name="panel")
def panel() -> None:
    """Panel nodes, enrolment tokens and templates."""


@panel.command("node-token")
@click.argument("name")
@click.option("--ttl", type=click.IntRange(60, 604_800), default=None, help="Seconds the token is valid.")
def node_token(name: str, ttl: int | None) -> None:
    """A one-time enrolment token for the node NAME (a new node, or an existing one enrolled again, which
    replaces its credential). Prints the token and the command to run on the node."""

    async def work(context: PanelContext) -> tuple[str, str]:
        existing = await repository.get_node_by_name(context.session, name)
        data = (
            EnrolmentTokenCreate(node_id=existing.id, ttl=ttl)
            if existing is not None
            else EnrolmentTokenCreate(node_name=name, ttl=ttl)
        )
        created = await nodes.do_create_enrolment_token(context, data)
        return created.token, created.command

    try:
        token, command = _run(work)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(token)
    click.echo(f"On the node, run: {command}", err=True)


@panel.command("nodes")
def nodes_list() -> None:
    """Every node: id, status, servers, memory and disk allocated/capacity (MiB), name."""

    async def work(context: PanelContext) -> list[str]:
        return [
            f"{n.id}\t{n.status}{' (draining)' if n.draining else ''}\t{n.servers}\t"
            f"{n.allocated_memory_mb}/{n.memory_mb}\t{n.allocated_disk_mb}/{n.disk_mb}\t{n.name}"
            for n in await nodes.list_nodes(context)
        ]

    for line in _run(work):
        click.echo(line)


@panel.command("templates")
def templates_list() -> None:
    """Every template: id, slug, source, variables, name."""

    async def work(context: PanelContext) -> list[str]:
        return [
            f"{t.id}\t{t.slug}\t{t.source}\t{len(t.variables)}\t{t.name}"
            for t in await templates.list_templates(context)
        ]

    for line in _run(work):
        click.echo(line)


@panel.group("template")
def template_group() -> None:
    """Templates (eggs)."""


@template_group.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("--slug", default=None, help="The template's slug (default: made from the egg's name).")
@click.option("--replace", is_flag=True, help="Update the template of the same slug if it exists.")
def template_import(file: TextIO, slug: str | None, replace: bool) -> None:  # noqa: FBT001 - a click flag
    """Import a Pterodactyl/Pelican egg export (JSON FILE, `-` for stdin); prints the template's id and
    slug, and the import's warnings on stderr."""
    try:
        parsed = templates.read_egg_file(file.read())
    except InvalidEgg as exc:
        details = "".join(f"\n  {issue['msg']}" for issue in exc.extra.get("errors", []))
        raise click.ClickException(exc.message + details) from None
    if slug is not None:
        parsed.slug = slug

    async def work(context: PanelContext) -> tuple[str, str, bool, list[str]]:
        template, created = await templates.do_save_egg(context, parsed, replace=replace, source="egg")
        return str(template.id), template.slug, created, parsed.warnings

    template_id, saved_slug, created, warnings = _run(work)
    click.echo(f"{template_id}\t{saved_slug}\t{'created' if created else 'replaced'}")
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
