"""The analytics app's named permissions and the per-site roles that grant them."""

from __future__ import annotations

from pentad.core.auth.permissions import Permission

ANALYTICS_USE = Permission("analytics.use", "Add sites to analytics and see the ones shared with you.")
ANALYTICS_ADMIN = Permission("analytics.admin", "Read and manage every analytics site.")

SITE_READ = Permission("analytics.site.read", "See a site's dashboard and statistics.")
SITE_MANAGE = Permission("analytics.site.manage", "Change a site's settings, share it, delete it.")

SITE_RESOURCE = "analytics.site"

SITE_ROLES = {
    "viewer": (SITE_READ,),
    "owner": (SITE_READ, SITE_MANAGE),
}

ALL = (ANALYTICS_USE, ANALYTICS_ADMIN, SITE_READ, SITE_MANAGE)
