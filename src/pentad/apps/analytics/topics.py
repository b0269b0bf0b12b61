"""Authorisation of the analytics realtime topics (live.py publishes on them).

`analytics.site.{site_id}.live`: whoever may read the site (owner and viewer grants, `analytics.admin`,
an API key's scopes narrowing them — access.py, the same check as the stats API). Clients never publish.
"""

from __future__ import annotations

import uuid

from pentad.apps.analytics.access import site_permissions
from pentad.apps.analytics.permissions import ANALYTICS_USE, SITE_READ
from pentad.apps.analytics.repository import get_site
from pentad.core.realtime.topics import TopicAccess, TopicSpec


async def _may_read_site(access: TopicAccess) -> bool:
    if access.action != "subscribe":
        return False
    try:
        site_id = uuid.UUID(access.params["site_id"])
    except ValueError:
        return False
    if await get_site(access.session, site_id) is None:
        return False
    granted = await site_permissions(access.session, access.platform, access.principal, site_id)
    return SITE_READ.key in granted


# ANALYTICS_USE is what every route of the stats API requires (endpoints.Member).
TOPICS = (TopicSpec("analytics.site.{site_id}.live", _may_read_site, history_size=1, requires=ANALYTICS_USE),)
