"""panel_0001 goes up and down cleanly on every engine: its tables appear with the shipped templates, take
rows, and are gone after the downgrade (the core's stay)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from alembic import command
from sqlalchemy import func, insert, inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine

from pentad.apps.panel.models import (
    PanelAllocation,
    PanelNode,
    PanelServer,
    PanelTemplate,
    PanelTemplateVariable,
)
from pentad.apps.panel.spec import APP
from pentad.core.config import DatabaseSettings
from pentad.core.db.engine import create_engine
from pentad.core.db.migrate import alembic_config, upgrade_async

TABLES = {
    "panel_nodes",
    "panel_node_credentials",
    "panel_enrolment_tokens",
    "panel_allocations",
    "panel_templates",
    "panel_template_variables",
    "panel_servers",
    "panel_server_variables",
    "panel_backups",
}
NODE = uuid.UUID("0b0e4c3a-6a3f-4d59-9c39-3a8c4e2f7a11")
TEMPLATE = uuid.UUID("5d7f2c1e-0a9b-4c8d-8e7f-6a5b4c3d2e1f")
SERVER = uuid.UUID("7e1f2c1e-0a9b-4c8d-8e7f-6a5b4c3d2e10")


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))


async def test_panel_0001_up_and_down(scratch_url: str) -> None:
    await upgrade_async(scratch_url, [APP])
    engine = create_engine(DatabaseSettings(url=scratch_url))
    try:
        tables = await _tables(engine)
        assert tables >= TABLES
        assert "users" in tables
        async with engine.begin() as connection:
            shipped = (await connection.execute(select(PanelTemplate.slug, PanelTemplate.source))).all()
            assert sorted(shipped) == [
                ("generic", "builtin"),
                ("minetest", "builtin"),
                ("teeworlds", "builtin"),
            ]
            variables = await connection.scalar(select(func.count()).select_from(PanelTemplateVariable))
            assert variables == 9
            now = datetime(2026, 12, 5, tzinfo=UTC)
            await connection.execute(
                insert(PanelNode.__table__).values(
                    id=NODE, name="n1", description="", public_host="", status="offline", draining=False,
                    memory_mb=1024, disk_mb=1024, cpu_percent=100, overalloc_percent=0, facts={},
                    created_at=now, updated_at=now,
                )
            )  # fmt: skip
            await connection.execute(
                insert(PanelTemplate.__table__).values(
                    id=TEMPLATE, slug="mine", name="Mine", description="", author="", source="builtin",
                    egg_format="PTDL_v2", startup="./run", stop="^C", done=[], config_files={},
                    install_script="", install_entrypoint="bash", file_denylist=[], console_input="stdin",
                    docker_images={}, features=[], warnings=[], raw_egg={}, created_at=now, updated_at=now,
                )
            )  # fmt: skip
            await connection.execute(
                insert(PanelServer.__table__).values(
                    id=SERVER, short_id="abcd1234", name="s", description="", owner_id=NODE, node_id=NODE,
                    template_id=TEMPLATE, status="installing", state="offline", memory_mb=512,
                    cpu_percent=0, disk_mb=1024, restart_on_crash=True, created_at=now, updated_at=now,
                )
            )  # fmt: skip
            await connection.execute(
                insert(PanelAllocation.__table__).values(
                    id=uuid.uuid4(), node_id=NODE, ip="0.0.0.0", port=27015, server_id=SERVER, notes="",
                    created_at=now,
                )
            )  # fmt: skip

        await asyncio.to_thread(command.downgrade, alembic_config(scratch_url, [APP]), "panel@base")
        after = await _tables(engine)
        assert not TABLES & after
        assert "users" in after

        await upgrade_async(scratch_url, [APP])
        assert await _tables(engine) >= TABLES
    finally:
        await engine.dispose()
