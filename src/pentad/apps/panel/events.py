"""The panel's domain events (core/events.py): what other apps, plugins and the panel's own jobs may
subscribe to. Payloads carry ids and the facts of the change only.

- `panel.node_status_changed`: a node went online or offline (its agent connected, left, went silent).
- `panel.server_state_changed`: a server's power state changed (from, to, reason), as its agent reported.
- `panel.server_crashed`: a server exited unexpectedly too often and is not restarted any more (`crashed`).
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel

from pentad.core.events import DomainEvent


class NodeStatusChanged(BaseModel):
    node_id: uuid.UUID
    status: str
    previous: str | None
    reason: str


class ServerStateChanged(BaseModel):
    server_id: uuid.UUID
    node_id: uuid.UUID
    state: str
    previous: str | None
    reason: str


class ServerCrashed(BaseModel):
    server_id: uuid.UUID
    node_id: uuid.UUID
    exit_code: int | None
    exit_signal: int | None


NODE_STATUS_CHANGED = DomainEvent(
    "panel.node_status_changed", NodeStatusChanged, "A node went online or offline."
)
SERVER_STATE_CHANGED = DomainEvent(
    "panel.server_state_changed", ServerStateChanged, "A server's power state changed, as its agent reported."
)
SERVER_CRASHED = DomainEvent(
    "panel.server_crashed",
    ServerCrashed,
    "A server crashed too often in a row and is not restarted any more.",
)
LINK_EVENTS: list[DomainEvent[Any]] = [NODE_STATUS_CHANGED, SERVER_STATE_CHANGED, SERVER_CRASHED]


class PluginStatusChanged(BaseModel):
    plugin_id: str
    status: str
    previous: str | None
    reason: str


PLUGIN_STATUS_CHANGED = DomainEvent(
    "panel.plugin_status_changed",
    PluginStatusChanged,
    "A plugin started, stopped, crashed (restarted with backoff) or failed (stopped for bad output).",
)
PLUGIN_EVENTS: list[DomainEvent[Any]] = [PLUGIN_STATUS_CHANGED]
