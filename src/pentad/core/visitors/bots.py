"""Is this request a bot, and why: a known automated user agent, a headless browser, or a hosting network.

Three reasons, checked in this order (the first that holds is the one counted):
- "headless": `HeadlessChrome`, PhantomJS, Electron-less automation markers in the UA, or the page's
  `navigator.webdriver` flag (the tracker sends it) — checked first, so a headless Chrome is not hidden
  under the generic "bot" words;
- "bot_ua": ua-parser's `Spider` device family, or one compiled regex of the words that name crawlers,
  HTTP libraries, monitors and link previewers (the approach and most words of the `isbot` npm package's
  list, which errs on the side of calling things bots), or an empty / one-token user agent;
- "datacenter": the client's ASN is a hosting provider's (PENTAD_VISITORS__DATACENTER_ASNS, the list in
  core/config.py with its sources): real people browse from access networks, not from cloud servers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pentad.core.visitors.facts import BotReason

HEADLESS = re.compile(r"headless|phantomjs|slimerjs|nightmare|puppeteer|playwright|selenium|webdriver", re.I)

BOT_WORDS = (
    r"(?<!cu)bot\b|bot[/_\-;]|crawl|spider|slurp|scrap|archiv|fetch|index|seo|audit|"
    r"\bcurl\b|wget|httpie|python|java/|\bjava\b|go-http|okhttp|axios|node-fetch|undici|got \(|libwww|"
    r"lwp-|perl|ruby|\bphp\b|guzzle|httpclient|http_request|aiohttp|httpx|requests|urllib|"
    r"postman|insomnia|rest-client|apache-http|jakarta|dart:io|reqwest|hyper/|"
    r"lighthouse|pagespeed|gtmetrix|pingdom|uptime|monitor|statuscake|site24x7|newrelic|datadog|"
    r"preview|facebookexternalhit|facebookcatalog|meta-externalagent|whatsapp|telegram|discord|slack|"
    r"skype|embedly|quora link|vkshare|outbrain|pinterest/|tumblr|redditbot|validator|w3c_|"
    r"feed|rss|podcast|nutch|heritrix|ia_archiver|wayback|check|scan|probe|analy[sz]|"
    r"proxy|ahrefs|semrush|mj12|dotbot|petal|yandex(?!browser)|baidu|bingpreview|duckduck|"
    r"chatgpt|gptbot|claude|anthropic|perplexity|bytespider|ccbot|cohere|diffbot|amazonbot|applebot|"
    r"\bmastodon|pleroma|akkoma|misskey|bluesky|google-|adsbot|mediapartners|feedfetcher|"
    r"cloudflare|vercel|netlify|zgrab|masscan|nmap|nikto|sqlmap|nuclei"
)
"""Lower-case words of automated user agents (after isbot's pattern list; `cubot` phones excluded)."""

_BOT_UA = re.compile(BOT_WORDS, re.I)
_ONE_TOKEN = re.compile(r"^[^\s/]*(/[^\s]*)?$")
_BARE_MOZILLA = re.compile(r"^mozilla/\d+\.\d+$", re.I)


def is_headless(user_agent: str, *, webdriver: bool = False) -> bool:
    return webdriver or HEADLESS.search(user_agent) is not None


def is_bot_ua(user_agent: str, *, spider: bool = False) -> bool:
    text = user_agent.strip()
    if spider or not text:
        return True
    if _ONE_TOKEN.match(text) or _BARE_MOZILLA.match(text):
        return True  # "curl/8.5", "Go-http-client/2.0", "okhttp" ...: no browser sends a lone product token
    return _BOT_UA.search(text) is not None


class BotRules:
    def __init__(self, datacenter_asns: Iterable[int | str]) -> None:
        self.datacenter_asns = frozenset(int(asn) for asn in datacenter_asns)

    def is_datacenter(self, asn: int | None) -> bool:
        return asn is not None and asn in self.datacenter_asns

    def reason(
        self, user_agent: str, *, spider: bool = False, webdriver: bool = False, asn: int | None = None
    ) -> BotReason | None:
        if is_headless(user_agent, webdriver=webdriver):
            return "headless"
        if is_bot_ua(user_agent, spider=spider):
            return "bot_ua"
        if self.is_datacenter(asn):
            return "datacenter"
        return None
