"""The panel app's tables (docs/plans/panel.md §3), those session 1 needs: nodes with their credentials and
enrolment tokens, port allocations, templates (imported eggs) with their variables, game servers with their
variable values.

A node credential (`pnd_<id>_<secret>`) and an enrolment token (`pne_<id>_<secret>`) are stored only as the
SHA-256 of their secret (256 random bits: no slow hash needed). A server's variable values may be passwords
(RCON, econ), so they are encrypted at rest, bound to their row. A server's activity log is the core audit
log (resource type `panel.server`), not a table of the panel's.

Status fields written by the agent link (apps/panel/agent_link.py) live here too: a node's `status`,
`last_seen_at` and reported `facts`; a server's power `state`, `state_reason` and `state_changed_at`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pentad.core.db.base import Base, EncryptedText, IdMixin, TimestampMixin, utcnow

NODE_STATUSES = ("offline", "online")
"""Written by the agent link only; `draining` is the admin's separate switch."""
TEMPLATE_SOURCES = ("builtin", "egg")
CONSOLE_INPUTS = ("stdin", "econ")
SERVER_STATUSES = ("installing", "install_failed", "installed", "suspended", "transferring", "restoring")
"""Where a server is in its life (the panel's side); `installed` is the normal case."""
SERVER_STATES = ("offline", "starting", "running", "stopping", "crashed", "disk_exceeded")
"""What its process is doing, as its node's agent reports it."""


class PanelNode(IdMixin, TimestampMixin, Base):
    """A host running `pentad agent`: its capacity for servers and what its agent reported."""

    __tablename__ = "panel_nodes"

    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    public_host: Mapped[str] = mapped_column(String(255), default="")
    """The host name or address players connect to (empty: an allocation's ip)."""
    status: Mapped[str] = mapped_column(String(16), default="offline", index=True)
    draining: Mapped[bool] = mapped_column(Boolean, default=False)
    """No new servers go to a draining node (its servers keep running)."""
    last_seen_at: Mapped[datetime | None] = mapped_column(default=None)
    enrolled_at: Mapped[datetime | None] = mapped_column(default=None)
    memory_mb: Mapped[int] = mapped_column(Integer, default=0)
    disk_mb: Mapped[int] = mapped_column(Integer, default=0)
    cpu_percent: Mapped[int] = mapped_column(Integer, default=0)
    """Capacity in CPU percent (100 per core); 0: not limited."""
    overalloc_percent: Mapped[int] = mapped_column(Integer, default=0)
    """How far servers' limits may add up beyond the capacity, percent (-1: no check)."""
    facts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """What the agent reported: cores, memory_mb, disk_mb, kernel, limits_backend, sandbox, agent_version,
    protocol."""
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PanelNodeCredential(IdMixin, TimestampMixin, Base):
    """A node's credential (`pnd_<id>_<secret>`), the SHA-256 of its secret only. Enrolling again revokes
    the node's earlier ones."""

    __tablename__ = "panel_node_credentials"

    node_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("panel_nodes.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(16))
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)


class PanelEnrolmentToken(IdMixin, TimestampMixin, Base):
    """A one-time token (`pne_<id>_<secret>`) an agent swaps for a node credential: for a new node named
    `node_name`, or to enrol an existing node (`node_id`) again."""

    __tablename__ = "panel_enrolment_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(16))
    node_name: Mapped[str] = mapped_column(String(100))
    node_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("panel_nodes.id", ondelete="CASCADE"), default=None, index=True
    )
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    created_by: Mapped[uuid.UUID | None] = mapped_column(default=None)


class PanelAllocation(IdMixin, TimestampMixin, Base):
    """One ip:port of a node a server may listen on; `server_id` set while a server holds it."""

    __tablename__ = "panel_allocations"
    __table_args__ = (UniqueConstraint("node_id", "ip", "port"),)

    node_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("panel_nodes.id", ondelete="CASCADE"))
    ip: Mapped[str] = mapped_column(String(45))
    port: Mapped[int] = mapped_column(Integer)
    server_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("panel_servers.id", ondelete="SET NULL"), default=None, index=True
    )
    notes: Mapped[str] = mapped_column(String(200), default="")


class PanelTemplate(IdMixin, TimestampMixin, Base):
    """What a server runs: a Pterodactyl/Pelican egg imported (or one the panel ships)."""

    __tablename__ = "panel_templates"

    slug: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(String(200), default="")
    source: Mapped[str] = mapped_column(String(16), default="egg")
    egg_uuid: Mapped[str | None] = mapped_column(String(64), default=None)
    egg_format: Mapped[str] = mapped_column(String(16), default="PTDL_v2")
    startup: Mapped[str] = mapped_column(Text)
    stop: Mapped[str] = mapped_column(String(500), default="^C")
    """The console command that stops the server, or `^C` (SIGINT)."""
    done: Mapped[list[str]] = mapped_column(JSON, default=list)
    """Console lines (substrings, or regexes when `features` says so) that mean the server is up."""
    config_files: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    install_script: Mapped[str] = mapped_column(Text, default="")
    install_entrypoint: Mapped[str] = mapped_column(String(50), default="bash")
    file_denylist: Mapped[list[str]] = mapped_column(JSON, default=list)
    console_input: Mapped[str] = mapped_column(String(16), default="stdin")
    docker_images: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Kept for display only: servers run on the host's binaries, in bubblewrap."""
    features: Mapped[list[str]] = mapped_column(JSON, default=list)
    warnings: Mapped[list[str]] = mapped_column(JSON, default=list)
    """What the import could not take over (unknown rules, Docker-only images)."""
    raw_egg: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PanelTemplateVariable(IdMixin, Base):
    """A startup variable of a template: its environment name, default and validation rules."""

    __tablename__ = "panel_template_variables"
    __table_args__ = (UniqueConstraint("template_id", "env_name"),)

    template_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("panel_templates.id", ondelete="CASCADE"))
    env_name: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    default_value: Mapped[str] = mapped_column(Text, default="")
    user_viewable: Mapped[bool] = mapped_column(Boolean, default=True)
    user_editable: Mapped[bool] = mapped_column(Boolean, default=True)
    rules: Mapped[str] = mapped_column(String(2000), default="")
    sort: Mapped[int] = mapped_column(Integer, default=0)


class PanelServer(IdMixin, TimestampMixin, Base):
    """A game server on a node, made from a template, with its limits and its state."""

    __tablename__ = "panel_servers"
    __table_args__ = (Index("ix_panel_servers_node_id_status", "node_id", "status"),)

    short_id: Mapped[str] = mapped_column(String(8), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(1000), default="")
    owner_id: Mapped[uuid.UUID] = mapped_column(index=True)
    node_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("panel_nodes.id", ondelete="RESTRICT"))
    template_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("panel_templates.id", ondelete="RESTRICT"))
    allocation_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    """The primary allocation (`{{server.build.default.port}}`); others are the server's extra ports."""
    status: Mapped[str] = mapped_column(String(16), default="installing")
    state: Mapped[str] = mapped_column(String(16), default="offline")
    state_reason: Mapped[str | None] = mapped_column(String(200), default=None)
    state_changed_at: Mapped[datetime | None] = mapped_column(default=None)
    memory_mb: Mapped[int] = mapped_column(Integer)
    cpu_percent: Mapped[int] = mapped_column(Integer, default=0)
    """CPU limit in percent (100 per core); 0: not limited."""
    disk_mb: Mapped[int] = mapped_column(Integer)
    startup: Mapped[str | None] = mapped_column(Text, default=None)
    """The server's own startup command (admins only); None: its template's."""
    restart_on_crash: Mapped[bool] = mapped_column(Boolean, default=True)
    installed_at: Mapped[datetime | None] = mapped_column(default=None)
    suspended_at: Mapped[datetime | None] = mapped_column(default=None)
    transfer: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PanelServerVariable(IdMixin, Base):
    """A server's value of one of its template's variables, encrypted (bound to the row)."""

    __tablename__ = "panel_server_variables"
    __table_args__ = (UniqueConstraint("server_id", "variable_id"),)

    server_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("panel_servers.id", ondelete="CASCADE"))
    variable_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("panel_template_variables.id", ondelete="CASCADE"), index=True
    )
    value_enc: Mapped[str] = mapped_column(EncryptedText)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


SCHEDULE_RUN_STATUSES = ("running", "ok", "failed", "skipped")


class PanelSchedule(IdMixin, TimestampMixin, Base):
    """A server's schedule: a cron expression (UTC) and a chain of tasks run in order at each tick.

    `tasks` is the chain: [{"action": "command"|"power"|"backup", "payload": str, "delay_s": int,
    "continue_on_failure": bool}]. `next_run_at` is the tick the queued run job is for (None: disabled); a
    run job whose tick is not the schedule's `next_run_at` is stale and does nothing."""

    __tablename__ = "panel_schedules"

    server_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("panel_servers.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    cron: Mapped[str] = mapped_column(String(100))
    only_when_online: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    tasks: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    next_run_at: Mapped[datetime | None] = mapped_column(default=None)
    last_run_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PanelScheduleRun(IdMixin, Base):
    """One run of a schedule (a tick, or "run now"): when, how it ended, and each task's outcome."""

    __tablename__ = "panel_schedule_runs"
    __table_args__ = (Index("ix_panel_schedule_runs_schedule_id_started_at", "schedule_id", "started_at"),)

    schedule_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("panel_schedules.id", ondelete="CASCADE"))
    trigger: Mapped[str] = mapped_column(String(16))
    """`cron` or `manual`."""
    status: Mapped[str] = mapped_column(String(16), default="running")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    """Per task: index, action, ok, detail."""


BACKUP_STATUSES = ("pending", "running", "ok", "failed")
"""pending (queued) -> running (archived on the node, copied to storage, verified) -> ok | failed."""


class PanelBackup(IdMixin, TimestampMixin, Base):
    """A backup of a server's folder: a tar.gz in core storage (`storage_key`), its sha256, and the digest
    of what it holds (pentad.panel_wire.archives.TreeSummary), checked by a test restore into a scratch
    folder before the backup is `ok`. Locked backups are never pruned by the retention count."""

    __tablename__ = "panel_backups"
    __table_args__ = (Index("ix_panel_backups_server_id_created_at", "server_id", "created_at"),)

    server_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("panel_servers.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    ignore: Mapped[list[str]] = mapped_column(JSON, default=list)
    storage_key: Mapped[str | None] = mapped_column(String(500), default=None)
    size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    digest: Mapped[str | None] = mapped_column(String(64), default=None)
    files: Mapped[int | None] = mapped_column(Integer, default=None)
    bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    error: Mapped[str | None] = mapped_column(String(500), default=None)
    created_by: Mapped[uuid.UUID | None] = mapped_column(default=None)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    verified_at: Mapped[datetime | None] = mapped_column(default=None)
    restored_at: Mapped[datetime | None] = mapped_column(default=None)


PLUGIN_STATUSES = ("stopped", "starting", "running", "crashed", "failed")
"""Written by the plugin host: stopped (disabled, or waiting for approval) -> starting -> running; crashed
(it died or hung: restarted with backoff), failed (garbage on its socket: stopped until enabled again)."""


class PanelPlugin(IdMixin, TimestampMixin, Base):
    """An installed plugin: its manifest, where it came from, what it asks for (`requested`) and what an
    admin approved (`granted`). It runs only when `enabled` and every requested capability is granted.
    Its settings (webhook URLs and the like) are encrypted at rest."""

    __tablename__ = "panel_plugins"

    plugin_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[str] = mapped_column(String(32))
    publisher: Mapped[str] = mapped_column(String(64))
    publisher_key: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(2000))
    package_sha256: Mapped[str] = mapped_column(String(64))
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    requested: Mapped[list[str]] = mapped_column(JSON, default=list)
    granted: Mapped[list[str]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="stopped")
    status_reason: Mapped[str | None] = mapped_column(String(500), default=None)
    restarts: Mapped[int] = mapped_column(Integer, default=0)
    settings_enc: Mapped[str | None] = mapped_column(EncryptedText, default=None)
    approved_by: Mapped[uuid.UUID | None] = mapped_column(default=None)
    approved_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PanelTrustedPublisher(IdMixin, TimestampMixin, Base):
    """A publisher's ed25519 public key an admin trusts to sign plugin packages."""

    __tablename__ = "panel_trusted_publishers"
    __table_args__ = (UniqueConstraint("publisher", "public_key"),)

    publisher: Mapped[str] = mapped_column(String(64))
    public_key: Mapped[str] = mapped_column(String(100))
    added_by: Mapped[uuid.UUID | None] = mapped_column(default=None)
