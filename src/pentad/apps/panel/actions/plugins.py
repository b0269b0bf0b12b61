"""Plugins: browse the marketplaces, install, approve capabilities, enable, disable, update, remove,
trusted publisher keys, settings, and the calls that reach a running plugin (HTTP routes, events).
Every change is audited (resource type `panel.plugin`) and wakes the plugin host.

A plugin runs only when enabled and every capability it asks for is approved; an update asking for more
stops it until an admin approves again.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import delete, select

from pentad.apps.panel.actions.context import PanelContext
from pentad.apps.panel.actions.power import release_database
from pentad.apps.panel.models import PanelPlugin, PanelTrustedPublisher
from pentad.apps.panel.permissions import PANEL_ADMIN
from pentad.apps.panel.plugins import market
from pentad.apps.panel.plugins.capabilities import CAPABILITIES, SUBSCRIBABLE_EVENTS, widened
from pentad.apps.panel.plugins.host import relay_address, runnable, wake_host
from pentad.apps.panel.plugins.manifest import Manifest, version_key
from pentad.apps.panel.plugins.signing import SignatureInvalid, check_key
from pentad.apps.panel.plugins.store import (
    get_plugin,
    list_plugins,
    plugin_directory,
    plugin_settings,
    set_plugin_settings,
    trusted_publishers,
)
from pentad.core import audit
from pentad.core.context import JobContext
from pentad.core.db.base import utcnow, uuid7
from pentad.core.errors import AppError, BadRequest, Conflict, NotFound, PermissionDenied, ServiceUnavailable
from pentad.core.events import Event, EventSubscriber
from pentad.core.realtime.relay import RelayError

PLUGIN_RESOURCE = "panel.plugin"
ROUTE_TIMEOUT_MARGIN = 1.0


class PluginNotFound(NotFound):
    code = "plugin_not_found"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("No such plugin is installed.", **kwargs)


class PluginInstalled(Conflict):
    code = "plugin_installed"


class ApprovalRequired(Conflict):
    code = "plugin_approval_required"


class CapabilitiesMismatch(AppError):
    status, code = 422, "plugin_capabilities_mismatch"


class SourceUnknown(BadRequest):
    code = "market_source_unknown"


class PluginNotRunning(ServiceUnavailable):
    code = "plugin_not_running"


class PluginRead(BaseModel):
    plugin_id: str
    name: str
    version: str
    publisher: str
    description: str
    source: str
    requested: list[str]
    granted: list[str]
    needs_approval: list[str] = Field(description="Requested capabilities not approved yet.")
    enabled: bool
    status: str
    status_reason: str | None
    restarts: int
    has_ui: bool
    approved_at: datetime | None
    settings_keys: list[str]


class MarketOffer(BaseModel):
    source: str
    manifest: Manifest
    installed_version: str | None
    sha256: str


class MarketError(BaseModel):
    source: str
    code: str
    message: str


class MarketListing(BaseModel):
    plugins: list[MarketOffer]
    errors: list[MarketError]


class InstallRequest(BaseModel):
    source: str = Field(max_length=2000, description="The index URL (one of PENTAD_PANEL__MARKET_SOURCES).")
    plugin_id: str = Field(max_length=64)
    version: str | None = Field(None, max_length=32, description="Default: the newest offered.")


class ApproveRequest(BaseModel):
    capabilities: list[str] = Field(max_length=len(CAPABILITIES), description="Exactly what it requests.")


class EnableRequest(BaseModel):
    enabled: bool


class SettingsRequest(BaseModel):
    settings: dict[str, Any]


class PublisherRequest(BaseModel):
    publisher: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    public_key: str = Field(min_length=1, max_length=100)


class PublisherRead(BaseModel):
    publisher: str
    public_key: str
    created_at: datetime


def _read(context: PanelContext, plugin: PanelPlugin) -> PluginRead:
    return PluginRead(
        plugin_id=plugin.plugin_id, name=plugin.name, version=plugin.version, publisher=plugin.publisher,
        description=str(plugin.manifest.get("description", "")), source=plugin.source,
        requested=plugin.requested, granted=plugin.granted,
        needs_approval=widened(plugin.granted, plugin.requested), enabled=plugin.enabled,
        status=plugin.status, status_reason=plugin.status_reason, restarts=plugin.restarts,
        has_ui=bool(plugin.manifest.get("ui")), approved_at=plugin.approved_at,
        settings_keys=sorted(plugin_settings(context.platform, plugin)),
    )  # fmt: skip


def _require_admin(context: PanelContext) -> None:
    if not context.is_admin:
        raise PermissionDenied(f"This needs the permission {PANEL_ADMIN.key}.")


async def _plugin(context: PanelContext, plugin_id: str) -> PanelPlugin:
    plugin = await get_plugin(context.session, plugin_id)
    if plugin is None:
        raise PluginNotFound()
    return plugin


def _record(context: PanelContext, action: str, plugin_id: str, **details: Any) -> None:
    audit.record(
        context.session, context.audit_actor, f"panel.plugin.{action}", resource_type=PLUGIN_RESOURCE,
        resource_id=plugin_id, **details,
    )  # fmt: skip


async def list_installed(context: PanelContext) -> list[PluginRead]:
    _require_admin(context)
    return [_read(context, plugin) for plugin in await list_plugins(context.session)]


async def get_installed(context: PanelContext, plugin_id: str) -> PluginRead:
    _require_admin(context)
    return _read(context, await _plugin(context, plugin_id))


async def browse(context: PanelContext) -> MarketListing:
    """Every plugin the configured sources offer (a source whose index is unsigned, or signed by an
    untrusted key, or unreachable, is listed under `errors` and offers nothing)."""
    _require_admin(context)
    installed = {p.plugin_id: p.version for p in await list_plugins(context.session)}
    offers: list[MarketOffer] = []
    errors: list[MarketError] = []
    for source in context.settings.market_sources:
        problems: list[str] = []
        try:
            found = await market.fetch_index(source, list(context.settings.market_trusted_keys), problems)
        except AppError as exc:
            errors.append(MarketError(source=source, code=exc.code, message=exc.message))
            continue
        errors += [MarketError(source=source, code="invalid_entry", message=text) for text in problems]
        offers += [
            MarketOffer(
                source=source,
                manifest=offer.manifest,
                sha256=offer.sha256,
                installed_version=installed.get(offer.manifest.id),
            )
            for offer in found
        ]
    return MarketListing(plugins=offers, errors=errors)


async def _offer(
    context: PanelContext, source: str, plugin_id: str, version: str | None
) -> market.MarketPlugin:
    if source not in context.settings.market_sources:
        raise SourceUnknown("The source is not one of PENTAD_PANEL__MARKET_SOURCES.")
    offers = [
        offer
        for offer in await market.fetch_index(source, list(context.settings.market_trusted_keys))
        if offer.manifest.id == plugin_id and (version is None or offer.manifest.version == version)
    ]
    if not offers:
        raise market.MarketEntryNotFound(f"{source} offers no plugin {plugin_id!r} in that version.")
    return max(offers, key=lambda offer: version_key(offer.manifest.version))


async def _download(context: PanelContext, offer: market.MarketPlugin) -> None:
    data = await market.fetch_package(offer, await trusted_publishers(context.session))
    target = plugin_directory(context.settings, context.platform, offer.manifest.id)
    market.unpack(data, target, offer.manifest)


async def do_install(context: PanelContext, data: InstallRequest) -> PluginRead:
    """Download, check (index signature, SHA-256, publisher signature) and unpack a plugin. It is installed
    disabled, with nothing approved."""
    _require_admin(context)
    if await get_plugin(context.session, data.plugin_id) is not None:
        raise PluginInstalled("The plugin is installed already; update it instead.")
    offer = await _offer(context, data.source, data.plugin_id, data.version)
    await _download(context, offer)
    manifest = offer.manifest
    plugin = PanelPlugin(
        id=uuid7(), plugin_id=manifest.id, name=manifest.name, version=manifest.version,
        publisher=manifest.publisher, publisher_key=offer.publisher_key, source=data.source,
        package_sha256=offer.sha256, manifest=manifest.model_dump(mode="json"),
        requested=manifest.capabilities, granted=[], enabled=False, status="stopped", restarts=0,
    )  # fmt: skip
    context.session.add(plugin)
    _record(context, "install", manifest.id, version=manifest.version, sha256=offer.sha256)
    await context.session.flush()
    return _read(context, plugin)


async def do_update(context: PanelContext, plugin_id: str) -> PluginRead:
    """Install the newest version its source offers. If it asks for more capabilities, it stops until an
    admin approves them."""
    _require_admin(context)
    plugin = await _plugin(context, plugin_id)
    offer = await _offer(context, plugin.source, plugin_id, None)
    if version_key(offer.manifest.version) <= version_key(plugin.version):
        raise Conflict(f"Version {plugin.version} is the newest the source offers.")
    await _download(context, offer)
    previous = plugin.version
    manifest = offer.manifest
    plugin.version, plugin.name, plugin.manifest = (
        manifest.version,
        manifest.name,
        manifest.model_dump(mode="json"),
    )
    plugin.package_sha256, plugin.publisher_key = offer.sha256, offer.publisher_key
    plugin.requested = manifest.capabilities
    plugin.granted = [name for name in plugin.granted if name in manifest.capabilities]
    more = widened(plugin.granted, plugin.requested)
    if more:
        plugin.status, plugin.status_reason = "stopped", f"awaiting approval of {', '.join(more)}"
    _record(context, "update", plugin_id, previous=previous, version=manifest.version, asks_more=more)
    await wake_host(context.platform)
    return _read(context, plugin)


async def do_approve(context: PanelContext, plugin_id: str, data: ApproveRequest) -> PluginRead:
    """Approve exactly the capabilities the plugin requests (the admin has read them)."""
    _require_admin(context)
    plugin = await _plugin(context, plugin_id)
    if sorted(set(data.capabilities)) != sorted(plugin.requested):
        raise CapabilitiesMismatch(
            "Approve exactly the capabilities the plugin requests.", requested=plugin.requested
        )
    plugin.granted = sorted(plugin.requested)
    plugin.approved_by, plugin.approved_at = context.user_id, utcnow()
    if plugin.status == "stopped":
        plugin.status_reason = None
    _record(context, "approve", plugin_id, capabilities=plugin.granted, version=plugin.version)
    await wake_host(context.platform)
    return _read(context, plugin)


async def do_enable(context: PanelContext, plugin_id: str, *, enabled: bool) -> PluginRead:
    _require_admin(context)
    plugin = await _plugin(context, plugin_id)
    more = widened(plugin.granted, plugin.requested)
    if enabled and more:
        raise ApprovalRequired(f"Approve its capabilities first: {', '.join(more)}.", needs_approval=more)
    plugin.enabled = enabled
    if enabled and plugin.status == "failed":
        plugin.status, plugin.status_reason = "stopped", None
    _record(context, "enable" if enabled else "disable", plugin_id)
    await wake_host(context.platform)
    return _read(context, plugin)


async def do_remove(context: PanelContext, plugin_id: str) -> None:
    _require_admin(context)
    plugin = await _plugin(context, plugin_id)
    await context.session.delete(plugin)
    shutil.rmtree(plugin_directory(context.settings, context.platform, plugin_id), ignore_errors=True)
    _record(context, "remove", plugin_id, version=plugin.version)
    await wake_host(context.platform)


async def do_set_settings(context: PanelContext, plugin_id: str, data: SettingsRequest) -> PluginRead:
    """Replace the plugin's settings (stored encrypted; given to it when it starts, so it is restarted)."""
    _require_admin(context)
    plugin = await _plugin(context, plugin_id)
    if len(json.dumps(data.settings)) > 3000:
        raise BadRequest("Plugin settings are at most 3000 characters of JSON.")
    set_plugin_settings(context.platform, plugin, data.settings)
    _record(context, "settings", plugin_id, keys=sorted(data.settings))
    await wake_host(context.platform)
    return _read(context, plugin)


async def list_publishers(context: PanelContext) -> list[PublisherRead]:
    _require_admin(context)
    rows = await context.session.scalars(
        select(PanelTrustedPublisher).order_by(PanelTrustedPublisher.publisher)
    )
    return [
        PublisherRead(publisher=r.publisher, public_key=r.public_key, created_at=r.created_at) for r in rows
    ]


async def do_trust_publisher(context: PanelContext, data: PublisherRequest) -> PublisherRead:
    _require_admin(context)
    try:
        key = check_key(data.public_key)
    except SignatureInvalid as exc:
        raise BadRequest(str(exc)) from None
    if key in (await trusted_publishers(context.session)).get(data.publisher, []):
        raise Conflict("This publisher key is trusted already.")
    row = PanelTrustedPublisher(
        id=uuid7(), publisher=data.publisher, public_key=key, added_by=context.user_id
    )
    context.session.add(row)
    await context.session.flush()
    audit.record(
        context.session, context.audit_actor, "panel.plugin.trust_publisher",
        resource_type="panel.publisher", resource_id=data.publisher, public_key=key,
    )  # fmt: skip
    return PublisherRead(publisher=row.publisher, public_key=row.public_key, created_at=row.created_at)


async def do_distrust_publisher(context: PanelContext, publisher: str, public_key: str) -> None:
    _require_admin(context)
    result = await context.session.execute(
        delete(PanelTrustedPublisher).where(
            PanelTrustedPublisher.publisher == publisher, PanelTrustedPublisher.public_key == public_key
        )
    )
    if not getattr(result, "rowcount", 0):
        raise NotFound("No such trusted publisher key.")
    audit.record(
        context.session, context.audit_actor, "panel.plugin.distrust_publisher",
        resource_type="panel.publisher", resource_id=publisher, public_key=public_key,
    )  # fmt: skip


async def ui_file(context: PanelContext, plugin_id: str) -> Path:
    """The plugin's UI page (capability ui.panel), served in a sandboxed frame."""
    _require_admin(context)
    plugin = await _plugin(context, plugin_id)
    page = plugin.manifest.get("ui")
    if not page or "ui.panel" not in plugin.granted:
        raise PermissionDenied("The plugin has no approved UI panel (capability ui.panel).")
    root = plugin_directory(context.settings, context.platform, plugin_id).resolve()
    path = (root / str(page)).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise NotFound("The plugin's UI page is missing.")
    return path


async def call_route(
    context: PanelContext, plugin_id: str, method: str, path: str, query: dict[str, str], body: str
) -> dict[str, Any]:
    """An HTTP request to a running plugin's route (capability http.routes); its answer
    ({status, content_type, body})."""
    plugin = await _plugin(context, plugin_id)
    if "http.routes" not in plugin.granted or not runnable(plugin):
        raise PluginNotFound()
    request = {
        "method": method, "path": path, "query": query, "body": body,
        "user_id": str(context.user_id) if context.user_id else None,
    }  # fmt: skip
    timeout = context.settings.plugin_call_timeout + ROUTE_TIMEOUT_MARGIN
    await release_database(context.session)  # the plugin's own calls may write while it answers
    try:
        raw = await context.platform.relay.request(
            relay_address(plugin_id), json.dumps({"kind": "http", "request": request}), timeout=timeout
        )
        answer = json.loads(raw)
    except (RelayError, TimeoutError, ValueError) as exc:  # NoHolder: not running; RelayTimeout
        raise PluginNotRunning(
            f"The plugin is not running or did not answer ({type(exc).__name__})."
        ) from None
    response = answer.get("response") if isinstance(answer, dict) and answer.get("ok") else None
    if not isinstance(response, dict):
        raise PluginNotRunning("The plugin could not answer.", error=str(answer.get("error", ""))[:300])
    status = response.get("status")
    if not isinstance(status, int) or not 200 <= status <= 599:
        raise PluginNotRunning("The plugin answered something that is not an HTTP response.")
    return response


async def dispatch_event(context: JobContext, event: Event[Any]) -> None:
    """Subscriber `panel.plugin_dispatch`: hand a panel event to every running plugin that may subscribe
    (the host checks the plugin asked for it)."""
    platform = context.platform
    async with platform.database.transaction(writes=False) as session:
        targets = [
            p.plugin_id
            for p in await list_plugins(session)
            if runnable(p) and "events.subscribe" in p.granted
        ]
    message = json.dumps(
        {
            "kind": "event",
            "name": event.name,
            "payload": event.payload.model_dump(mode="json"),
            "id": str(event.id),
        }
    )
    for plugin_id in targets:
        await platform.relay.send(relay_address(plugin_id), message)


SUBSCRIBERS = [
    EventSubscriber(name, dispatch_event, name=f"panel.plugin_dispatch_{name.split('.', 1)[1]}")
    for name in SUBSCRIBABLE_EVENTS
]
