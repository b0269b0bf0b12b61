"""Webhook notifier: a Discord-style JSON POST ({"content": "..."}) to the `url` setting on server events.

Settings: {"url": "https://discord.com/api/webhooks/..."}. Route GET /status: how many were sent.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request

from pentad_panel_plugin import Event, Panel, Plugin, Request, Response

plugin = Plugin()
sent = {"ok": 0, "failed": 0}
MESSAGES = {"running": "started", "offline": "stopped", "crashed": "crashed"}


def post(url: str, message: str) -> None:
    if not url.startswith(("https://", "http://")):
        raise OSError("the webhook URL must be http(s)")
    body = json.dumps({"content": message}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"}, method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        response.read()


async def notify(panel: Panel, server_id: str, what: str) -> None:
    url = panel.settings.get("url")
    if not url:
        return
    name = (await panel.server(server_id)).name
    try:
        await asyncio.to_thread(post, str(url), f"Server {name} {what}.")
        sent["ok"] += 1
    except OSError as exc:
        sent["failed"] += 1
        await panel.log("webhook failed", error=str(exc))


@plugin.on("panel.server_state_changed")
async def state_changed(event: Event, panel: Panel) -> None:
    what = MESSAGES.get(str(event.payload.get("state")))
    if what is not None and event.payload.get("state") != event.payload.get("previous"):
        await notify(panel, str(event.payload["server_id"]), what)


@plugin.on("panel.server_crashed")
async def crashed(event: Event, panel: Panel) -> None:
    await notify(panel, str(event.payload["server_id"]), "crashed and is not restarted any more")


@plugin.route("GET", "/status")
async def status(request: Request, panel: Panel) -> Response:
    return Response(
        {"sent": sent["ok"], "failed": sent["failed"], "configured": bool(panel.settings.get("url"))}
    )
