"""The chat app's settings: PENTAD_CHAT__<NAME> variables (AppSpec.settings), read through
`platform.app_settings(ChatSettings)` (the Platform, or the AppContext a callback gets)."""

from __future__ import annotations

import ipaddress

import structlog
from pydantic import BaseModel, Field, field_validator

from pentad.core.config import CommaList

APP_NAME = "chat"

logger = structlog.get_logger("pentad.chat.settings")


class ChatSettings(BaseModel):
    """The chat app (apps/chat): limits, integrations and notifications."""

    default_tenant: str = Field(
        "default", description="Slug of the tenant Pentad's own accounts chat in through the web pages."
    )
    user_token_ttl: int = Field(
        3600, ge=60, le=2_592_000, description="Default lifetime of user tokens minted by the server API, s."
    )
    max_message_length: int = Field(5000, ge=1, le=100_000, description="Longest message text, characters.")
    max_payload_bytes: int = Field(
        16_384, ge=256, description="Largest JSON payload of a custom message type, bytes (serialised)."
    )
    history_page_max: int = Field(200, ge=10, le=1000, description="Most messages one history page returns.")
    upload_max_bytes: int = Field(26_214_400, ge=1024, description="Largest attachment upload, bytes.")
    thumbnail_size: int = Field(320, ge=32, le=2048, description="Longest side of image thumbnails, pixels.")
    webhook_allowed_networks: CommaList = Field(
        default_factory=list,
        description="Deprecated: use PENTAD_OUTBOUND__ALLOWED_NETWORKS. CIDRs chat's webhooks and push may "
        "reach although private or loopback, added to the core's list.",
    )
    webhook_timeout: float = Field(10.0, gt=0, le=60, description="Timeout of one webhook delivery, seconds.")
    webhook_max_attempts: int = Field(8, ge=1, le=30, description="Delivery attempts before giving up.")
    digest_after_minutes: int = Field(
        60, ge=1, description="E-mail a digest of mentions still unread after this many minutes."
    )
    vapid_subject: str = Field(
        "mailto:admin@example.com", description="Contact (mailto: or https:) sent to Web Push services."
    )

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network, strict=False)
        if value:
            logger.warning(
                "deprecated_setting",
                setting="PENTAD_CHAT__WEBHOOK_ALLOWED_NETWORKS",
                use_instead="PENTAD_OUTBOUND__ALLOWED_NETWORKS",
            )
        return value
