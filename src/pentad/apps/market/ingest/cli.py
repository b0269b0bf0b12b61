"""`pentad market ingest …`: run an order-book refresh by hand (light: imports the platform when run)."""

from __future__ import annotations

import asyncio

import click


@click.group(name="ingest")
def ingest() -> None:
    """Market data ingest from ESI."""


@ingest.command("run")
@click.argument("region_id", type=int)
@click.option("--force", is_flag=True, help="Fetch even before the stored book's Expires (ESI frowns on it).")
def ingest_run(*, region_id: int, force: bool) -> None:
    """Fetch REGION_ID's order book from ESI now and store it as one snapshot."""
    from pentad.apps.market.esi.resource import EsiNotConfigured, build_client
    from pentad.apps.market.ingest.orders import RefreshOutcome, refresh_region
    from pentad.apps.market.spec import APP
    from pentad.core.cli_support import build_platform

    async def main() -> RefreshOutcome:
        platform = build_platform([APP])
        try:
            await platform.open_resources()
            try:
                client = build_client(platform)
            except EsiNotConfigured as exc:
                raise click.ClickException(str(exc)) from None
            async with client:
                return await refresh_region(platform, client, region_id, force=force)
        finally:
            await platform.close()

    outcome = asyncio.run(main())
    if outcome.status == "ok":
        copied = f", {outcome.copied_pages} unchanged page(s) copied" if outcome.copied_pages else ""
        click.echo(
            f"Stored snapshot {outcome.snapshot_id} of region {region_id}: {outcome.pages} page(s), "
            f"{outcome.rows} order(s){copied}."
        )
    elif outcome.status == "not_modified":
        click.echo(f"Region {region_id}: the book did not change; expires {outcome.expires_at:%H:%M:%S} UTC.")
    elif outcome.status == "not_due":
        click.echo(
            f"Region {region_id}: the stored book is fresh until {outcome.expires_at:%H:%M:%S} UTC "
            "(ESI asks not to fetch before then; --force to insist)."
        )
    else:
        raise click.ClickException(f"Region {region_id}: {outcome.status}: {outcome.detail}")
