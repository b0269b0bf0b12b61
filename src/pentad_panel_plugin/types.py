"""What plugin handlers receive and return (plain dataclasses, no dependency)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """A panel domain event the plugin subscribed to (`panel.server_state_changed`, `panel.server_crashed`,
    ...): its name and payload (ids and facts, as JSON)."""

    name: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Request:
    """An HTTP request to /api/panel/plugins/{id}/routes/{path}: `path` is the part after `routes`,
    `user_id` the signed-in caller (the panel authenticated them)."""

    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    body: str = ""
    user_id: str | None = None

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True)
class Response:
    """What a route answers: status, a JSON-able body, and a content type (default JSON)."""

    body: Any = None
    status: int = 200
    content_type: str = "application/json"

    def to_json(self) -> dict[str, Any]:
        text = self.body if isinstance(self.body, str) else json.dumps(self.body)
        return {"status": self.status, "content_type": self.content_type, "body": text}


@dataclass(frozen=True)
class Server:
    """A game server as a plugin with `servers.read` sees it."""

    id: str
    name: str
    node_id: str
    state: str
    status: str
    players: int | None = None
