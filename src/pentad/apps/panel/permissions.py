"""The panel app's named permissions and the per-server roles that grant them.

Global: `panel.use` (every member: see the servers shared with them), `panel.servers.create` (create game
servers, own them), `panel.admin` (nodes, templates, every server, plugins). Node principals (`pnd_…`
credentials, principal kind `panel_node`) hold only `panel.agent`, which is explicit: no API key's `*` scope
implies it, and no user route takes it.

Per server (resource type `panel.server`), Pterodactyl's subuser keys: each is a resource role holding the
one permission of the same name (`control.console` grants `panel.server.control.console`), and `owner`
holds them all. Every role also holds `panel.server.view` (see the server at all), which is what "my
servers" lists by. A subuser is granted the roles of the keys it has.
"""

from __future__ import annotations

from pentad.core.auth.permissions import Permission

PANEL_USE = Permission("panel.use", "Use the game panel: see and operate the servers shared with you.")
PANEL_SERVERS_CREATE = Permission("panel.servers.create", "Create game servers (you become their owner).")
PANEL_ADMIN = Permission(
    "panel.admin", "Manage nodes, templates, plugins and every game server of the panel."
)
PANEL_AGENT = Permission("panel.agent", "Connect as a node's agent (node credentials only).", explicit=True)

SERVER_RESOURCE = "panel.server"

SERVER_KEYS: dict[str, str] = {
    "control.console": "Read the console and send commands to it.",
    "control.start": "Start the server.",
    "control.stop": "Stop or kill the server.",
    "control.restart": "Restart the server.",
    "file.read": "List files and folders.",
    "file.read-content": "Read and download files.",
    "file.create": "Create and upload files and folders.",
    "file.update": "Change, rename and move files.",
    "file.delete": "Delete files.",
    "file.archive": "Make and extract archives.",
    "backup.read": "See backups.",
    "backup.create": "Make backups.",
    "backup.delete": "Delete backups.",
    "backup.download": "Download backups.",
    "backup.restore": "Restore backups (replaces the server's files).",
    "schedule.read": "See schedules and their history.",
    "schedule.create": "Create schedules.",
    "schedule.update": "Change schedules and run them now.",
    "schedule.delete": "Delete schedules.",
    "startup.read": "See the startup command and variables.",
    "startup.update": "Change the startup variables.",
    "settings.rename": "Rename the server.",
    "settings.reinstall": "Reinstall the server.",
    "user.read": "See the server's subusers.",
    "user.create": "Add subusers (with keys one holds).",
    "user.update": "Change subusers' keys (with keys one holds).",
    "user.delete": "Remove subusers.",
    "activity.read": "Read the server's activity log.",
    "websocket.connect": "Follow the server's live state and stats.",
}
"""Pterodactyl's subuser permission keys and what each allows."""

SERVER_PERMISSIONS: dict[str, Permission] = {
    key: Permission(f"{SERVER_RESOURCE}.{key}", description) for key, description in SERVER_KEYS.items()
}

SERVER_VIEW = Permission(
    f"{SERVER_RESOURCE}.view", "See the server: its name, state and limits (every role on it includes this)."
)
SERVER_CONSOLE = SERVER_PERMISSIONS["control.console"]
SERVER_START = SERVER_PERMISSIONS["control.start"]
SERVER_STOP = SERVER_PERMISSIONS["control.stop"]
SERVER_RESTART = SERVER_PERMISSIONS["control.restart"]
SERVER_STARTUP_READ = SERVER_PERMISSIONS["startup.read"]
SERVER_STARTUP_UPDATE = SERVER_PERMISSIONS["startup.update"]
SERVER_RENAME = SERVER_PERMISSIONS["settings.rename"]
SERVER_REINSTALL = SERVER_PERMISSIONS["settings.reinstall"]
SERVER_ACTIVITY = SERVER_PERMISSIONS["activity.read"]
SERVER_WEBSOCKET = SERVER_PERMISSIONS["websocket.connect"]

OWNER_ROLE = "owner"

SERVER_ROLES: dict[str, tuple[Permission, ...]] = {
    OWNER_ROLE: (SERVER_VIEW, *SERVER_PERMISSIONS.values()),
    **{key: (SERVER_VIEW, permission) for key, permission in SERVER_PERMISSIONS.items()},
}
"""The resource roles on `panel.server`: `owner` (every key) and one role per key, each with the view."""

ALL = (PANEL_USE, PANEL_SERVERS_CREATE, PANEL_ADMIN, PANEL_AGENT, SERVER_VIEW, *SERVER_PERMISSIONS.values())

SERVER_USER_READ = SERVER_PERMISSIONS["user.read"]
SERVER_USER_CREATE = SERVER_PERMISSIONS["user.create"]
SERVER_USER_UPDATE = SERVER_PERMISSIONS["user.update"]
SERVER_USER_DELETE = SERVER_PERMISSIONS["user.delete"]
SERVER_SCHEDULE_READ = SERVER_PERMISSIONS["schedule.read"]
SERVER_SCHEDULE_CREATE = SERVER_PERMISSIONS["schedule.create"]
SERVER_SCHEDULE_UPDATE = SERVER_PERMISSIONS["schedule.update"]
SERVER_SCHEDULE_DELETE = SERVER_PERMISSIONS["schedule.delete"]
