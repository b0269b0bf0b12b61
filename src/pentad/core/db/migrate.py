"""Alembic, driven from code: core migrations plus a branch per enabled app."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError

from pentad.core.apps import AppSpec
from pentad.core.config import DatabaseSettings
from pentad.core.crypto import KeyRing
from pentad.core.db.engine import create_engine

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


def pending(url: str, apps: Sequence[AppSpec] = ()) -> list[str]:
    """The heads of this code's migrations (core and `apps`) the database has not reached yet; empty when
    it is up to date. A revision the database holds that this code does not know (a newer release already
    migrated it) counts as reached for nothing: only what this code knows is compared."""
    script = ScriptDirectory.from_config(alembic_config(url, apps))
    current = asyncio.run(_current_revisions(url))
    reached: set[str] = set()
    for revision in current:
        try:
            known = script.get_revision(revision)
        except RevisionError:
            continue
        if known is not None:
            reached.update(step.revision for step in script.iterate_revisions(known.revision, "base"))
    return sorted(head for head in script.get_heads() if head not in reached)


async def _current_revisions(url: str) -> set[str]:
    engine = create_engine(DatabaseSettings(url=url))
    try:
        async with engine.connect() as connection:
            heads = await connection.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_heads()
            )
    finally:
        await engine.dispose()
    return set(heads)
