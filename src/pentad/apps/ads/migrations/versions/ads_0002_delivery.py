"""ads: impressions, clicks, hourly stats

Revision ID: ads_0002
Revises: ads_0001
Create Date: 2026-12-04 22:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ads_0002"
down_revision: str | Sequence[str] | None = "ads_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ads_impressions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("zone_id", sa.Uuid(), nullable=False),
        sa.Column("creative_id", sa.Uuid(), nullable=False),
        sa.Column("campaign_id", sa.Uuid(), nullable=True),
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("visitor_id", sa.BigInteger(), nullable=True),
        sa.Column("path", sa.String(length=500), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("device", sa.String(length=16), nullable=True),
        sa.Column("viewable_ts", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ads_impressions")),
    )
    with op.batch_alter_table("ads_impressions", schema=None) as batch_op:
        batch_op.create_index("ix_ads_impressions_campaign_hour", ["campaign_id", "hour"], unique=False)

    op.create_table(
        "ads_clicks",
        sa.Column("impression_id", sa.Uuid(), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("zone_id", sa.Uuid(), nullable=False),
        sa.Column("creative_id", sa.Uuid(), nullable=False),
        sa.Column("campaign_id", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("impression_id", name=op.f("pk_ads_clicks")),
    )
    with op.batch_alter_table("ads_clicks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ads_clicks_campaign_id"), ["campaign_id"], unique=False)

    op.create_table(
        "ads_stats_hourly",
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("creative_id", sa.Uuid(), nullable=False),
        sa.Column("zone_id", sa.Uuid(), nullable=False),
        sa.Column("served", sa.BigInteger(), nullable=False),
        sa.Column("viewable", sa.BigInteger(), nullable=False),
        sa.Column("clicks", sa.BigInteger(), nullable=False),
        sa.Column("spend_micros", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "campaign_id", "hour", "creative_id", "zone_id", name=op.f("pk_ads_stats_hourly")
        ),
    )


def downgrade() -> None:
    for table in ("ads_stats_hourly", "ads_clicks", "ads_impressions"):
        op.drop_table(table)
