"""`pentad market …`: the static data (EVE SDE) import and the trade hubs, as an operator."""

from __future__ import annotations

import click

from pentad.apps.market.ingest.cli import ingest


@click.group(name="market")
def market() -> None:
    """Market static data (EVE SDE) and trade hubs."""


market.add_command(ingest)
