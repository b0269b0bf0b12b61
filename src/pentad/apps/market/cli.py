"""`pentad market …`: the static data (EVE SDE) import and the trade hubs, as an operator."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from pentad.apps.market.ingest.cli import ingest

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from pentad.core.platform import Platform

T = TypeVar("T")

COUNT_ORDER = ("types", "systems", "stargates", "stations", "regions", "market_groups")


def _run(work: Callable[[AsyncSession, Platform], Awaitable[T]]) -> T:
    from pentad.apps.market.spec import APP
    from pentad.core.cli_support import run_in_transaction

    return run_in_transaction(work, apps=[APP])


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts.get(name, 0)} {name.replace('_', ' ')}" for name in COUNT_ORDER)


@click.group(name="market")
def market() -> None:
    """Market static data (EVE SDE) and trade hubs."""


@market.group(name="sde")
def sde_group() -> None:
    """EVE's static data export: types, the map, stations."""


@sde_group.command("import")
@click.argument("path", required=False, type=click.Path(path_type=Path))
def sde_import(path: Path | None) -> None:
    """Import the static data export at PATH (CCP's JSON Lines zip, or a folder of its files), replacing
    the static data in one transaction. Without PATH: PENTAD_MARKET__SDE_PATH, else the shipped subset."""
    from pentad.apps.market import sde
    from pentad.apps.market.settings import MarketSettings

    async def work(session: AsyncSession, platform: Platform) -> tuple[str, str | None, dict[str, int]]:
        chosen = path
        if chosen is None and platform.app_settings(MarketSettings).sde_path:
            chosen = Path(str(platform.app_settings(MarketSettings).sde_path))
        if chosen is None:
            record = await sde.import_subset(session)
        else:
            record = await sde.import_sde(session, chosen)
        return record.source, record.build, dict(record.counts)

    source, build, counts = _run(work)
    click.echo(f"Imported static data {build or '(no build number)'} from {source}: {_counts(counts)}.")


@sde_group.command("status")
def sde_status() -> None:
    """The last import (when, build, source) and what the static tables hold now."""
    from pentad.apps.market import repository

    async def work(session: AsyncSession, _platform: Platform) -> list[str]:
        record = await repository.latest_import(session)
        if record is None:
            return ["No static data imported yet: run `pentad market sde import`."]
        when = record.imported_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        counts = await repository.static_counts(session)
        return [
            f"Imported {when}: build {record.build or '(none)'} from {record.source}.",
            f"Holding {_counts(counts)}.",
        ]

    for line in _run(work):
        click.echo(line)


@market.command("hubs")
def hubs() -> None:
    """The trade hubs (PENTAD_MARKET__HUBS): key, station, system with its security, region."""
    from pentad.apps.market import repository
    from pentad.apps.market.settings import MarketSettings

    async def work(session: AsyncSession, platform: Platform) -> list[str]:
        lines = []
        for info in await repository.resolve_hubs(session, platform.app_settings(MarketSettings).hub_list):
            hub = info.hub
            if info.station is None or info.system is None or info.region is None:
                lines.append(
                    f"{hub.key}\t{hub.station_id}\tnot in the static data (run: pentad market sde import)"
                )
            elif not info.ok:
                lines.append(
                    f"{hub.key}\t{hub.station_id}\tstation is in region {info.station.region_id}, "
                    f"not {hub.region_id} as configured"
                )
            else:
                lines.append(
                    f"{hub.key}\t{hub.station_id}\t{info.station.name}\t"
                    f"{info.system.name} ({round(info.system.security, 1):.1f})\t{info.region.name}"
                )
        return lines

    for line in _run(work):
        click.echo(line)


market.add_command(ingest)
