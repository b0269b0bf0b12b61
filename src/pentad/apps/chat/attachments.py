"""Chat attachments: files uploaded into a channel before the message that carries them is sent.

An upload is stored at once and bound to a message by actions.send.do_send_message (attachment_ids); until
then only its uploader can see or delete it. Images get a small WebP thumbnail, made in a worker thread
so the event loop keeps serving, and refused when their pixel count would make decoding a memory bomb.
"""

from __future__ import annotations

import asyncio
import io
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import BinaryIO

from fastapi import UploadFile
from PIL import Image, ImageOps

from pentad.apps.chat import schemas
from pentad.apps.chat.access import require_post
from pentad.apps.chat.actions.context import ChatContext
from pentad.apps.chat.models import ChatAttachment
from pentad.core.db.base import uuid7
from pentad.core.db.hooks import on_commit
from pentad.core.errors import BadRequest, Conflict, NotFound, PayloadTooLarge
from pentad.core.storage import delete_on_rollback
from pentad.core.storage.base import UnsupportedContentType, media_type_essence

IMAGE_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/webp": "WEBP"}
"""Declared types that get a thumbnail, with the only Pillow decoder allowed to open them."""
MAX_IMAGE_PIXELS = 50_000_000
"""Larger images are refused: decoding one takes width x height x 4 bytes, whatever the file size."""
THUMBNAIL_TYPE = "image/webp"
THUMBNAIL_QUALITY = 80
CHUNK_BYTES = 65_536
MAX_FILENAME_CHARS = 255
MAX_KEY_NAME_CHARS = 100
DEFAULT_CONTENT_TYPE = "application/octet-stream"
MAX_CONTENT_TYPE_CHARS = 100

_UNSAFE_KEY_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
# EXIF orientations 5 to 8 turn the picture a quarter: its displayed width is the stored height.
_QUARTER_TURNS = {5, 6, 7, 8}
_EXIF_ORIENTATION = 0x0112


class AttachmentNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("No such unsent attachment of yours.", code="attachment_not_found")


class AttachmentSent(Conflict):
    def __init__(self) -> None:
        super().__init__(
            "The attachment was sent with a message; delete the message instead.", code="attachment_sent"
        )


class BadImage(BadRequest):
    def __init__(self, message: str = "The image cannot be read; it may be damaged.") -> None:
        super().__init__(message, code="bad_image")


@dataclass(frozen=True, slots=True)
class Thumbnail:
    width: int
    height: int
    """Of the original as displayed, EXIF orientation applied."""
    data: bytes


def display_filename(raw: str | None) -> str:
    """The name to show and download as: no folders (browsers may send `C:\\fakepath\\x.png`), no
    control characters."""
    name = re.split(r"[/\\]", raw or "")[-1]
    name = _CONTROL_CHARACTERS.sub("", name).strip()
    return name[:MAX_FILENAME_CHARS] or "file"


def key_filename(name: str) -> str:
    """A storage-key part from a file name: ASCII letters, digits, `.`, `_` and `-`, never `.` or `..`."""
    safe = _UNSAFE_KEY_CHARACTERS.sub("_", name).strip("._")
    return safe[-MAX_KEY_NAME_CHARS:] or "file"


def make_thumbnail(file: BinaryIO, image_format: str, size: int) -> Thumbnail:
    """Decode an image (only as `image_format`) and shrink it so its longest side is at most `size`."""
    file.seek(0)
    try:
        with Image.open(file, formats=[image_format]) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise BadImage(f"The image has more than {MAX_IMAGE_PIXELS} pixels.")
            if image.getexif().get(_EXIF_ORIENTATION) in _QUARTER_TURNS:
                width, height = height, width
            # JPEG decodes straight to a fraction of its size here, which is most of the work saved.
            image.draft("RGB", (size, size))
            oriented = ImageOps.exif_transpose(image)
            has_alpha = oriented.mode in ("RGBA", "LA", "PA") or "transparency" in oriented.info
            converted = oriented.convert("RGBA" if has_alpha else "RGB")
            converted.thumbnail((size, size), Image.Resampling.LANCZOS)
            output = io.BytesIO()
            converted.save(output, format="WEBP", quality=THUMBNAIL_QUALITY)
    except (Image.DecompressionBombError, OSError, ValueError, SyntaxError, EOFError) as exc:
        # Pillow reports damaged data with any of these, depending on the format and where it breaks.
        raise BadImage() from exc
    return Thumbnail(width=width, height=height, data=output.getvalue())


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    await upload.seek(0)
    while chunk := await upload.read(CHUNK_BYTES):
        yield chunk


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


class AttachmentService:
    """Uploads and deletes attachments for the chat user of a ChatContext."""

    def __init__(self, chat: ChatContext) -> None:
        self.chat = chat
        self.session = chat.session
        self.storage = chat.platform.storage
        self.settings = chat.settings

    async def upload(self, channel_id: uuid.UUID, upload: UploadFile) -> schemas.AttachmentRef:
        access = await self.chat.access(channel_id)
        require_post(access)
        limit = self.settings.upload_max_bytes
        if upload.size is not None and upload.size > limit:
            raise PayloadTooLarge(f"The file is larger than the {limit} bytes allowed.", limit=limit)
        content_type = upload.content_type or DEFAULT_CONTENT_TYPE
        if len(content_type) > MAX_CONTENT_TYPE_CHARS:
            raise UnsupportedContentType(
                f"A content type may be at most {MAX_CONTENT_TYPE_CHARS} characters."
            )
        attachment_id = uuid7()
        filename = display_filename(upload.filename)
        prefix = f"chat/{self.chat.actor.tenant.id}/{channel_id}/{attachment_id}"
        key = f"{prefix}/{key_filename(filename)}"
        stored = await self.storage.put(key, _chunks(upload), content_type=content_type, max_bytes=limit)
        attachment = ChatAttachment(
            id=attachment_id,
            channel_id=channel_id,
            uploader_id=self.chat.actor.user_id,
            storage_key=key,
            filename=filename,
            content_type=stored.content_type,
            size=stored.size,
        )
        image_format = IMAGE_FORMATS.get(media_type_essence(stored.content_type))
        if image_format is not None:
            try:
                thumbnail = await asyncio.to_thread(
                    make_thumbnail, upload.file, image_format, self.settings.thumbnail_size
                )
                thumbnail_key = f"{prefix}-thumbnail.webp"
                await self.storage.put(thumbnail_key, _one_chunk(thumbnail.data), content_type=THUMBNAIL_TYPE)
            except Exception:
                await self.storage.delete(key)
                raise
            attachment.thumbnail_key = thumbnail_key
            attachment.width, attachment.height = thumbnail.width, thumbnail.height
        delete_on_rollback(self.session, self.storage, [key, *filter(None, [attachment.thumbnail_key])])
        self.session.add(attachment)
        await self.session.flush()
        return await self.chat.views.attachment(attachment)

    async def delete(self, attachment_id: uuid.UUID) -> None:
        """Delete an upload of yours that no message carries yet."""
        attachment = await self.session.get(ChatAttachment, attachment_id)
        if attachment is None or attachment.uploader_id != self.chat.actor.user_id:
            raise AttachmentNotFound()
        if attachment.message_id is not None:
            raise AttachmentSent()
        keys = [attachment.storage_key]
        if attachment.thumbnail_key is not None:
            keys.append(attachment.thumbnail_key)
        await self.session.delete(attachment)
        await self.session.flush()
        storage = self.storage

        async def delete_files() -> None:
            for key in keys:
                await storage.delete(key)

        # After the commit: a rolled-back delete must leave the files its row points to.
        on_commit(self.session, delete_files)
