"""`pentad chat …`: administer chat tenants and their server keys, rebuild the search index."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.chat import repository, schemas
from pentad.apps.chat.spec import APP
from pentad.apps.chat.tenancy import TenantService
from pentad.core import audit
from pentad.core.cli_support import run_in_transaction
from pentad.core.platform import Platform

T = TypeVar("T")


def _run(work: Callable[[AsyncSession, Platform], Awaitable[T]]) -> T:
    """Run `work` in one committed transaction on a platform with the chat app."""

    return run_in_transaction(work, apps=[APP])


async def _tenant_id(session: AsyncSession, slug: str) -> uuid.UUID:
    tenant = await repository.get_tenant_by_slug(session, slug)
    if tenant is None:
        raise click.ClickException(f"No chat tenant {slug!r}.")
    return tenant.id


@click.group(name="chat")
def chat() -> None:
    """Chat tenants, server keys and the search index."""


@chat.group()
def tenant() -> None:
    """Chat tenants ("chat apps" that embed chat)."""


@tenant.command("create")
@click.argument("slug")
@click.option("--name", required=True, help="Display name.")
def tenant_create(slug: str, name: str) -> None:
    """Create a tenant."""

    async def work(session: AsyncSession, platform: Platform) -> uuid.UUID:
        data = schemas.TenantCreate(slug=slug, name=name)
        return (await TenantService(session, platform, audit.SYSTEM).create_tenant(data)).id

    click.echo(f"Created chat tenant {slug} ({_run(work)}).")


@tenant.command("list")
def tenant_list() -> None:
    """List tenants."""

    async def work(session: AsyncSession, _platform: Platform) -> list[str]:
        tenants = await repository.list_tenants(session)
        return [f"{t.slug}\t{t.id}\t{t.name}\t{'disabled' if t.disabled_at else 'active'}" for t in tenants]

    for line in _run(work):
        click.echo(line)


@chat.group()
def key() -> None:
    """Server keys (`pck_…`) of a tenant's backend."""


@key.command("create")
@click.argument("slug")
@click.option("--name", required=True, help="What the key is for.")
def key_create(slug: str, name: str) -> None:
    """Create a server key; it is printed once."""

    async def work(session: AsyncSession, platform: Platform) -> schemas.ServerKeyCreated:
        service = TenantService(session, platform, audit.SYSTEM)
        return await service.create_server_key(await _tenant_id(session, slug), name)

    created = _run(work)
    click.echo(f"Server key {created.id} for {slug} (shown once):")
    click.echo(created.key)


@key.command("revoke")
@click.argument("slug")
@click.argument("key_id", type=click.UUID)
def key_revoke(slug: str, key_id: uuid.UUID) -> None:
    """Revoke a server key."""

    async def work(session: AsyncSession, platform: Platform) -> None:
        service = TenantService(session, platform, audit.SYSTEM)
        await service.revoke_server_key(await _tenant_id(session, slug), key_id)

    _run(work)
    click.echo(f"Revoked server key {key_id}.")


@chat.command("reindex")
def reindex() -> None:
    """Rebuild the message search index (after a SQLite VACUUM, or to repair it)."""

    async def work(session: AsyncSession, _platform: Platform) -> str:
        dialect = session.get_bind().dialect.name
        if dialect == "sqlite":
            await session.execute(text("INSERT INTO chat_messages_fts(chat_messages_fts) VALUES ('rebuild')"))
        elif dialect == "postgresql":
            await session.execute(text("REINDEX INDEX ix_chat_messages_search"))
        return dialect

    click.echo(f"Rebuilt the chat search index ({_run(work)}).")
