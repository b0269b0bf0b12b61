"""Image variants: an uploaded image creative resized to the widths of WIDTHS (never up) in AVIF (when
this Pillow has it), WebP and its own format, stored through core storage at
`ads/creatives/<id>/<width>.<format>` by the job `ads.render_variants` (queue `ads`, enqueued with the
upload), and served publicly at `/ads/i/<id>/<width>.<format>` with
`Cache-Control: public, max-age=31536000, immutable` (a creative's image never changes: a new image is a
new creative). The decision answer lists them as `<picture>` sources (a srcset per format) for the loader.

Animated GIFs keep only their original (a resize would drop the animation). The upload already refused
what is not PNG/JPEG/GIF/WebP and anything above MAX_PIXELS (a decompression bomb); rendering checks again.
"""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Final

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from PIL import Image, ImageOps, features
from starlette.responses import Response, StreamingResponse

from pentad.apps.ads.delivery import reload_after_commit
from pentad.apps.ads.models import AdsCreative
from pentad.core.context import AppContext, JobContext
from pentad.core.errors import NotFound
from pentad.core.platform import get_platform
from pentad.core.policy import UNLIMITED, route_policy
from pentad.core.storage import ObjectNotFound

RENDER_VARIANTS: Final = "ads.render_variants"
WIDTHS: Final = (320, 640, 960, 1280)
MAX_PIXELS: Final = 40_000_000
IMMUTABLE: Final = "public, max-age=31536000, immutable"
FORMATS: Final = {"avif": "image/avif", "webp": "image/webp", "jpeg": "image/jpeg", "png": "image/png"}
ORIGINAL_FORMATS: Final = {"image/jpeg": "jpeg", "image/png": "png", "image/webp": "webp"}
SAVE_OPTIONS: Final[dict[str, dict[str, Any]]] = {
    "avif": {"quality": 60},
    "webp": {"quality": 80, "method": 4},
    "jpeg": {"quality": 82, "optimize": True, "progressive": True},
    "png": {"optimize": True},
}

router = APIRouter(include_in_schema=False)


def variant_key(creative_id: uuid.UUID, width: int, fmt: str) -> str:
    return f"ads/creatives/{creative_id}/{width}.{fmt}"


def formats_for(content_type: str) -> list[str]:
    """The formats to render an original of `content_type` in, best first; none for GIF."""
    original = ORIGINAL_FORMATS.get(content_type)
    if original is None:
        return []
    found = ["avif"] if features.check("avif") else []
    found.append("webp")
    if original not in found:
        found.append(original)
    return found


def widths_for(width: int) -> list[int]:
    """The variant widths of an image `width` pixels wide: those of WIDTHS it reaches, else its own."""
    return [w for w in WIDTHS if w <= width] or [width]


def render(data: bytes, content_type: str) -> dict[tuple[int, str], bytes]:
    """Every variant of an image: (width, format) -> bytes. CPU-bound: run it in a thread."""
    formats = formats_for(content_type)
    if not formats:
        return {}
    with Image.open(io.BytesIO(data)) as opened:
        if opened.width * opened.height > MAX_PIXELS:
            raise ValueError("image too large")
        image = ImageOps.exif_transpose(opened)
        image.load()
    found: dict[tuple[int, str], bytes] = {}
    for width in widths_for(image.width):
        height = max(1, round(image.height * width / image.width))
        resized = image if width == image.width else image.resize((width, height), Image.Resampling.LANCZOS)
        for fmt in formats:
            frame = resized
            if fmt == "jpeg" and frame.mode not in ("RGB", "L"):
                frame = frame.convert("RGB")
            elif fmt in ("avif", "webp") and frame.mode not in ("RGB", "RGBA"):
                frame = frame.convert("RGBA")  # palette, grey-alpha, 16-bit: what the encoders take
            buffer = io.BytesIO()
            frame.save(buffer, format=fmt.upper(), **SAVE_OPTIONS[fmt])
            found[(width, fmt)] = buffer.getvalue()
    return found


async def _read(context: AppContext, key: str) -> bytes:
    _, body = await context.storage.get(key)
    chunks = [chunk async for chunk in body]
    return b"".join(chunks)


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def render_variants(context: AppContext, creative_id: uuid.UUID) -> int:
    """Render and store a creative's variants, then record them on its row; returns how many."""
    async with context.database.transaction(writes=False) as session:
        creative = await session.get(AdsCreative, creative_id)
        if creative is None or creative.kind != "image" or creative.storage_key is None:
            return 0
        key, content_type = creative.storage_key, creative.content_type or ""
    try:
        data = await _read(context, key)
    except ObjectNotFound:
        return 0
    variants = await asyncio.to_thread(render, data, content_type)
    keys = []
    for (width, fmt), content in sorted(variants.items()):
        stored = variant_key(creative_id, width, fmt)
        await context.storage.put(
            stored, _one_chunk(content), content_type=FORMATS[fmt], max_bytes=len(content)
        )
        keys.append(stored)
    async with context.database.transaction() as session:
        creative = await session.get(AdsCreative, creative_id)
        if creative is None:  # deleted meanwhile: take the files away again
            for stored in keys:
                await context.storage.delete(stored)
            return 0
        creative.variants = {
            "widths": sorted({width for width, _ in variants}),
            "formats": [fmt for fmt in formats_for(content_type) if any(f == fmt for _, f in variants)],
            "keys": keys,
        }
        reload_after_commit(session, context)
    return len(keys)


async def render_variants_job(context: JobContext, payload: dict[str, Any]) -> None:
    await render_variants(context.platform, uuid.UUID(payload["creative_id"]))


def picture_sources(base_url: str, creative_id: uuid.UUID, variants: dict[str, Any]) -> list[dict[str, str]]:
    """`<source>`s of a `<picture>`: a type and a srcset per format, best first (the last is the fallback
    format the `<img>` itself may use)."""
    widths = variants.get("widths") or []
    found = []
    for fmt in variants.get("formats") or []:
        srcset = ", ".join(f"{base_url}/ads/i/{creative_id}/{width}.{fmt} {width}w" for width in widths)
        found.append({"type": FORMATS[fmt], "srcset": srcset})
    return found


@router.get("/ads/i/{creative_id}/{width}.{fmt}")
@route_policy(public="an ad's image, shown on any publisher's page", rate_limit=UNLIMITED)
async def variant(
    request: Request,
    creative_id: uuid.UUID,
    width: Annotated[int, PathParam(ge=1, le=10_000)],
    fmt: Annotated[str, PathParam(max_length=8)],
) -> Response:
    if fmt not in FORMATS:
        raise NotFound("No such image.")
    try:
        found, body = await get_platform(request).storage.get(variant_key(creative_id, width, fmt))
    except ObjectNotFound:
        raise NotFound("No such image.") from None
    return StreamingResponse(
        body,
        media_type=FORMATS[fmt],
        headers={"Cache-Control": IMMUTABLE, "Content-Length": str(found.size), "ETag": f'"{found.etag}"'},
    )
