"""panel: nodes, node credentials, enrolment tokens, allocations, templates and their variables, servers
and their variables

Revision ID: panel_0001
Revises:
Create Date: 2026-12-05 03:48:27.101525
"""

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import op

import pentad.core.db.base
from pentad.apps.panel.eggs import parse_egg
from pentad.core.db.base import uuid7

revision: str = "panel_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("panel",)
depends_on: str | Sequence[str] | None = "0002_jobs"


def upgrade() -> None:
    op.create_table(
        "panel_nodes",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("public_host", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("draining", sa.Boolean(), nullable=False),
        sa.Column("last_seen_at", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("enrolled_at", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("memory_mb", sa.Integer(), nullable=False),
        sa.Column("disk_mb", sa.Integer(), nullable=False),
        sa.Column("cpu_percent", sa.Integer(), nullable=False),
        sa.Column("overalloc_percent", sa.Integer(), nullable=False),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.Column("updated_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_panel_nodes")),
        sa.UniqueConstraint("name", name=op.f("uq_panel_nodes_name")),
    )
    with op.batch_alter_table("panel_nodes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_panel_nodes_status"), ["status"], unique=False)

    op.create_table(
        "panel_templates",
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("egg_uuid", sa.String(length=64), nullable=True),
        sa.Column("egg_format", sa.String(length=16), nullable=False),
        sa.Column("startup", sa.Text(), nullable=False),
        sa.Column("stop", sa.String(length=500), nullable=False),
        sa.Column("done", sa.JSON(), nullable=False),
        sa.Column("config_files", sa.JSON(), nullable=False),
        sa.Column("install_script", sa.Text(), nullable=False),
        sa.Column("install_entrypoint", sa.String(length=50), nullable=False),
        sa.Column("file_denylist", sa.JSON(), nullable=False),
        sa.Column("console_input", sa.String(length=16), nullable=False),
        sa.Column("docker_images", sa.JSON(), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.Column("raw_egg", sa.JSON(), nullable=False),
        sa.Column("updated_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_panel_templates")),
        sa.UniqueConstraint("slug", name=op.f("uq_panel_templates_slug")),
    )
    op.create_table(
        "panel_enrolment_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("hint", sa.String(length=16), nullable=False),
        sa.Column("node_name", sa.String(length=100), nullable=False),
        sa.Column("node_id", sa.Uuid(), nullable=True),
        sa.Column("expires_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.Column("used_at", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["panel_nodes.id"],
            name=op.f("fk_panel_enrolment_tokens_node_id_panel_nodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_panel_enrolment_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_panel_enrolment_tokens_token_hash")),
    )
    with op.batch_alter_table("panel_enrolment_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_panel_enrolment_tokens_node_id"), ["node_id"], unique=False)

    op.create_table(
        "panel_node_credentials",
        sa.Column("node_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("hint", sa.String(length=16), nullable=False),
        sa.Column("revoked_at", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("last_used_at", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["panel_nodes.id"],
            name=op.f("fk_panel_node_credentials_node_id_panel_nodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_panel_node_credentials")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_panel_node_credentials_token_hash")),
    )
    with op.batch_alter_table("panel_node_credentials", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_panel_node_credentials_node_id"), ["node_id"], unique=False)

    op.create_table(
        "panel_servers",
        sa.Column("short_id", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("node_id", sa.Uuid(), nullable=False),
        sa.Column("template_id", sa.Uuid(), nullable=False),
        sa.Column("allocation_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("state_reason", sa.String(length=200), nullable=True),
        sa.Column("state_changed_at", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("memory_mb", sa.Integer(), nullable=False),
        sa.Column("cpu_percent", sa.Integer(), nullable=False),
        sa.Column("disk_mb", sa.Integer(), nullable=False),
        sa.Column("startup", sa.Text(), nullable=True),
        sa.Column("restart_on_crash", sa.Boolean(), nullable=False),
        sa.Column("installed_at", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("suspended_at", pentad.core.db.base.UTCDateTime(), nullable=True),
        sa.Column("transfer", sa.JSON(), nullable=True),
        sa.Column("updated_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["panel_nodes.id"],
            name=op.f("fk_panel_servers_node_id_panel_nodes"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["panel_templates.id"],
            name=op.f("fk_panel_servers_template_id_panel_templates"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_panel_servers")),
        sa.UniqueConstraint("short_id", name=op.f("uq_panel_servers_short_id")),
    )
    with op.batch_alter_table("panel_servers", schema=None) as batch_op:
        batch_op.create_index("ix_panel_servers_node_id_status", ["node_id", "status"], unique=False)
        batch_op.create_index(batch_op.f("ix_panel_servers_owner_id"), ["owner_id"], unique=False)

    op.create_table(
        "panel_template_variables",
        sa.Column("template_id", sa.Uuid(), nullable=False),
        sa.Column("env_name", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("default_value", sa.Text(), nullable=False),
        sa.Column("user_viewable", sa.Boolean(), nullable=False),
        sa.Column("user_editable", sa.Boolean(), nullable=False),
        sa.Column("rules", sa.String(length=2000), nullable=False),
        sa.Column("sort", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["panel_templates.id"],
            name=op.f("fk_panel_template_variables_template_id_panel_templates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_panel_template_variables")),
        sa.UniqueConstraint(
            "template_id", "env_name", name=op.f("uq_panel_template_variables_template_id_env_name")
        ),
    )
    op.create_table(
        "panel_allocations",
        sa.Column("node_id", sa.Uuid(), nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("server_id", sa.Uuid(), nullable=True),
        sa.Column("notes", sa.String(length=200), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["panel_nodes.id"],
            name=op.f("fk_panel_allocations_node_id_panel_nodes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["server_id"],
            ["panel_servers.id"],
            name=op.f("fk_panel_allocations_server_id_panel_servers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_panel_allocations")),
        sa.UniqueConstraint("node_id", "ip", "port", name=op.f("uq_panel_allocations_node_id_ip_port")),
    )
    with op.batch_alter_table("panel_allocations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_panel_allocations_server_id"), ["server_id"], unique=False)

    op.create_table(
        "panel_server_variables",
        sa.Column("server_id", sa.Uuid(), nullable=False),
        sa.Column("variable_id", sa.Uuid(), nullable=False),
        sa.Column("value_enc", pentad.core.db.base.EncryptedText(length=4096), nullable=False),
        sa.Column("updated_at", pentad.core.db.base.UTCDateTime(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["server_id"],
            ["panel_servers.id"],
            name=op.f("fk_panel_server_variables_server_id_panel_servers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["variable_id"],
            ["panel_template_variables.id"],
            name=op.f("fk_panel_server_variables_variable_id_panel_template_variables"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_panel_server_variables")),
        sa.UniqueConstraint(
            "server_id", "variable_id", name=op.f("uq_panel_server_variables_server_id_variable_id")
        ),
    )
    with op.batch_alter_table("panel_server_variables", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_panel_server_variables_variable_id"), ["variable_id"], unique=False
        )

    _import_builtin_templates()


def _import_builtin_templates() -> None:
    """The shipped templates (apps/panel/builtin_templates/*.json, as this revision found them); later
    changes to them come with their own revision."""
    folder = Path(__file__).parent.parent.parent / "builtin_templates"
    now = datetime.now(UTC)
    templates = sa.table(
        "panel_templates",
        *(sa.column(name) for name in ("slug", "name", "description", "author", "source", "egg_uuid")),
        *(sa.column(name) for name in ("egg_format", "startup", "stop", "install_script")),
        *(sa.column(name) for name in ("install_entrypoint", "console_input")),
        *(sa.column(name, sa.JSON()) for name in ("done", "config_files", "file_denylist", "docker_images")),
        *(sa.column(name, sa.JSON()) for name in ("features", "warnings", "raw_egg")),
        sa.column("id", sa.Uuid()),
        sa.column("created_at", pentad.core.db.base.UTCDateTime()),
        sa.column("updated_at", pentad.core.db.base.UTCDateTime()),
    )
    variables = sa.table(
        "panel_template_variables",
        *(sa.column(name) for name in ("env_name", "name", "description", "default_value", "rules")),
        sa.column("user_viewable", sa.Boolean()),
        sa.column("user_editable", sa.Boolean()),
        sa.column("sort", sa.Integer()),
        sa.column("id", sa.Uuid()),
        sa.column("template_id", sa.Uuid()),
    )
    for path in sorted(folder.glob("*.json")):
        egg = parse_egg(json.loads(path.read_text()))
        template_id = uuid7()
        op.bulk_insert(
            templates,
            [
                {
                    **egg.template_fields(),
                    "id": template_id,
                    "source": "builtin",
                    "created_at": now,
                    "updated_at": now,
                }
            ],
        )
        op.bulk_insert(
            variables,
            [
                {
                    "id": uuid7(), "template_id": template_id, "env_name": v.env_name, "name": v.name,
                    "description": v.description, "default_value": v.default_value, "rules": v.rules,
                    "user_viewable": v.user_viewable, "user_editable": v.user_editable, "sort": v.sort,
                }
                for v in egg.variables
            ],
        )  # fmt: skip


def downgrade() -> None:
    # Dropping a table drops its indexes (MariaDB refuses to drop an index a foreign key needs first).
    for table in (
        "panel_server_variables",
        "panel_allocations",
        "panel_template_variables",
        "panel_servers",
        "panel_node_credentials",
        "panel_enrolment_tokens",
        "panel_templates",
        "panel_nodes",
    ):
        op.drop_table(table)
