"""panel: schedules (cron + task chain) and their runs

Revision ID: panel_0003
Revises: panel_0002
Create Date: 2026-12-05 07:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pentad.core.db.base

revision: str = "panel_0003"
down_revision: str | Sequence[str] | None = "panel_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "panel_schedules",
        sa.Column("server_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("cron", sa.String(length=100), nullable=False),
        sa.Column("only_when_online", sa.Boolean(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("tasks", sa.JSON(), nullable=False),
        sa.Column("next_run_at", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("last_run_at", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("updated_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["server_id"],
            ["panel_servers.id"],
            name=op.f("fk_panel_schedules_server_id_panel_servers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_panel_schedules")),
    )
    with op.batch_alter_table("panel_schedules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_panel_schedules_server_id"), ["server_id"], unique=False)
    op.create_table(
        "panel_schedule_runs",
        sa.Column("schedule_id", sa.Uuid(), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.Column("finished_at", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["panel_schedules.id"],
            name=op.f("fk_panel_schedule_runs_schedule_id_panel_schedules"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_panel_schedule_runs")),
    )
    with op.batch_alter_table("panel_schedule_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_panel_schedule_runs_schedule_id_started_at", ["schedule_id", "started_at"], unique=False
        )


def downgrade() -> None:
    # Dropping a table drops its indexes (MariaDB refuses to drop an index a foreign key needs first).
    op.drop_table("panel_schedule_runs")
    op.drop_table("panel_schedules")
