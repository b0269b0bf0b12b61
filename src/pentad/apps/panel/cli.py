"""`pentad panel …`: nodes, their enrolment tokens and templates, as an operator (the system acts)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.panel import repository
from pentad.apps.panel.actions import nodes, plugins, templates
from pentad.apps.panel.actions.context import PanelContext
from pentad.apps.panel.exceptions import InvalidEgg
from pentad.apps.panel.plugins import market as market_tools
from pentad.apps.panel.plugins import signing
from pentad.apps.panel.plugins.manifest import InvalidManifest
from pentad.apps.panel.schemas import EnrolmentTokenCreate
from pentad.apps.panel.spec import APP
from pentad.core import audit
from pentad.core.cli_support import run_in_transaction
from pentad.core.errors import AppError
from pentad.core.platform import Platform

T = TypeVar("T")


def _run(work: Callable[[PanelContext], Awaitable[T]]) -> T:
    async def run(session: AsyncSession, platform: Platform) -> T:
        return await work(PanelContext(session, platform, None, audit.SYSTEM))

    try:
        return run_in_transaction(run, apps=[APP])
    except AppError as exc:
        raise click.ClickException(exc.message) from None


@click.group(name="panel")
def panel() -> None:
    """Panel nodes, enrolment tokens, templates and plugins."""


@panel.command("node-token")
@click.argument("name")
@click.option("--ttl", type=click.IntRange(60, 604_800), default=None, help="Seconds the token is valid.")
def node_token(name: str, ttl: int | None) -> None:
    """A one-time enrolment token for the node NAME (a new node, or an existing one enrolled again, which
    replaces its credential). Prints the token and the command to run on the node."""

    async def work(context: PanelContext) -> tuple[str, str]:
        existing = await repository.get_node_by_name(context.session, name)
        data = (
            EnrolmentTokenCreate(node_id=existing.id, ttl=ttl)
            if existing is not None
            else EnrolmentTokenCreate(node_name=name, ttl=ttl)
        )
        created = await nodes.do_create_enrolment_token(context, data)
        return created.token, created.command

    try:
        token, command = _run(work)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(token)
    click.echo(f"On the node, run: {command}", err=True)


@panel.command("nodes")
def nodes_list() -> None:
    """Every node: id, status, servers, memory and disk allocated/capacity (MiB), name."""

    async def work(context: PanelContext) -> list[str]:
        return [
            f"{n.id}\t{n.status}{' (draining)' if n.draining else ''}\t{n.servers}\t"
            f"{n.allocated_memory_mb}/{n.memory_mb}\t{n.allocated_disk_mb}/{n.disk_mb}\t{n.name}"
            for n in await nodes.list_nodes(context)
        ]

    for line in _run(work):
        click.echo(line)


@panel.command("templates")
def templates_list() -> None:
    """Every template: id, slug, source, variables, name."""

    async def work(context: PanelContext) -> list[str]:
        return [
            f"{t.id}\t{t.slug}\t{t.source}\t{len(t.variables)}\t{t.name}"
            for t in await templates.list_templates(context)
        ]

    for line in _run(work):
        click.echo(line)


@panel.group("template")
def template_group() -> None:
    """Templates (eggs)."""


@template_group.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("--slug", default=None, help="The template's slug (default: made from the egg's name).")
@click.option("--replace", is_flag=True, help="Update the template of the same slug if it exists.")
def template_import(file: TextIO, slug: str | None, replace: bool) -> None:  # noqa: FBT001 - a click flag
    """Import a Pterodactyl/Pelican egg export (JSON FILE, `-` for stdin); prints the template's id and
    slug, and the import's warnings on stderr."""
    try:
        parsed = templates.read_egg_file(file.read())
    except InvalidEgg as exc:
        details = "".join(f"\n  {issue['msg']}" for issue in exc.extra.get("errors", []))
        raise click.ClickException(exc.message + details) from None
    if slug is not None:
        parsed.slug = slug

    async def work(context: PanelContext) -> tuple[str, str, bool, list[str]]:
        template, created = await templates.do_save_egg(context, parsed, replace=replace, source="egg")
        return str(template.id), template.slug, created, parsed.warnings

    template_id, saved_slug, created, warnings = _run(work)
    click.echo(f"{template_id}\t{saved_slug}\t{'created' if created else 'replaced'}")
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)


@panel.group("plugins")
def plugins_group() -> None:
    """Plugins: installed ones, approval, trusted publishers; and the publishers' and markets' tools
    (keygen, publish, sign-index), which need no panel."""


@plugins_group.command("keygen")
@click.option(
    "--out", type=click.Path(dir_okay=False, writable=True), required=True, help="Private key file."
)
def plugins_keygen(out: str) -> None:
    """Make an ed25519 key pair: the private key goes to OUT (mode 0600), the public key is printed."""
    private, public = signing.keygen()
    path = Path(out)
    if path.exists():
        raise click.ClickException(f"{out} exists; refusing to overwrite a key.")
    path.touch(mode=0o600)
    path.write_text(private + "\n")
    click.echo(public)


def _private_key(path: str) -> str:
    try:
        key = Path(path).read_text().strip()
        signing.public_key(key)
    except (OSError, signing.SignatureInvalid) as exc:
        raise click.ClickException(f"{path}: {exc}") from None
    return key


@plugins_group.command("publish")
@click.argument("plugin", type=click.Path(file_okay=False, exists=True))
@click.argument("market", type=click.Path(file_okay=False))
@click.option(
    "--key", "key_file", required=True, type=click.Path(dir_okay=False, exists=True), help="Publisher key."
)
def plugins_publish(plugin: str, market: str, key_file: str) -> None:
    """Pack the plugin folder PLUGIN, sign the package with the publisher's key and add it to the market
    folder MARKET (packages/ and index.json; an entry of the same id is replaced). Run sign-index after."""
    key = _private_key(key_file)
    try:
        package = market_tools.build_package(Path(plugin))
    except (OSError, ValueError, InvalidManifest) as exc:
        raise click.ClickException(f"{plugin}: {getattr(exc, 'extra', {}).get('errors') or exc}") from None
    root = Path(market)
    (root / "packages").mkdir(parents=True, exist_ok=True)
    entry = market_tools.index_entry(package, "", key, signing.public_key(key))
    name = f"{entry['manifest']['id']}-{entry['manifest']['version']}.zip"
    entry["url"] = f"packages/{name}"
    (root / "packages" / name).write_bytes(package)
    index_path = root / "index.json"
    index: dict[str, Any] = {"name": root.name, "plugins": []}
    if index_path.exists():
        index = json.loads(index_path.read_text())
    others = [e for e in index["plugins"] if e["manifest"]["id"] != entry["manifest"]["id"]]
    index["plugins"] = [*others, entry]
    index_path.write_text(json.dumps(index, indent=1))
    click.echo(f"{entry['url']}\t{entry['sha256']}")


@plugins_group.command("sign-index")
@click.argument("market", type=click.Path(file_okay=False, exists=True))
@click.option(
    "--key", "key_file", required=True, type=click.Path(dir_okay=False, exists=True), help="Market key."
)
def plugins_sign_index(market: str, key_file: str) -> None:
    """Sign MARKET/index.json with the market's key (writes index.json.sig). Serve the folder from any
    static host; panels trust the printed public key (PENTAD_PANEL__MARKET_TRUSTED_KEYS)."""
    key = _private_key(key_file)
    index = Path(market) / "index.json"
    (Path(market) / "index.json.sig").write_text(signing.sign(key, index.read_bytes()))
    click.echo(signing.public_key(key))


@plugins_group.command("trust-key")
@click.argument("publisher")
@click.argument("public_key")
def plugins_trust_key(publisher: str, public_key: str) -> None:
    """Trust PUBLISHER's ed25519 PUBLIC_KEY (base64) to sign plugin packages."""

    async def work(context: PanelContext) -> None:
        await plugins.do_trust_publisher(
            context, plugins.PublisherRequest(publisher=publisher, public_key=public_key)
        )

    try:
        _run(work)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@plugins_group.command("list")
def plugins_list() -> None:
    """Installed plugins: id, version, enabled, status, capabilities awaiting approval."""

    async def work(context: PanelContext) -> list[str]:
        return [
            f"{p.plugin_id}\t{p.version}\t{'enabled' if p.enabled else 'disabled'}\t{p.status}\t"
            f"{','.join(p.needs_approval) or '-'}"
            for p in await plugins.list_installed(context)
        ]

    for line in _run(work):
        click.echo(line)


@plugins_group.command("approve")
@click.argument("plugin_id")
def plugins_approve(plugin_id: str) -> None:
    """Approve every capability PLUGIN_ID requests (prints them)."""

    async def work(context: PanelContext) -> list[str]:
        requested = (await plugins.get_installed(context, plugin_id)).requested
        await plugins.do_approve(context, plugin_id, plugins.ApproveRequest(capabilities=requested))
        return requested

    click.echo(", ".join(_run(work)) or "(none)")


@plugins_group.command("enable")
@click.argument("plugin_id")
def plugins_enable(plugin_id: str) -> None:
    """Enable PLUGIN_ID (its capabilities must be approved)."""
    _run(lambda context: plugins.do_enable(context, plugin_id, enabled=True))


@plugins_group.command("disable")
@click.argument("plugin_id")
def plugins_disable(plugin_id: str) -> None:
    """Disable (stop) PLUGIN_ID."""
    _run(lambda context: plugins.do_enable(context, plugin_id, enabled=False))
