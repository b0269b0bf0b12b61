"""`pentad streams …`: cameras and their stream keys, as an operator (every camera, as the system)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.streams.actions import cameras, keys
from pentad.apps.streams.actions.context import StreamsContext
from pentad.apps.streams.schemas import CameraCreate
from pentad.apps.streams.spec import APP
from pentad.core import audit
from pentad.core.auth.service import AuthService
from pentad.core.cli_support import run_in_transaction
from pentad.core.errors import AppError
from pentad.core.platform import Platform

T = TypeVar("T")


def _run(work: Callable[[StreamsContext], Awaitable[T]]) -> T:
    async def run(session: AsyncSession, platform: Platform) -> T:
        return await work(StreamsContext(session, platform, None, audit.SYSTEM))

    try:
        return run_in_transaction(run, apps=[APP])
    except AppError as exc:
        raise click.ClickException(exc.message) from None


def _uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise click.ClickException(f"{what} {value!r} is not an id (a UUID).") from None


@click.group(name="streams")
def streams() -> None:
    """Streams cameras and their stream keys."""


@streams.group(name="cameras")
def cameras_group() -> None:
    """Cameras."""


@cameras_group.command("list")
def camera_list() -> None:
    """Every camera: id, visibility, source, live or not, name."""

    async def work(context: StreamsContext) -> list[str]:
        return [
            f"{c.id}\t{c.visibility}\t{c.source}\t{'live' if c.live else 'offline'}\t{c.name}"
            for c in await cameras.list_cameras(context)
        ]

    for line in _run(work):
        click.echo(line)


@cameras_group.command("create")
@click.argument("name")
@click.option("--owner", required=True, help="E-mail of the account that owns the camera.")
@click.option(
    "--visibility", type=click.Choice(["public", "unlisted", "private"]), default="private", show_default=True
)
@click.option(
    "--source",
    type=click.Choice(["rtmp", "whip"]),
    default="rtmp",
    show_default=True,
    help="How media arrives (RTSP cameras, with their credentials, are added through the API).",
)
def camera_create(name: str, owner: str, visibility: str, source: str) -> None:
    """Add a camera; prints its id."""
    try:
        data = CameraCreate.model_validate({"name": name, "visibility": visibility, "source": source})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise click.ClickException(f"{first['loc'][0]}: {first['msg']}") from None

    async def work(context: StreamsContext) -> uuid.UUID:
        owner_id = (await AuthService(context.session, context.platform).get_user_by_email(owner)).id
        return (await cameras.do_create_camera(context, data, owner_id)).id

    camera_id = _run(work)
    click.echo(f"Created camera {data.name!r} ({camera_id}), owned by {owner}.")


@cameras_group.command("delete")
@click.argument("camera_id")
def camera_delete(camera_id: str) -> None:
    """Delete a camera: its keys stop working, every role on it goes."""
    found = _uuid(camera_id, "Camera")

    async def work(context: StreamsContext) -> None:
        await cameras.do_delete_camera(context, found)

    _run(work)
    click.echo(f"Deleted camera {found}.")


@streams.group(name="keys")
def keys_group() -> None:
    """Stream keys (what publishers present)."""


@keys_group.command("create")
@click.argument("camera_id")
@click.option("--name", default="", help="What the key is for (e.g. the encoder).")
def key_create(camera_id: str, name: str) -> None:
    """Make a stream key for a camera; prints it this once (only its hash is stored)."""
    found = _uuid(camera_id, "Camera")

    async def work(context: StreamsContext) -> tuple[str, str, uuid.UUID]:
        created = await keys.do_create_key(context, found, name)
        return created.key, created.rtmp_url, created.id

    key, url, key_id = _run(work)
    click.echo(f"Stream key {key_id} (shown once, store it now):")
    click.echo(f"  server: {url}")
    click.echo(f"  key:    {key}")


@keys_group.command("list")
@click.argument("camera_id")
def key_list(camera_id: str) -> None:
    """A camera's keys: id, …hint, created, revoked (never the keys themselves)."""
    found = _uuid(camera_id, "Camera")

    async def work(context: StreamsContext) -> list[str]:
        return [
            f"{k.id}\t…{k.hint}\t{k.created_at:%Y-%m-%d %H:%M}\t"
            + (f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active")
            + (f"\t{k.name}" if k.name else "")
            for k in await keys.list_keys(context, found)
        ]

    for line in _run(work):
        click.echo(line)


@keys_group.command("revoke")
@click.argument("camera_id")
@click.argument("key_id")
def key_revoke(camera_id: str, key_id: str) -> None:
    """Revoke a key: publishers presenting it are refused from now on."""
    camera, key = _uuid(camera_id, "Camera"), _uuid(key_id, "Key")

    async def work(context: StreamsContext) -> None:
        await keys.do_revoke_key(context, camera, key)

    _run(work)
    click.echo(f"Revoked key {key}.")


@streams.command("nginx-config")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write the config here (mode 0600: it holds the callbacks' secret). Default: standard output.",
)
@click.option(
    "--managed/--system",
    default=False,
    show_default=True,
    help="--managed: the foreground, single-process form Pentad runs itself (NGINX__MANAGE); "
    "--system: for an nginx run by systemd.",
)
def nginx_config_command(output: str | None, *, managed: bool) -> None:
    """The nginx.conf of the nginx-rtmp ingest engine (ENGINE=nginx): publishers on RTMP_HOST:RTMP_PORT,
    on_publish / on_publish_done / on_update calling Pentad on NGINX__CALLBACK_HOST:CALLBACK_PORT with a
    shared secret; nginx writes no HLS (Pentad packages the stream under the camera's id)."""
    from pathlib import Path

    from pentad.apps.streams.media.engines import nginx_config
    from pentad.apps.streams.media.packager import media_root
    from pentad.apps.streams.settings import StreamsSettings
    from pentad.core.cli_support import build_platform

    platform = build_platform([APP])
    try:
        settings = platform.app_settings(StreamsSettings)
        if settings.nginx.callback_port == 0:
            raise click.ClickException(
                "Set PENTAD_STREAMS__NGINX__CALLBACK_PORT: an nginx of the system calls Pentad on a fixed"
                " port."
            )
        prefix = nginx_config.nginx_prefix(settings, media_root(settings, Path(platform.settings.data_dir)))
        text = nginx_config.render(
            settings,
            prefix=prefix,
            callback_port=settings.nginx.callback_port,
            secret=nginx_config.callback_secret(platform.signing_secret),
            managed=managed,
        )
    finally:
        asyncio.run(platform.close())
    if output is None:
        click.echo(text, nl=False)
        return
    nginx_config.write(Path(output), text)
    click.echo(f"Wrote {output} (nginx -t -p {prefix} -c {output} checks it).", err=True)
