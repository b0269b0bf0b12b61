"""What every `pentad` sub-command that touches data does, the core's and the apps' alike: build a platform,
run the work in one transaction committed when it returns, and stop with one line on a bad setting, a
missing key or a refused action (an AppError's message), never a traceback.

    @tenant.command("create")
    def tenant_create(slug: str) -> None:
        async def work(session: AsyncSession, platform: Platform) -> uuid.UUID:
            return (await TenantService(session, platform, audit.SYSTEM).create_tenant(...)).id

        click.echo(f"Created {run_in_transaction(work, apps=[APP])}.")
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import TypeVar

import click
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.core.apps import AppSpec
from pentad.core.config import Settings, SettingsError, load_settings
from pentad.core.crypto import CryptoError
from pentad.core.errors import AppError
from pentad.core.platform import Platform

T = TypeVar("T")


def build_platform(
    apps: Sequence[AppSpec], settings: Settings | None = None, *, installed: Collection[str] = ()
) -> Platform:
    """The platform of `settings` (default: the environment's) with `apps` (`installed`: every installed
    app's name, see Platform.build); a bad setting or key ring stops the command with its one-line
    message."""
    try:
        return Platform.build(settings or load_settings(), list(apps), installed=installed)
    except (SettingsError, CryptoError) as exc:
        raise click.ClickException(str(exc)) from None


def run_in_transaction(
    work: Callable[[AsyncSession, Platform], Awaitable[T]],
    *,
    apps: Sequence[AppSpec],
    settings: Settings | None = None,
    installed: Collection[str] = (),
) -> T:
    """Run `work` in one transaction, committed when it returns, on a platform with `apps`; what it
    returns. An AppError rolls back and stops the command with its message."""

    async def main() -> T:
        platform = build_platform(apps, settings, installed=installed)
        try:
            await platform.open_resources()
            async with platform.database.transaction() as session:
                return await work(session, platform)
        finally:
            await platform.close()

    try:
        return asyncio.run(main())
    except AppError as exc:
        raise click.ClickException(exc.message) from None
