"""`pentad agent …`: run the agent daemon, show what it runs. (`enrol` is added by pentad.agent.enrol.)"""

from __future__ import annotations

import click


@click.group()
def agent() -> None:
    """The game-server agent of this host (talks to the panel over the network)."""
