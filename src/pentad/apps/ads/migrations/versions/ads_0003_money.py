"""ads: conversions, budgets, traffic profiles, HTML5 creatives

Revision ID: ads_0003
Revises: ads_0002
Create Date: 2026-12-05 00:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pentad.core.db.base

revision: str = "ads_0003"
down_revision: str | Sequence[str] | None = "ads_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ads_campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("conversion_goals", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("click_window", sa.Integer(), nullable=False, server_default=sa.text("86400"))
        )
        batch_op.add_column(
            sa.Column("view_window", sa.Integer(), nullable=False, server_default=sa.text("3600"))
        )
        batch_op.add_column(sa.Column("exhausted_at", pentad.core.db.base.UTCDateTime(), nullable=True))

    with op.batch_alter_table("ads_stats_hourly", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("conversions", sa.BigInteger(), nullable=False, server_default=sa.text("0"))
        )
        batch_op.add_column(
            sa.Column("revenue_micros", sa.BigInteger(), nullable=False, server_default=sa.text("0"))
        )

    op.create_table(
        "ads_conversions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("visitor_id", sa.BigInteger(), nullable=False),
        sa.Column("goal_id", sa.Uuid(), nullable=False),
        sa.Column("goal_name", sa.String(length=200), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("impression_id", sa.Uuid(), nullable=False),
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("creative_id", sa.Uuid(), nullable=False),
        sa.Column("zone_id", sa.Uuid(), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("revenue_micros", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("path", sa.String(length=500), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ads_conversions")),
        sa.UniqueConstraint("site_id", "visitor_id", "goal_id", "ts", name="uq_ads_conversions_completion"),
    )
    with op.batch_alter_table("ads_conversions", schema=None) as batch_op:
        batch_op.create_index("ix_ads_conversions_campaign_hour", ["campaign_id", "hour"], unique=False)
        batch_op.create_index("ix_ads_conversions_impression", ["impression_id"], unique=False)

    op.create_table(
        "ads_zone_traffic",
        sa.Column("zone_id", sa.Uuid(), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("zone_id", "hour", name=op.f("pk_ads_zone_traffic")),
    )
    op.create_table(
        "ads_traffic_profiles",
        sa.Column("zone_id", sa.Uuid(), nullable=False),
        sa.Column("weights", sa.JSON(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("zone_id", name=op.f("pk_ads_traffic_profiles")),
    )


def downgrade() -> None:
    op.drop_table("ads_traffic_profiles")
    op.drop_table("ads_zone_traffic")
    op.drop_table("ads_conversions")
    with op.batch_alter_table("ads_stats_hourly", schema=None) as batch_op:
        batch_op.drop_column("revenue_micros")
        batch_op.drop_column("conversions")
    with op.batch_alter_table("ads_campaigns", schema=None) as batch_op:
        batch_op.drop_column("exhausted_at")
        batch_op.drop_column("view_window")
        batch_op.drop_column("click_window")
        batch_op.drop_column("conversion_goals")
