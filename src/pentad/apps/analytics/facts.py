"""The visitor facts of one ingest request, from the core's `Visitors` (core/visitors): daily visitor id,
GeoIP country (and region/city with a City database), device/browser/OS, bot reason, source and UTM.

The platform will carry its `Visitors` as `platform.visitors` (wired in after the core's per-process
resources landed); until a platform has it, this process builds one per platform from the same settings,
database and key ring, so the ids, salts and lookups are exactly the core's.
"""

from __future__ import annotations

import weakref

from pentad.core.platform import Platform
from pentad.core.visitors import VisitorFacts, Visitors

_OWN: dict[int, Visitors] = {}


def visitors_of(platform: Platform) -> Visitors:
    found = getattr(platform, "visitors", None)
    if isinstance(found, Visitors):
        return found
    key = id(platform)
    own = _OWN.get(key)
    if own is None:
        own = Visitors.from_settings(platform.settings, platform.database, platform.keyring)
        _OWN[key] = own
        weakref.finalize(platform, _forget, key)
    return own


def _forget(key: int) -> None:
    own = _OWN.pop(key, None)
    if own is not None:
        own.close()


async def visitor_facts(
    platform: Platform,
    *,
    client_ip: str,
    user_agent: str,
    referrer: str | None,
    url: str,
    scope: str,
    webdriver: bool,
) -> VisitorFacts:
    return await visitors_of(platform).facts(client_ip, user_agent, referrer, url, scope, webdriver=webdriver)
