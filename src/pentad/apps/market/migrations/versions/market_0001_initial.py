"""market: static data, ESI market data (order snapshots, book statistics and history partitioned by time),
characters and their data, alerts, AI advisor

The three partitioned tables are built here (not from the models) and handed to the core's partitions API:
`market_orders` by hour, `market_book_stats` by day, `market_history` by month, each with the current
period and its `ahead` periods (core/db/partitions.py; the core cron job makes later ones).

Revision ID: market_0001
Revises:
Create Date: 2026-12-05 04:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pentad.core.db.base
from pentad.core.db import partitions

revision: str = "market_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("market",)
depends_on: str | Sequence[str] | None = "0002_jobs"

PRICE = sa.Numeric(precision=20, scale=2)


def _metadata() -> sa.MetaData:
    return sa.MetaData(naming_convention=pentad.core.db.base.NAMING_CONVENTION)


def _orders() -> partitions.PartitionedTable:
    table = sa.Table(
        "market_orders",
        _metadata(),
        sa.Column("captured_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.Column("snapshot_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("order_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("page", sa.Integer(), nullable=False),
        sa.Column("type_id", sa.BigInteger(), nullable=False),
        sa.Column("location_id", sa.BigInteger(), nullable=False),
        sa.Column("system_id", sa.BigInteger(), nullable=False),
        sa.Column("is_buy", sa.Boolean(), nullable=False),
        sa.Column("price", PRICE, nullable=False),
        sa.Column("volume_remain", sa.BigInteger(), nullable=False),
        sa.Column("volume_total", sa.BigInteger(), nullable=False),
        sa.Column("min_volume", sa.BigInteger(), nullable=False),
        sa.Column("range", sa.String(length=16), nullable=False),
        sa.Column("issued", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.Column("duration", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("captured_at", "snapshot_id", "order_id", name="pk_market_orders"),
        sa.Index("ix_market_orders_book", "snapshot_id", "location_id", "type_id", "is_buy", "price"),
    )
    return partitions.PartitionedTable(table, "captured_at", "hour", ahead=2)


def _book_stats() -> partitions.PartitionedTable:
    table = sa.Table(
        "market_book_stats",
        _metadata(),
        sa.Column("captured_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.Column("snapshot_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("location_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("type_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("best_bid", PRICE, nullable=True),
        sa.Column("best_ask", PRICE, nullable=True),
        sa.Column("bid_count", sa.Integer(), nullable=False),
        sa.Column("ask_count", sa.Integer(), nullable=False),
        sa.Column("bid_units", sa.BigInteger(), nullable=False),
        sa.Column("ask_units", sa.BigInteger(), nullable=False),
        sa.Column("updates_last_hour", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "captured_at", "snapshot_id", "location_id", "type_id", name="pk_market_book_stats"
        ),
        sa.Index("ix_market_book_stats_snapshot_type", "snapshot_id", "type_id"),
    )
    return partitions.PartitionedTable(table, "captured_at", "day", ahead=2)


def _history() -> partitions.PartitionedTable:
    table = sa.Table(
        "market_history",
        _metadata(),
        sa.Column("region_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("type_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("average", PRICE, nullable=False),
        sa.Column("highest", PRICE, nullable=False),
        sa.Column("lowest", PRICE, nullable=False),
        sa.Column("volume", sa.BigInteger(), nullable=False),
        sa.Column("order_count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("region_id", "type_id", "date", name="pk_market_history"),
    )
    return partitions.PartitionedTable(table, "date", "month", ahead=1)


def upgrade() -> None:
    op.create_table(
        "market_ai_conversations",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("updated_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_ai_conversations")),
    )
    with op.batch_alter_table("market_ai_conversations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_market_ai_conversations_user_id_updated_at", ["user_id", "updated_at"], unique=False
        )

    op.create_table(
        "market_ai_keys",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("key", pentad.core.db.base.EncryptedText(length=4096), nullable=False),
        sa.Column("last4", sa.String(length=4), nullable=False),
        sa.Column("verified_at", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_ai_keys")),
        sa.UniqueConstraint("user_id", "provider", name=op.f("uq_market_ai_keys_user_id_provider")),
    )
    with op.batch_alter_table("market_ai_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_market_ai_keys_user_id"), ["user_id"], unique=False)

    op.create_table(
        "market_ai_usage",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("own_key", sa.Boolean(), nullable=False),
        sa.Column("tokens_in", sa.BigInteger(), nullable=False),
        sa.Column("tokens_out", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "day", "provider", "own_key", name=op.f("pk_market_ai_usage")),
    )
    op.create_table(
        "market_alert_rules",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("cooldown", sa.Integer(), nullable=False),
        sa.Column("updated_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_alert_rules")),
    )
    with op.batch_alter_table("market_alert_rules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_market_alert_rules_user_id"), ["user_id"], unique=False)

    op.create_table(
        "market_char_orders",
        sa.Column("character_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("order_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("type_id", sa.BigInteger(), nullable=False),
        sa.Column("location_id", sa.BigInteger(), nullable=False),
        sa.Column("region_id", sa.BigInteger(), nullable=False),
        sa.Column("is_buy", sa.Boolean(), nullable=False),
        sa.Column("price", sa.Numeric(precision=20, scale=2), nullable=False),
        sa.Column("volume_total", sa.BigInteger(), nullable=False),
        sa.Column("volume_remain", sa.BigInteger(), nullable=False),
        sa.Column("min_volume", sa.BigInteger(), nullable=True),
        sa.Column("escrow", sa.Numeric(precision=20, scale=2), nullable=True),
        sa.Column("issued", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.Column("duration", sa.Integer(), nullable=False),
        sa.Column("range", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("seen_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("character_id", "order_id", name=op.f("pk_market_char_orders")),
    )
    with op.batch_alter_table("market_char_orders", schema=None) as batch_op:
        batch_op.create_index(
            "ix_market_char_orders_character_id_state", ["character_id", "state"], unique=False
        )

    op.create_table(
        "market_characters",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("character_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("owner_hash", sa.String(length=255), nullable=False),
        sa.Column("corporation_id", sa.BigInteger(), nullable=True),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("refresh_token", pentad.core.db.base.EncryptedText(length=4096), nullable=True),
        sa.Column("access_expires_at", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("last_sync", sa.JSON(), nullable=True),
        sa.Column("updated_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_characters")),
        sa.UniqueConstraint(
            "user_id", "character_id", name=op.f("uq_market_characters_user_id_character_id")
        ),
    )
    with op.batch_alter_table("market_characters", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_market_characters_character_id"), ["character_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_market_characters_user_id"), ["user_id"], unique=False)

    op.create_table(
        "market_constellations",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("region_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_constellations")),
    )
    with op.batch_alter_table("market_constellations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_market_constellations_region_id"), ["region_id"], unique=False)

    op.create_table(
        "market_esi_cache",
        sa.Column("url_key", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=1000), nullable=False),
        sa.Column("etag", sa.String(length=200), nullable=True),
        sa.Column("etags", sa.JSON(), nullable=True),
        sa.Column("expires_at", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("last_modified", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("page_count", sa.Integer(), nullable=True),
        sa.Column("updated_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("url_key", name=op.f("pk_market_esi_cache")),
    )
    op.create_table(
        "market_fifo_lots",
        sa.Column("pool", sa.String(length=64), nullable=False),
        sa.Column("type_id", sa.BigInteger(), nullable=False),
        sa.Column("character_id", sa.BigInteger(), nullable=False),
        sa.Column("transaction_id", sa.BigInteger(), nullable=False),
        sa.Column("date", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.Column("quantity_left", sa.BigInteger(), nullable=False),
        sa.Column("unit_cost", sa.Numeric(precision=20, scale=2), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_fifo_lots")),
    )
    with op.batch_alter_table("market_fifo_lots", schema=None) as batch_op:
        batch_op.create_index("ix_market_fifo_lots_pool_type_date", ["pool", "type_id", "date"], unique=False)

    op.create_table(
        "market_groups",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("category_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_groups")),
    )
    op.create_table(
        "market_ingest_runs",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("started_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.Column("finished_at", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(length=1000), nullable=True),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("esi_errors", sa.Integer(), nullable=False),
        sa.Column("snapshot_id", sa.BigInteger(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_ingest_runs")),
    )
    with op.batch_alter_table("market_ingest_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_market_ingest_runs_kind_scope_started_at", ["kind", "scope", "started_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_market_ingest_runs_started_at"), ["started_at"], unique=False)

    op.create_table(
        "market_market_groups",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("parent_id", sa.BigInteger(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_market_groups")),
    )
    with op.batch_alter_table("market_market_groups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_market_market_groups_parent_id"), ["parent_id"], unique=False)

    op.create_table(
        "market_npc_corporations",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("faction_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_npc_corporations")),
    )
    op.create_table(
        "market_push_subscriptions",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("endpoint", pentad.core.db.base.EncryptedText(length=4096), nullable=False),
        sa.Column("endpoint_hash", sa.String(length=64), nullable=False),
        sa.Column("keys", pentad.core.db.base.EncryptedText(length=4096), nullable=False),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_push_subscriptions")),
        sa.UniqueConstraint(
            "user_id", "endpoint_hash", name=op.f("uq_market_push_subscriptions_user_id_endpoint_hash")
        ),
    )
    with op.batch_alter_table("market_push_subscriptions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_market_push_subscriptions_user_id"), ["user_id"], unique=False)

    op.create_table(
        "market_realized",
        sa.Column("pool", sa.String(length=64), nullable=False),
        sa.Column("type_id", sa.BigInteger(), nullable=False),
        sa.Column("character_id", sa.BigInteger(), nullable=False),
        sa.Column("sell_transaction_id", sa.BigInteger(), nullable=False),
        sa.Column("date", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("unknown_quantity", sa.BigInteger(), nullable=False),
        sa.Column("proceeds", sa.Numeric(precision=20, scale=2), nullable=False),
        sa.Column("cost", sa.Numeric(precision=20, scale=2), nullable=False),
        sa.Column("tax", sa.Numeric(precision=20, scale=2), nullable=False),
        sa.Column("fees", sa.Numeric(precision=20, scale=2), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_realized")),
    )
    with op.batch_alter_table("market_realized", schema=None) as batch_op:
        batch_op.create_index("ix_market_realized_pool_date", ["pool", "date"], unique=False)
        batch_op.create_index("ix_market_realized_pool_type", ["pool", "type_id"], unique=False)

    op.create_table(
        "market_region_state",
        sa.Column("region_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("current_snapshot_id", sa.BigInteger(), nullable=True),
        sa.Column("captured_at", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("expires_at", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("last_modified", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("history_updated_at", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("region_id", name=op.f("pk_market_region_state")),
    )
    op.create_table(
        "market_regions",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_regions")),
    )
    with op.batch_alter_table("market_regions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_market_regions_name"), ["name"], unique=False)

    op.create_table(
        "market_sde_imports",
        sa.Column("build", sa.String(length=64), nullable=True),
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("imported_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_sde_imports")),
    )
    with op.batch_alter_table("market_sde_imports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_market_sde_imports_imported_at"), ["imported_at"], unique=False)

    op.create_table(
        "market_skills",
        sa.Column("character_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("skill_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("updated_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("character_id", "skill_id", name=op.f("pk_market_skills")),
    )
    op.create_table(
        "market_snapshots",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("region_id", sa.BigInteger(), nullable=False),
        sa.Column("captured_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.Column("last_modified", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("expires_at", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("etag_set", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_snapshots")),
    )
    with op.batch_alter_table("market_snapshots", schema=None) as batch_op:
        batch_op.create_index(
            "ix_market_snapshots_region_id_captured_at", ["region_id", "captured_at"], unique=False
        )

    op.create_table(
        "market_sso_states",
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("code_verifier", pentad.core.db.base.EncryptedText(length=4096), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("return_to", sa.String(length=500), nullable=True),
        sa.Column("expires_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.Column("used_at", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("created_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("state_hash", name=op.f("pk_market_sso_states")),
    )
    with op.batch_alter_table("market_sso_states", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_market_sso_states_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_market_sso_states_user_id"), ["user_id"], unique=False)

    op.create_table(
        "market_standings",
        sa.Column("character_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("from_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("from_type", sa.String(length=16), nullable=False),
        sa.Column("standing", sa.Float(), nullable=False),
        sa.Column("updated_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("character_id", "from_id", name=op.f("pk_market_standings")),
    )
    op.create_table(
        "market_stargates",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("system_id", sa.BigInteger(), nullable=False),
        sa.Column("dest_system_id", sa.BigInteger(), nullable=False),
        sa.Column("dest_stargate_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_stargates")),
    )
    with op.batch_alter_table("market_stargates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_market_stargates_system_id"), ["system_id"], unique=False)

    op.create_table(
        "market_stations",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("system_id", sa.BigInteger(), nullable=False),
        sa.Column("region_id", sa.BigInteger(), nullable=False),
        sa.Column("owner_corp_id", sa.BigInteger(), nullable=True),
        sa.Column("faction_id", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("broker_fee_override", sa.Float(), nullable=True),
        sa.Column("updated_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_stations")),
    )
    with op.batch_alter_table("market_stations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_market_stations_region_id"), ["region_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_market_stations_system_id"), ["system_id"], unique=False)

    op.create_table(
        "market_systems",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("constellation_id", sa.BigInteger(), nullable=False),
        sa.Column("region_id", sa.BigInteger(), nullable=False),
        sa.Column("security", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_systems")),
    )
    with op.batch_alter_table("market_systems", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_market_systems_name"), ["name"], unique=False)
        batch_op.create_index(batch_op.f("ix_market_systems_region_id"), ["region_id"], unique=False)

    op.create_table(
        "market_type_volume",
        sa.Column("region_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("type_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("avg_volume_7d", sa.Float(), nullable=False),
        sa.Column("avg_volume_30d", sa.Float(), nullable=False),
        sa.Column("avg_price_30d", sa.Numeric(precision=20, scale=2), nullable=True),
        sa.Column("updated_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("region_id", "type_id", name=op.f("pk_market_type_volume")),
    )
    op.create_table(
        "market_types",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("group_id", sa.BigInteger(), nullable=False),
        sa.Column("market_group_id", sa.BigInteger(), nullable=True),
        sa.Column("volume_m3", sa.Float(), nullable=False),
        sa.Column("packaged_volume_m3", sa.Float(), nullable=False),
        sa.Column("published", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_types")),
    )
    with op.batch_alter_table("market_types", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_market_types_group_id"), ["group_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_market_types_market_group_id"), ["market_group_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_market_types_name"), ["name"], unique=False)

    op.create_table(
        "market_user_prefs",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("quiet_start", sa.SmallInteger(), nullable=True),
        sa.Column("quiet_end", sa.SmallInteger(), nullable=True),
        sa.Column("alerts_per_hour", sa.Integer(), nullable=True),
        sa.Column("pool_characters_for_pnl", sa.Boolean(), nullable=False),
        sa.Column("updated_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_market_user_prefs")),
    )
    op.create_table(
        "market_wallet_journal",
        sa.Column("character_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("ref_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("date", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.Column("ref_type", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.Numeric(precision=20, scale=2), nullable=True),
        sa.Column("balance", sa.Numeric(precision=20, scale=2), nullable=True),
        sa.Column("context_id", sa.BigInteger(), nullable=True),
        sa.Column("context_id_type", sa.String(length=32), nullable=True),
        sa.Column("first_party_id", sa.BigInteger(), nullable=True),
        sa.Column("second_party_id", sa.BigInteger(), nullable=True),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("character_id", "ref_id", name=op.f("pk_market_wallet_journal")),
    )
    with op.batch_alter_table("market_wallet_journal", schema=None) as batch_op:
        batch_op.create_index(
            "ix_market_wallet_journal_character_context", ["character_id", "context_id"], unique=False
        )
        batch_op.create_index(
            "ix_market_wallet_journal_character_date", ["character_id", "date"], unique=False
        )

    op.create_table(
        "market_wallet_transactions",
        sa.Column("character_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("transaction_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("date", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.Column("type_id", sa.BigInteger(), nullable=False),
        sa.Column("location_id", sa.BigInteger(), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("unit_price", sa.Numeric(precision=20, scale=2), nullable=False),
        sa.Column("is_buy", sa.Boolean(), nullable=False),
        sa.Column("is_personal", sa.Boolean(), nullable=False),
        sa.Column("client_id", sa.BigInteger(), nullable=True),
        sa.Column("journal_ref_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("character_id", "transaction_id", name=op.f("pk_market_wallet_transactions")),
    )
    with op.batch_alter_table("market_wallet_transactions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_market_wallet_transactions_character_type_date",
            ["character_id", "type_id", "date"],
            unique=False,
        )

    op.create_table(
        "market_ai_messages",
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=True),
        sa.Column("tool_calls", sa.JSON(), nullable=True),
        sa.Column("tokens_in", sa.Integer(), nullable=False),
        sa.Column("tokens_out", sa.Integer(), nullable=False),
        sa.Column("grounded", sa.Boolean(), nullable=True),
        sa.Column("error", sa.String(length=200), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["market_ai_conversations.id"],
            name=op.f("fk_market_ai_messages_conversation_id_market_ai_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_ai_messages")),
    )
    with op.batch_alter_table("market_ai_messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_market_ai_messages_conversation_id_created_at",
            ["conversation_id", "created_at"],
            unique=False,
        )

    op.create_table(
        "market_alert_events",
        sa.Column("rule_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("subject_key", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("fired_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("delivered", sa.JSON(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["market_alert_rules.id"],
            name=op.f("fk_market_alert_events_rule_id_market_alert_rules"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_alert_events")),
        sa.UniqueConstraint(
            "rule_id", "subject_key", "state", name=op.f("uq_market_alert_events_rule_id_subject_key_state")
        ),
    )
    with op.batch_alter_table("market_alert_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_market_alert_events_user_id"), ["user_id"], unique=False)

    for spec in (_orders(), _book_stats(), _history()):
        partitions.create_partitioned_table(spec)


def downgrade() -> None:
    for spec in (_history(), _book_stats(), _orders()):
        partitions.drop_partitioned_table(spec)
    # Dropping a table drops its indexes (MariaDB refuses to drop one a foreign key needs first).
    for table in (
        "market_alert_events",
        "market_ai_messages",
        "market_wallet_transactions",
        "market_wallet_journal",
        "market_user_prefs",
        "market_types",
        "market_type_volume",
        "market_systems",
        "market_stations",
        "market_stargates",
        "market_standings",
        "market_sso_states",
        "market_snapshots",
        "market_skills",
        "market_sde_imports",
        "market_regions",
        "market_region_state",
        "market_realized",
        "market_push_subscriptions",
        "market_npc_corporations",
        "market_market_groups",
        "market_ingest_runs",
        "market_groups",
        "market_fifo_lots",
        "market_esi_cache",
        "market_constellations",
        "market_characters",
        "market_char_orders",
        "market_alert_rules",
        "market_ai_usage",
        "market_ai_keys",
        "market_ai_conversations",
    ):
        op.drop_table(table)
