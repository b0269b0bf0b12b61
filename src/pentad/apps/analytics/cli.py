"""`pentad analytics …`: add sites, list them, share them with accounts."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.analytics import grants, repository, retention
from pentad.apps.analytics.actions.sites import SiteService
from pentad.apps.analytics.schemas import GrantCreate, SiteCreate, SiteUpdate
from pentad.apps.analytics.settings import AnalyticsSettings, parse_tier_text
from pentad.apps.analytics.spec import APP
from pentad.core import audit
from pentad.core.cli_support import run_in_transaction
from pentad.core.errors import AppError
from pentad.core.platform import Platform

T = TypeVar("T")


def _run(work: Callable[[AsyncSession, Platform], Awaitable[T]]) -> T:
    return run_in_transaction(work, apps=[APP])


def _service(session: AsyncSession, platform: Platform) -> SiteService:
    return SiteService(session, platform, None, audit.SYSTEM)


async def _site_id(session: AsyncSession, domain: str) -> uuid.UUID:
    site = await repository.get_site_by_domain(session, domain.strip().lower())
    if site is None:
        raise click.ClickException(f"No analytics site {domain!r}.")
    return site.id


@click.group(name="analytics")
def analytics() -> None:
    """Analytics sites and who may see them."""


@analytics.group()
def site() -> None:
    """Tracked sites."""


@site.command("create")
@click.argument("domain")
@click.option("--owner", help="E-mail of the account that owns the site.")
@click.option("--timezone", default="UTC", show_default=True, help="IANA time zone of the dashboard's days.")
@click.option("--name", help="Display name (default: the domain).")
def site_create(domain: str, owner: str | None, timezone: str, name: str | None) -> None:
    """Add a site; prints its id and the tracker snippet."""
    try:
        data = SiteCreate(domain=domain, timezone=timezone, name=name)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = str(first["msg"]).removeprefix("Value error, ")
        raise click.ClickException(f"{first['loc'][0]}: {message}") from None

    async def work(session: AsyncSession, platform: Platform) -> tuple[uuid.UUID, str]:
        owner_id = await grants.user_id_by_email(session, platform, owner) if owner else None
        created = await _service(session, platform).create(data, owner_id)
        return created.id, platform.base_url.rstrip("/")

    site_id, base = _run(work)
    click.echo(f"Created analytics site {data.domain} ({site_id}). Tracker:")
    click.echo(f'<script defer data-domain="{data.domain}" src="{base}/analytics/js/script.js"></script>')


@site.command("list")
def site_list() -> None:
    """List every site."""

    async def work(session: AsyncSession, platform: Platform) -> list[str]:
        return [
            f"{s.domain}\t{s.id}\t{s.timezone}\t{s.name}" for s in await _service(session, platform).list()
        ]

    for line in _run(work):
        click.echo(line)


@site.command("grant")
@click.argument("domain")
@click.argument("email")
@click.option("--role", type=click.Choice(["owner", "viewer"]), default="viewer", show_default=True)
def site_grant(domain: str, email: str, role: str) -> None:
    """Share a site with an account as owner or viewer (replaces the role it had)."""

    async def work(session: AsyncSession, platform: Platform) -> None:
        data = GrantCreate(email=email, role="owner" if role == "owner" else "viewer")
        await _service(session, platform).share(await _site_id(session, domain), data)

    _run(work)
    click.echo(f"{email} is now {role} of {domain}.")


@site.command("retention")
@click.argument("domain")
@click.argument("tiers", required=False)
def site_retention(domain: str, tiers: str | None) -> None:
    """Show a site's retention tiers, or change some: `raw=30d,hourly=1y` (h, d, w, mo, y or forever;
    raw ≤ hourly ≤ daily ≤ monthly). Data older than a tier is deleted by the next daily
    `analytics.enforce_retention` run."""
    try:
        change = SiteUpdate(retention=parse_tier_text(tiers)) if tiers else None
    except (ValidationError, ValueError) as exc:
        message = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise click.ClickException(f"retention: {str(message).removeprefix('Value error, ')}") from None

    async def work(session: AsyncSession, platform: Platform) -> dict[str, str]:
        site_id = await _site_id(session, domain)
        if change is not None:
            site = await _service(session, platform).update(site_id, change)
        else:
            found = await repository.get_site(session, site_id)
            assert found is not None
            site = found
        return retention.effective(site.retention, platform.app_settings(AnalyticsSettings).default_tiers)

    try:
        found = _run(work)
    except AppError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"{domain}: " + ",".join(f"{tier}={found[tier]}" for tier in retention.TIERS))
