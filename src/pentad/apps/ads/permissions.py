"""The ads app's named permissions and the roles on sites and advertisers that grant them.

A user holding `ads.use` creates advertisers and sites and owns what they create; core grants
(`pentad user grant … --resource ads.site:<id> --role viewer`) share one with others. `ads.admin` sees
and manages everything.
"""

from __future__ import annotations

from pentad.core.auth.permissions import Permission

ADS_USE = Permission("ads.use", "Use ads: create advertisers and sites, manage your own.")
ADS_ADMIN = Permission("ads.admin", "Manage every advertiser, campaign, site and zone.")

INVENTORY_MANAGE = Permission("ads.inventory.manage", "Edit a site and its zones.")
CAMPAIGNS_MANAGE = Permission("ads.campaigns.manage", "Edit an advertiser, its campaigns and creatives.")
REPORTS_READ = Permission("ads.reports.read", "Read a site's or an advertiser's setup and reports.")

SITE_RESOURCE = "ads.site"
ADVERTISER_RESOURCE = "ads.advertiser"

SITE_ROLES = {"owner": (INVENTORY_MANAGE, REPORTS_READ), "viewer": (REPORTS_READ,)}
ADVERTISER_ROLES = {"owner": (CAMPAIGNS_MANAGE, REPORTS_READ), "viewer": (REPORTS_READ,)}

ALL = (ADS_USE, ADS_ADMIN, INVENTORY_MANAGE, CAMPAIGNS_MANAGE, REPORTS_READ)
