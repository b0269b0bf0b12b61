"""What the platform knows about one visitor's request: the shared answer of analytics, ads and streams."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Device = Literal["desktop", "mobile", "tablet", "bot", "other"]
BotReason = Literal["bot_ua", "headless", "datacenter"]
Source = Literal["direct", "search", "social", "email", "paid", "referral"]


@dataclass(frozen=True, slots=True)
class VisitorFacts:
    """One request's visitor facts. No IP and no raw user agent: only what may be stored.

    visitor_id: signed 63-bit int, keyed BLAKE2b over (the day's salt, scope, IP, UA); the same for the same
    visitor on the same UTC day and scope in every app and process, unlinkable once the day's salt is gone.
    bot_reason: None for a human-looking request, else why it looks automated (`device` is then "bot"
    for "bot_ua"/"headless"; a datacenter request keeps its parsed device).
    source: how the visitor came (utm_medium/ref first, then the referrer host); same-site referrers and
    none are "direct" with referrer_host None.
    """

    visitor_id: int
    country: str | None
    region: str | None
    city: str | None
    asn: int | None
    datacenter: bool
    device: Device
    browser: str | None
    browser_major: str | None
    os: str | None
    os_major: str | None
    bot_reason: BotReason | None
    source: Source
    source_name: str | None
    referrer_host: str | None
    referrer_path: str | None
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    utm_content: str | None
    utm_term: str | None

    @property
    def is_bot(self) -> bool:
        return self.bot_reason is not None
