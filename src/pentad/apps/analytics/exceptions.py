"""The analytics app's errors: what a client can act on, with stable codes."""

from __future__ import annotations

from typing import Any

from pentad.core.errors import Conflict, NotFound, PermissionDenied


class SiteNotFound(NotFound):
    code = "site_not_found"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("No such site, or it is not shared with you.", **kwargs)


class SitePermission(PermissionDenied):
    code = "site_permission"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("Only the site's owners may do this.", **kwargs)


class DomainTaken(Conflict):
    code = "domain_taken"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("A site with this domain exists already.", **kwargs)
