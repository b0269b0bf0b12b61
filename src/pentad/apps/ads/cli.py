"""`pentad ads …`: list and create advertisers and sites, check a signed ad link."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps import INSTALLED
from pentad.apps.ads import repository, schemas
from pentad.apps.ads.actions import advertisers, sites
from pentad.apps.ads.actions.context import AdsContext
from pentad.apps.ads.permissions import ADS_ADMIN
from pentad.apps.ads.spec import APP
from pentad.apps.ads.tokens import TokenSigner
from pentad.core import audit
from pentad.core.auth.principal import Principal
from pentad.core.auth.service import AuthService
from pentad.core.cli_support import run_in_transaction
from pentad.core.platform import Platform

T = TypeVar("T")
CLI_ID = uuid.UUID(int=0)


def _run(work: Callable[[AsyncSession, Platform], Awaitable[T]]) -> T:
    """Run `work` in one committed transaction on a platform with the ads app (the other installed apps
    known, so ads' subscribers of their events are skipped, not refused)."""
    return run_in_transaction(work, apps=[APP], installed=INSTALLED)


def _admin_context(session: AsyncSession, platform: Platform) -> AdsContext:
    """The command line acts as an ads admin (whoever runs it can read the key ring anyway)."""
    principal = Principal(
        kind="system", id=CLI_ID, label="pentad ads", roles=frozenset(),
        permissions=frozenset({ADS_ADMIN.key}), via="cli", credential_id=CLI_ID,
    )  # fmt: skip
    return AdsContext(session, platform, principal, audit.SYSTEM)


async def _owner(session: AsyncSession, platform: Platform, email: str) -> uuid.UUID:
    return (await AuthService(session, platform).get_user_by_email(email)).id


@click.group(name="ads")
def ads() -> None:
    """Ads advertisers and sites."""


@ads.group()
def advertiser() -> None:
    """Advertisers (who buys)."""


@advertiser.command("create")
@click.argument("name")
@click.option("--owner", "owner_email", required=True, help="E-mail of the account that owns it.")
@click.option("--contact", default=None, help="Contact e-mail (stored encrypted).")
def advertiser_create(name: str, owner_email: str, contact: str | None) -> None:
    """Create an advertiser owned by an account."""

    async def work(session: AsyncSession, platform: Platform) -> uuid.UUID:
        data = schemas.AdvertiserCreate(name=name, contact_email=contact)
        owner = await _owner(session, platform, owner_email)
        created = await advertisers.do_create_advertiser(
            _admin_context(session, platform), data, owner_id=owner
        )
        return created.row.id

    click.echo(f"Created advertiser {name} ({_run(work)}).")


@advertiser.command("list")
def advertiser_list() -> None:
    """List every advertiser: id, name, owner id."""

    async def work(session: AsyncSession, _platform: Platform) -> list[str]:
        rows = await repository.list_advertisers(session, owner_id=None)
        return [f"{row.id}\t{row.name}\t{row.owner_id}" for row in rows]

    for line in _run(work):
        click.echo(line)


@ads.group()
def site() -> None:
    """Publishers' sites (where ads show)."""


@site.command("create")
@click.argument("domain")
@click.option("--name", required=True, help="Display name.")
@click.option("--timezone", default="UTC", show_default=True, help="IANA timezone of the site's audience.")
@click.option("--owner", "owner_email", required=True, help="E-mail of the account that owns it.")
def site_create(domain: str, name: str, timezone: str, owner_email: str) -> None:
    """Add a site owned by an account."""

    async def work(session: AsyncSession, platform: Platform) -> uuid.UUID:
        data = schemas.SiteCreate(name=name, domain=domain, timezone=timezone)
        owner = await _owner(session, platform, owner_email)
        return (await sites.do_create_site(_admin_context(session, platform), data, owner_id=owner)).row.id

    click.echo(f"Created site {domain} ({_run(work)}).")


@site.command("list")
def site_list() -> None:
    """List every site: id, domain, timezone, name, owner id."""

    async def work(session: AsyncSession, _platform: Platform) -> list[str]:
        rows = await repository.list_sites(session, owner_id=None)
        return [f"{row.id}\t{row.domain}\t{row.timezone}\t{row.name}\t{row.owner_id}" for row in rows]

    for line in _run(work):
        click.echo(line)


@ads.command("check-token")
@click.argument("token")
@click.option("--kind", type=click.Choice(["click", "impression"]), default="click", show_default=True)
def check_token(token: str, kind: str) -> None:
    """Say whether a signed ad token is valid, and what it names."""

    async def work(_session: AsyncSession, platform: Platform) -> str:
        found = TokenSigner(platform.signing_secret).verify(
            "click" if kind == "click" else "impression", token
        )
        return (
            f"valid {found.kind} token: impression {found.impression_id}, creative {found.creative_id}, "
            f"zone {found.zone_id}, expires {found.expires}"
        )

    click.echo(_run(work))
