"""`Visitors`: the one place a request becomes VisitorFacts (see the package docstring)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from pentad.core.config import Settings, VisitorsSettings
from pentad.core.crypto import KeyRing
from pentad.core.db.engine import Database
from pentad.core.visitors.agents import Agents
from pentad.core.visitors.bots import BotRules
from pentad.core.visitors.facts import VisitorFacts
from pentad.core.visitors.geoip import GeoIP, default_asn_db, default_country_db
from pentad.core.visitors.ids import Salts, utc_today, visitor_id
from pentad.core.visitors.sources import classify


class Visitors:
    def __init__(
        self, settings: VisitorsSettings, database: Database, keyring: KeyRing, *, data_dir: Path
    ) -> None:
        self.settings = settings
        self.geoip = GeoIP(
            settings.country_db or default_country_db(data_dir),
            settings.city_db,
            settings.asn_db or default_asn_db(data_dir),
        )
        self.agents = Agents(settings.ua_cache_size)
        self.bots = BotRules(settings.datacenter_asns)
        self.salts = Salts(database, keyring)

    @classmethod
    def from_settings(cls, settings: Settings, database: Database, keyring: KeyRing) -> Visitors:
        return cls(settings.visitors, database, keyring, data_dir=settings.data_dir)

    async def visitor_id(
        self, client_ip: str, user_agent: str, scope: str, *, day: date | None = None
    ) -> int:
        """The daily id alone (SaltUnavailable for a day older than yesterday)."""
        day = day or utc_today()
        salt = self.salts.cached(day) or await self.salts.get(day)
        return visitor_id(salt, scope, client_ip, user_agent)

    async def facts(
        self,
        client_ip: str,
        user_agent: str,
        referrer: str | None,
        url: str | None,
        scope: str,
        *,
        day: date | None = None,
        webdriver: bool = False,
    ) -> VisitorFacts:
        """Everything the apps store about a request's visitor. `scope` names the counting site (analytics
        and ads both pass the site's canonical domain, so their ids match); `day` (UTC) defaults to today;
        `webdriver`: the page reported `navigator.webdriver`. Raises SaltUnavailable only for a `day`
        before yesterday. No database round trip except the first call of a UTC day in this process."""
        day = day or utc_today()
        salt = self.salts.cached(day) or await self.salts.get(day)
        agent = self.agents.parse(user_agent)
        where = self.geoip.lookup(client_ip)
        reason = self.bots.reason(user_agent, spider=agent.spider, webdriver=webdriver, asn=where.asn)
        origin = classify(referrer, url)
        return VisitorFacts(
            visitor_id=visitor_id(salt, scope, client_ip, user_agent),
            country=where.country,
            region=where.region,
            city=where.city,
            asn=where.asn,
            datacenter=self.bots.is_datacenter(where.asn),
            device="bot" if reason in ("bot_ua", "headless") else agent.device,
            browser=agent.browser,
            browser_major=agent.browser_major,
            os=agent.os,
            os_major=agent.os_major,
            bot_reason=reason,
            source=origin.source,
            source_name=origin.source_name,
            referrer_host=origin.referrer_host,
            referrer_path=origin.referrer_path,
            utm_source=origin.utm_source,
            utm_medium=origin.utm_medium,
            utm_campaign=origin.utm_campaign,
            utm_content=origin.utm_content,
            utm_term=origin.utm_term,
        )

    def close(self) -> None:
        self.geoip.close()
