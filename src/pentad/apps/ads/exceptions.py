"""The ads app's errors, rendered as problem+json by the core."""

from __future__ import annotations

from pentad.core.errors import AppError, BadRequest, NotFound


class AdvertiserNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("No such advertiser, or you may not see it.", code="advertiser_not_found")


class CampaignNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("No such campaign, or you may not see it.", code="campaign_not_found")


class CreativeNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("No such creative, or you may not see it.", code="creative_not_found")


class SiteNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("No such site, or you may not see it.", code="site_not_found")


class ZoneNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("No such zone, or you may not see it.", code="zone_not_found")


class InvalidCampaign(AppError):
    """A campaign whose fields contradict each other (each field alone was valid)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=422, code="invalid_campaign")


class DomainTaken(AppError):
    def __init__(self) -> None:
        super().__init__("Another site already has this domain.", status=409, code="domain_taken")


class UnsupportedImage(BadRequest):
    def __init__(self) -> None:
        super().__init__("Upload a PNG, JPEG, GIF or WebP image.", code="unsupported_image")
