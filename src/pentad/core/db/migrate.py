"""Alembic, driven from code: core migrations plus a branch per enabled app."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from alembic import command
from alembic.config import Config

from pentad.core.apps import AppSpec
from pentad.core.crypto import KeyRing

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str, apps: Sequence[AppSpec] = (), keyring: KeyRing | None = None) -> Config:
    """`keyring`: for migrations that move encrypted values to another table (re-encrypted there)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    locations = [str(MIGRATIONS / "versions")]
    locations += [str(spec.migrations) for spec in apps if spec.migrations is not None]
    config.set_main_option("version_locations", " ".join(locations))
    config.set_main_option("path_separator", "space")
    config.attributes["database_url"] = url
    config.attributes["keyring"] = keyring
    return config


def upgrade(
    url: str, apps: Sequence[AppSpec] = (), revision: str = "heads", keyring: KeyRing | None = None
) -> None:
    command.upgrade(alembic_config(url, apps, keyring), revision)


async def upgrade_async(
    url: str, apps: Sequence[AppSpec] = (), revision: str = "heads", keyring: KeyRing | None = None
) -> None:
    await asyncio.to_thread(upgrade, url, apps, revision, keyring)
