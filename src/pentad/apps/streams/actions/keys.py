"""Stream keys: made (shown once), listed, revoked, rotated. A key is `psk_` and 43 characters of
base64url (256 random bits); only its SHA-256 is stored, with its last 4 characters as a hint. It is never
logged, audited or published."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from urllib.parse import urlsplit

from pentad.apps.streams import repository
from pentad.apps.streams.actions.context import StreamsContext
from pentad.apps.streams.events import KeyChanged, user_topic
from pentad.apps.streams.exceptions import KeyNotFound
from pentad.apps.streams.models import StreamsCamera, StreamsKey
from pentad.apps.streams.permissions import CAMERA_MANAGE, CAMERA_RESOURCE
from pentad.apps.streams.schemas import KeyCreated, KeyRead
from pentad.apps.streams.views import key_read
from pentad.core import audit
from pentad.core.db.base import utcnow, uuid7
from pentad.core.realtime.publish import publish

KEY_PREFIX = "psk_"
KEY_SECRET_BYTES = 32
KEY_LENGTH = len(KEY_PREFIX) + 43


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(KEY_SECRET_BYTES)


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def looks_like_key(raw: str) -> bool:
    """Shape only (cheap refusal of garbage before any lookup)."""
    return (
        len(raw) == KEY_LENGTH
        and raw.startswith(KEY_PREFIX)
        and all(char.isascii() and (char.isalnum() or char in "-_") for char in raw[len(KEY_PREFIX) :])
    )


def rtmp_url(streams: StreamsContext) -> str:
    """Where publishers connect (OBS's "Server"); the key is the stream name."""
    configured = streams.settings.public_rtmp_url
    if configured:
        return configured.rstrip("/")
    host = urlsplit(streams.platform.base_url).hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"rtmp://{host}:{streams.settings.rtmp_port}/live"


async def do_create_key(streams: StreamsContext, camera_id: uuid.UUID, name: str = "") -> KeyCreated:
    camera = (await streams.access(camera_id, CAMERA_MANAGE)).camera
    raw = new_key()
    key = StreamsKey(
        id=uuid7(),
        camera_id=camera.id,
        name=name.strip(),
        secret_hash=hash_key(raw),
        hint=raw[-4:],
        created_by=streams.user_id,
        created_at=utcnow(),
    )
    streams.session.add(key)
    await streams.session.flush()
    audit.record(
        streams.session,
        streams.audit_actor,
        "streams.key.create",
        resource_type=CAMERA_RESOURCE,
        resource_id=str(camera.id),
        key_id=str(key.id),
        hint=key.hint,
    )
    notify_key(streams, camera, key, "key.created")
    return KeyCreated(**key_read(key).model_dump(), key=raw, rtmp_url=rtmp_url(streams))


async def list_keys(streams: StreamsContext, camera_id: uuid.UUID) -> list[KeyRead]:
    camera = (await streams.access(camera_id, CAMERA_MANAGE)).camera
    return [key_read(key) for key in await repository.list_keys(streams.session, camera.id)]


async def _camera_key(
    streams: StreamsContext, camera_id: uuid.UUID, key_id: uuid.UUID
) -> tuple[StreamsCamera, StreamsKey]:
    camera = (await streams.access(camera_id, CAMERA_MANAGE)).camera
    key = await repository.get_key(streams.session, key_id)
    if key is None or key.camera_id != camera.id:
        raise KeyNotFound()
    return camera, key


async def do_revoke_key(streams: StreamsContext, camera_id: uuid.UUID, key_id: uuid.UUID) -> KeyRead:
    """The key stops authorising publishers (revoking a revoked key changes nothing)."""
    camera, key = await _camera_key(streams, camera_id, key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await streams.session.flush()
        audit.record(
            streams.session,
            streams.audit_actor,
            "streams.key.revoke",
            resource_type=CAMERA_RESOURCE,
            resource_id=str(camera.id),
            key_id=str(key.id),
            hint=key.hint,
        )
        notify_key(streams, camera, key, "key.revoked")
    return key_read(key)


async def do_rotate_key(streams: StreamsContext, camera_id: uuid.UUID, key_id: uuid.UUID) -> KeyCreated:
    """A new key with the old one's name; the old one is revoked in the same transaction."""
    _, key = await _camera_key(streams, camera_id, key_id)
    await do_revoke_key(streams, camera_id, key_id)
    return await do_create_key(streams, camera_id, key.name)


def notify_key(streams: StreamsContext, camera: StreamsCamera, key: StreamsKey, change: str) -> None:
    """On the user topics of the camera's owner and of the account acting (never the key itself)."""
    event = KeyChanged(
        type="key.created" if change == "key.created" else "key.revoked",
        camera_id=camera.id,
        key_id=key.id,
        hint=key.hint,
    )
    for user_id in dict.fromkeys(i for i in (camera.owner_id, streams.user_id) if i is not None):
        publish(streams.session, user_topic(user_id), event)
