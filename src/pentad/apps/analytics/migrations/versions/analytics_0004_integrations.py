"""analytics: Stats API keys, GA4 links, e-mail report subscriptions, GA4 imports; rollups flagged imported

Revision ID: analytics_0004
Revises: analytics_0003
Create Date: 2026-12-05 00:31:45.545275
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pentad.core.db.base

revision: str = "analytics_0004"
down_revision: str | Sequence[str] | None = "analytics_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "analytics_stats_keys",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("hint", sa.String(length=16), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("site_ids", sa.JSON(), nullable=False),
        sa.Column("last_used_at", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("revoked_at", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_stats_keys")),
    )
    with op.batch_alter_table("analytics_stats_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_analytics_stats_keys_user_id"), ["user_id"], unique=False)

    op.create_table(
        "analytics_ga4_links",
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("site_key", sa.Integer(), nullable=False),
        sa.Column("measurement_id", sa.String(length=32), nullable=False),
        sa.Column("api_secret", pentad.core.db.base.EncryptedText(length=4096), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("forwarded", sa.BigInteger(), nullable=False),
        sa.Column("dropped", sa.BigInteger(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["analytics_sites.id"],
            name=op.f("fk_analytics_ga4_links_site_id_analytics_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_analytics_ga4_links")),
        sa.UniqueConstraint("site_key", name=op.f("uq_analytics_ga4_links_site_key")),
    )
    op.create_table(
        "analytics_imports",
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("report", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("storage_key", sa.String(length=300), nullable=True),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("skipped_days", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["analytics_sites.id"],
            name=op.f("fk_analytics_imports_site_id_analytics_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_imports")),
        sa.UniqueConstraint("site_id", "digest", name="uq_analytics_imports_site_digest"),
    )
    with op.batch_alter_table("analytics_imports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_analytics_imports_site_id"), ["site_id"], unique=False)

    op.create_table(
        "analytics_report_subscriptions",
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("email", pentad.core.db.base.EncryptedText(length=4096), nullable=True),
        sa.Column("recipient_digest", sa.String(length=64), nullable=False),
        sa.Column("confirmed_at", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("last_sent_period", sa.Date(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["analytics_sites.id"],
            name=op.f("fk_analytics_report_subscriptions_site_id_analytics_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_report_subscriptions")),
        sa.UniqueConstraint("site_id", "period", "recipient_digest", name="uq_analytics_report_recipient"),
    )
    with op.batch_alter_table("analytics_report_subscriptions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_analytics_report_subscriptions_site_id"), ["site_id"], unique=False
        )

    with op.batch_alter_table("analytics_rollup_daily", schema=None) as batch_op:
        batch_op.add_column(sa.Column("imported", sa.Boolean(), server_default=sa.false(), nullable=False))

    with op.batch_alter_table("analytics_rollup_hourly", schema=None) as batch_op:
        batch_op.add_column(sa.Column("imported", sa.Boolean(), server_default=sa.false(), nullable=False))

    with op.batch_alter_table("analytics_rollup_monthly", schema=None) as batch_op:
        batch_op.add_column(sa.Column("imported", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("analytics_rollup_monthly", schema=None) as batch_op:
        batch_op.drop_column("imported")

    with op.batch_alter_table("analytics_rollup_hourly", schema=None) as batch_op:
        batch_op.drop_column("imported")

    with op.batch_alter_table("analytics_rollup_daily", schema=None) as batch_op:
        batch_op.drop_column("imported")

    with op.batch_alter_table("analytics_report_subscriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_analytics_report_subscriptions_site_id"))

    op.drop_table("analytics_report_subscriptions")
    with op.batch_alter_table("analytics_imports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_analytics_imports_site_id"))

    op.drop_table("analytics_imports")
    op.drop_table("analytics_ga4_links")
    with op.batch_alter_table("analytics_stats_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_analytics_stats_keys_user_id"))

    op.drop_table("analytics_stats_keys")
