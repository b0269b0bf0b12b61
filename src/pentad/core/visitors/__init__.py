"""Shared visitor facts (core, so analytics, ads and streams count the same visitor the same way without
importing one another).

    facts = await platform.visitors.facts(client_ip, user_agent, referrer, url, scope=site_domain)
    facts.visitor_id, facts.country, facts.device, facts.bot_reason, facts.source ...

- ids.py: the daily visitor id (keyed BLAKE2b, salts in `visitor_salts`, encrypted, two days kept,
  rotated by the core cron job `core.rotate_visitor_salts` at 00:00 UTC: jobs.py);
- geoip.py: country / region / city / ASN from MMDB files (memory-mapped, reopened on change);
- agents.py: device, browser, OS (+ majors) from the user agent (ua-parser, Rust resolver, LRU cache);
- bots.py: bot_ua / headless / datacenter; sources.py: direct/search/social/email/paid/referral + UTM.
"""

from pentad.core.visitors.facts import BotReason, Device, Source, VisitorFacts
from pentad.core.visitors.ids import SaltUnavailable
from pentad.core.visitors.service import Visitors

__all__ = ["BotReason", "Device", "SaltUnavailable", "Source", "VisitorFacts", "Visitors"]
