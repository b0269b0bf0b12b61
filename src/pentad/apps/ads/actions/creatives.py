"""Creatives: the ads of a campaign, text or an uploaded image (stored through core storage)."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator

from fastapi import UploadFile
from PIL import Image, UnidentifiedImageError

from pentad.apps.ads import html5, repository
from pentad.apps.ads.actions.campaigns import campaign_access
from pentad.apps.ads.actions.context import AdsContext
from pentad.apps.ads.exceptions import CampaignNotFound, CreativeNotFound, UnsupportedImage
from pentad.apps.ads.images import RENDER_VARIANTS, formats_for
from pentad.apps.ads.models import AdsCreative
from pentad.apps.ads.permissions import ADVERTISER_RESOURCE, CAMPAIGNS_MANAGE
from pentad.apps.ads.schemas import CreativeUpdate, Html5CreativeForm, ImageCreativeForm, TextCreativeCreate
from pentad.core import audit
from pentad.core.db.base import uuid7
from pentad.core.errors import BadRequest, PayloadTooLarge
from pentad.core.jobs.queue import enqueue
from pentad.core.storage import delete_on_rollback

IMAGE_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
MAX_PIXELS = 40_000_000
IMAGE_LINK_TTL = 3600


def storage_key(creative_id: uuid.UUID) -> str:
    return f"ads/creatives/{creative_id}/original"


async def creative_access(ads: AdsContext, creative_id: uuid.UUID) -> tuple[AdsCreative, frozenset[str]]:
    """A creative and the caller's permissions on its advertiser; CreativeNotFound if not theirs to read."""
    creative = await repository.get_creative(ads.session, creative_id)
    if creative is None:
        raise CreativeNotFound()
    try:
        _, access = await campaign_access(ads, creative.campaign_id)
    except CampaignNotFound:
        raise CreativeNotFound() from None
    return creative, access.permissions


async def image_url(ads: AdsContext, creative: AdsCreative) -> str | None:
    if creative.storage_key is None:
        return None
    return await ads.platform.storage.signed_url(creative.storage_key, IMAGE_LINK_TTL)


async def list_creatives(ads: AdsContext, campaign_id: uuid.UUID) -> list[AdsCreative]:
    await campaign_access(ads, campaign_id)
    return list(await repository.list_creatives(ads.session, campaign_id))


async def _managed_campaign(ads: AdsContext, campaign_id: uuid.UUID) -> uuid.UUID:
    campaign, access = await campaign_access(ads, campaign_id)
    access.require(CAMPAIGNS_MANAGE)
    return campaign.advertiser_id


def _recorded(ads: AdsContext, action: str, advertiser_id: uuid.UUID, creative_id: uuid.UUID) -> None:
    audit.record(
        ads.session, ads.audit_actor, action, resource_type=ADVERTISER_RESOURCE, resource_id=advertiser_id,
        creative_id=str(creative_id),
    )  # fmt: skip


async def do_create_text_creative(
    ads: AdsContext, campaign_id: uuid.UUID, data: TextCreativeCreate
) -> AdsCreative:
    advertiser_id = await _managed_campaign(ads, campaign_id)
    creative = AdsCreative(
        campaign_id=campaign_id,
        kind="text",
        name=data.name,
        status=data.status,
        destination_url=data.destination_url,
        headline=data.headline,
        body=data.body,
    )
    ads.session.add(creative)
    await ads.session.flush()
    _recorded(ads, "ads.creative.create", advertiser_id, creative.id)
    return creative


async def check_image(ads: AdsContext, upload: UploadFile) -> tuple[bytes, str, int, int]:
    """The upload's bytes, content type (from its contents, not the client's word) and size in pixels;
    PayloadTooLarge beyond PENTAD_ADS__MAX_CREATIVE_BYTES, UnsupportedImage unless PNG/JPEG/GIF/WebP."""
    limit = ads.settings.max_creative_bytes
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"An image creative may be at most {limit} bytes.", code="creative_too_large")
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind, (width, height) = image.format or "", image.size
            if kind not in IMAGE_TYPES or width * height > MAX_PIXELS:
                raise UnsupportedImage()
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise UnsupportedImage() from None
    return data, IMAGE_TYPES[kind], width, height


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def do_upload_image_creative(
    ads: AdsContext, campaign_id: uuid.UUID, data: ImageCreativeForm, upload: UploadFile
) -> AdsCreative:
    advertiser_id = await _managed_campaign(ads, campaign_id)
    content, content_type, width, height = await check_image(ads, upload)
    creative_id = uuid7()
    key = storage_key(creative_id)
    creative = AdsCreative(
        id=creative_id,
        campaign_id=campaign_id,
        kind="image",
        name=data.name,
        status=data.status,
        destination_url=data.destination_url,
        alt_text=data.alt_text,
        width=width,
        height=height,
        storage_key=key,
        content_type=content_type,
        byte_size=len(content),
    )
    ads.session.add(creative)
    await ads.session.flush()
    await ads.platform.storage.put(
        key, _one_chunk(content), content_type=content_type, max_bytes=len(content)
    )
    delete_on_rollback(ads.session, ads.platform.storage, [key])
    if formats_for(content_type):
        await enqueue(ads.session, RENDER_VARIANTS, {"creative_id": str(creative.id)})
    _recorded(ads, "ads.creative.create", advertiser_id, creative.id)
    return creative


async def do_upload_html5_creative(
    ads: AdsContext, campaign_id: uuid.UUID, data: Html5CreativeForm, upload: UploadFile
) -> AdsCreative:
    """An HTML5 creative from a zip or an HTML file (html5.py checks it); its files go to core storage."""
    advertiser_id = await _managed_campaign(ads, campaign_id)
    files = await html5.read_upload(upload, ads.settings.max_html5_bytes)
    creative_id = uuid7()
    creative = AdsCreative(
        id=creative_id,
        campaign_id=campaign_id,
        kind="html5",
        name=data.name,
        status=data.status,
        destination_url=data.destination_url,
        alt_text=data.alt_text,
        width=data.width,
        height=data.height,
        content_type="text/html",
        byte_size=sum(len(content) for content in files.values()),
    )
    ads.session.add(creative)
    await ads.session.flush()
    stored = await html5.store(ads.platform.storage, creative_id, files)
    delete_on_rollback(ads.session, ads.platform.storage, stored["keys"])
    creative.variants = stored
    _recorded(ads, "ads.creative.create", advertiser_id, creative.id)
    return creative


async def do_update_creative(ads: AdsContext, creative_id: uuid.UUID, data: CreativeUpdate) -> AdsCreative:
    creative, _ = await creative_access(ads, creative_id)
    advertiser_id = await _managed_campaign(ads, creative.campaign_id)
    if creative.kind != "text" and (data.headline is not None or data.body is not None):  # image or html5
        raise BadRequest("Only text creatives have a headline and body.", code="text_fields_on_image")
    for field in ("name", "destination_url", "alt_text", "headline", "body", "status"):
        value = getattr(data, field)
        if value is not None:
            setattr(creative, field, value)
    await ads.session.flush()
    _recorded(ads, "ads.creative.update", advertiser_id, creative.id)
    return creative


async def do_delete_creative(ads: AdsContext, creative_id: uuid.UUID) -> None:
    creative, _ = await creative_access(ads, creative_id)
    advertiser_id = await _managed_campaign(ads, creative.campaign_id)
    keys = repository.stored_keys(creative.storage_key, creative.variants)
    await repository.clear_house_creatives(ads.session, [creative.id])
    await repository.delete_row(ads.session, creative)
    _recorded(ads, "ads.creative.delete", advertiser_id, creative_id)
    ads.delete_files_after_commit(keys)
