"""What the ingest route learns about a visitor from one request, without storing the request itself.

The core's `platform.visitors.facts(...)` (core/visitors, GAP-3: GeoIP, ua-parser, bot lists, daily salts
in the database) is used when the platform has it. Until it has, this module's fallback gives the same
shape: a daily visitor id (keyed BLAKE2b of the day, the site's domain, the IP and the user agent, with a
key derived from the platform's signing secret), the agent's families from a few patterns, known bots and
headless browsers, and the referrer's source. It knows no country.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pentad.core.context import AppContext

UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")


@dataclass(frozen=True, slots=True)
class Facts:
    visitor_id: int
    bot: str | None = None
    """Why the request is not a person (`bot_ua`, `headless`, `datacenter`), None for a person."""
    country: str | None = None
    region: str | None = None
    city: str | None = None
    device: str | None = None
    browser: str | None = None
    browser_version: str | None = None
    os: str | None = None
    os_version: str | None = None
    referrer_host: str | None = None
    referrer_path: str | None = None
    source: str | None = None
    medium: str | None = None
    utm: dict[str, str] = field(default_factory=dict)


def visitor_facts(
    platform: AppContext,
    *,
    client_ip: str,
    user_agent: str,
    referrer: str | None,
    url: str,
    scope: str,
    webdriver: bool,
) -> Facts:
    visitors: Any = getattr(platform, "visitors", None)
    if visitors is not None:
        found = visitors.facts(client_ip, user_agent, referrer, url, scope, webdriver=webdriver)
        return _from_core(found)
    return fallback_facts(
        platform.signing_secret,
        client_ip=client_ip,
        user_agent=user_agent,
        referrer=referrer,
        url=url,
        scope=scope,
        webdriver=webdriver,
    )


def _from_core(found: Any) -> Facts:
    def value(name: str) -> Any:
        return getattr(found, name, None)

    utm = {name: value(name) for name in UTM_FIELDS if value(name)}
    return Facts(
        visitor_id=int(found.visitor_id),
        bot=value("bot") or value("bot_reason"),
        country=value("country"),
        region=value("region"),
        city=value("city"),
        device=value("device"),
        browser=value("browser"),
        browser_version=value("browser_version") or value("browser_major"),
        os=value("os"),
        os_version=value("os_version") or value("os_major"),
        referrer_host=value("referrer_host"),
        referrer_path=value("referrer_path"),
        source=value("source"),
        medium=value("medium"),
        utm=utm,
    )


# ------------------------------------------------------------------ the fallback

BOT_UA = re.compile(
    r"bot|crawl|spider|slurp|facebookexternalhit|mediapartners|headless|phantomjs|lighthouse|"
    r"curl/|wget/|python-requests|python-urllib|httpx|aiohttp|go-http-client|java/|okhttp|scrapy|"
    r"node-fetch|axios/|libwww|pingdom|uptime|monitor|preview|^$",
    re.I,
)
HEADLESS_UA = re.compile(r"HeadlessChrome|PhantomJS|Electron/", re.I)
BROWSERS = (
    ("Edge", re.compile(r"Edg(?:e|A|iOS)?/(\d+)")),
    ("Opera", re.compile(r"OPR/(\d+)")),
    ("Samsung Internet", re.compile(r"SamsungBrowser/(\d+)")),
    ("Firefox", re.compile(r"(?:Firefox|FxiOS)/(\d+)")),
    ("Chrome", re.compile(r"(?:Chrome|CriOS)/(\d+)")),
    ("Safari", re.compile(r"Version/(\d+)[.\d]* .*Safari/")),
)
SYSTEMS = (
    ("iOS", re.compile(r"(?:iPhone|iPad|iPod).*? OS (\d+)")),
    ("Android", re.compile(r"Android (\d+)")),
    ("Windows", re.compile(r"Windows NT (\d+\.\d+)")),
    ("macOS", re.compile(r"Mac OS X (\d+)[_.](\d+)")),
    ("ChromeOS", re.compile(r"CrOS \S+ (\d+)")),
    ("Linux", re.compile(r"Linux()")),
)
SEARCH = (
    "google.",
    "bing.com",
    "duckduckgo.com",
    "yahoo.",
    "yandex.",
    "baidu.com",
    "ecosia.org",
    "qwant.com",
)
SOCIAL = (
    "facebook.com", "t.co", "twitter.com", "x.com", "linkedin.com", "reddit.com", "instagram.com",
    "youtube.com", "pinterest.", "news.ycombinator.com", "mastodon.", "bsky.app", "tiktok.com",
)  # fmt: skip
EMAIL = ("mail.google.com", "outlook.live.com", "mail.yahoo.com")


def daily_key(secret: bytes, day: date) -> bytes:
    return hmac.new(secret, b"pentad.analytics.visitor:" + day.isoformat().encode(), hashlib.sha256).digest()


def visitor_id(secret: bytes, day: date, scope: str, client_ip: str, user_agent: str) -> int:
    """A signed 63-bit id, the same all day for one (site, address, agent), unrelated the next day."""
    digest = hashlib.blake2b(
        f"{scope}\0{client_ip}\0{user_agent}".encode(), key=daily_key(secret, day), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") >> 1


def _agent(user_agent: str) -> tuple[str | None, str | None, str | None, str | None, str]:
    browser = browser_version = system = system_version = None
    for name, pattern in BROWSERS:
        match = pattern.search(user_agent)
        if match:
            browser, browser_version = name, match.group(1)
            break
    for name, pattern in SYSTEMS:
        match = pattern.search(user_agent)
        if match:
            system = name
            system_version = ".".join(group for group in match.groups() if group) or None
            break
    if "iPad" in user_agent or "Tablet" in user_agent or (system == "Android" and "Mobile" not in user_agent):
        device = "tablet"
    elif "Mobi" in user_agent or "iPhone" in user_agent:
        device = "mobile"
    else:
        device = "desktop"
    return browser, browser_version, system, system_version, device


def classify_referrer(host: str | None) -> tuple[str | None, str | None]:
    """(source, medium) of a referrer host: medium is search, social, email or referral."""
    if not host:
        return None, None
    bare = host.removeprefix("www.").removeprefix("m.")
    for medium, names in (("email", EMAIL), ("search", SEARCH), ("social", SOCIAL)):
        for name in names:
            if bare == name or bare.startswith(name) or bare.endswith("." + name):
                return bare, medium
    return bare, "referral"


def fallback_facts(
    secret: bytes,
    *,
    client_ip: str,
    user_agent: str,
    referrer: str | None,
    url: str,
    scope: str,
    webdriver: bool,
    day: date | None = None,
) -> Facts:
    day = day or datetime.now(UTC).date()
    bot: str | None = None
    if webdriver or HEADLESS_UA.search(user_agent):
        bot = "headless"
    elif BOT_UA.search(user_agent):
        bot = "bot_ua"
    browser, browser_version, system, system_version, device = _agent(user_agent)
    referrer_host = referrer_path = None
    if referrer:
        parts = urlsplit(referrer)
        if parts.scheme in ("http", "https") and parts.hostname:
            referrer_host, referrer_path = parts.hostname.lower(), parts.path or "/"
    page_host = (urlsplit(url).hostname or "").lower()
    if referrer_host is not None and (referrer_host == page_host or referrer_host.endswith("." + scope)):
        referrer_host = referrer_path = None  # a link within the site is not a source
    source, medium = classify_referrer(referrer_host)
    query = dict(parse_qsl(urlsplit(url).query))
    utm = {name: query[name][:200] for name in UTM_FIELDS if query.get(name)}
    tagged = utm.get("utm_source") or query.get("ref") or query.get("source")
    if tagged:
        source = tagged[:100]
        medium = (utm.get("utm_medium") or medium or "referral")[:32]
    return Facts(
        visitor_id=visitor_id(secret, day, scope, client_ip, user_agent),
        bot=bot,
        device=device,
        browser=browser,
        browser_version=browser_version,
        os=system,
        os_version=system_version,
        referrer_host=referrer_host,
        referrer_path=referrer_path,
        source=source,
        medium=medium,
        utm=utm,
    )
