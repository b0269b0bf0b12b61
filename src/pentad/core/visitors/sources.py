"""Where a visitor came from: UTM tags (and `ref`/`source`) of the page URL, else the referrer's host.

source is one of direct, search, social, email, paid, referral; source_name the network or site
("Google", "Twitter", "Gmail", "news.example.org"). Rules, in order:
1. utm_medium cpc/ppc/paid/cpm/…: paid; email/newsletter: email; social: social; organic: search
   (source_name: the known name of utm_source, else utm_source as given);
2. a referrer on the page's own host (or none at all): direct, with no referrer host (internal navigation);
3. a known search engine, social network or webmail host: that group and its name;
4. utm_source / ref / source without a referrer: the group of that name if known, else referral;
5. any other referrer: referral, named by its host.
Only the referrer's host and path are kept (never its query: it may carry tokens).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from pentad.core.visitors.facts import Source

MAX_HOST = 253
MAX_PATH = 512
MAX_TAG = 200

PAID_MEDIA = frozenset(
    {
        "cpc",
        "ppc",
        "paid",
        "paidsearch",
        "paid_search",
        "paid-search",
        "cpm",
        "cpa",
        "cpv",
        "display",
        "banner",
        "paid_social",
        "paid-social",
        "paidsocial",
        "sem",
        "ads",
        "ad",
        "affiliate",
    }
)
EMAIL_MEDIA = frozenset({"email", "e-mail", "e_mail", "mail", "newsletter"})
SOCIAL_MEDIA = frozenset({"social", "social-network", "social_network", "social-media", "social_media", "sm"})
SEARCH_MEDIA = frozenset({"organic", "search"})

_SEARCH = {
    "bing.com": "Bing",
    "cn.bing.com": "Bing",
    "duckduckgo.com": "DuckDuckGo",
    "search.yahoo.com": "Yahoo!",
    "yahoo.com": "Yahoo!",
    "yandex.ru": "Yandex",
    "yandex.com": "Yandex",
    "ya.ru": "Yandex",
    "baidu.com": "Baidu",
    "ecosia.org": "Ecosia",
    "qwant.com": "Qwant",
    "startpage.com": "Startpage",
    "search.brave.com": "Brave Search",
    "kagi.com": "Kagi",
    "naver.com": "Naver",
    "search.naver.com": "Naver",
    "seznam.cz": "Seznam",
    "search.seznam.cz": "Seznam",
    "yep.com": "Yep",
    "sogou.com": "Sogou",
    "so.com": "360 Search",
    "ask.com": "Ask",
    "aol.com": "AOL",
    "search.aol.com": "AOL",
    "mojeek.com": "Mojeek",
    "metager.org": "MetaGer",
    "search.lilo.org": "Lilo",
    "you.com": "You.com",
    "perplexity.ai": "Perplexity",
    "chatgpt.com": "ChatGPT",
}
_SOCIAL = {
    "t.co": "Twitter",
    "twitter.com": "Twitter",
    "x.com": "Twitter",
    "facebook.com": "Facebook",
    "l.facebook.com": "Facebook",
    "lm.facebook.com": "Facebook",
    "fb.me": "Facebook",
    "instagram.com": "Instagram",
    "l.instagram.com": "Instagram",
    "linkedin.com": "LinkedIn",
    "lnkd.in": "LinkedIn",
    "reddit.com": "Reddit",
    "out.reddit.com": "Reddit",
    "old.reddit.com": "Reddit",
    "news.ycombinator.com": "Hacker News",
    "youtube.com": "YouTube",
    "youtu.be": "YouTube",
    "pinterest.com": "Pinterest",
    "tiktok.com": "TikTok",
    "threads.net": "Threads",
    "bsky.app": "Bluesky",
    "mastodon.social": "Mastodon",
    "vk.com": "VKontakte",
    "weibo.com": "Weibo",
    "t.me": "Telegram",
    "web.telegram.org": "Telegram",
    "discord.com": "Discord",
    "discordapp.com": "Discord",
    "whatsapp.com": "WhatsApp",
    "web.whatsapp.com": "WhatsApp",
    "tumblr.com": "Tumblr",
    "quora.com": "Quora",
    "snapchat.com": "Snapchat",
    "medium.com": "Medium",
    "lobste.rs": "Lobsters",
    "producthunt.com": "Product Hunt",
    "slack.com": "Slack",
    "ok.ru": "Odnoklassniki",
    "xing.com": "XING",
}
_EMAIL = {
    "mail.google.com": "Gmail",
    "outlook.live.com": "Outlook.com",
    "outlook.office.com": "Outlook",
    "outlook.office365.com": "Outlook",
    "mail.yahoo.com": "Yahoo! Mail",
    "mail.proton.me": "Proton Mail",
    "mail.protonmail.com": "Proton Mail",
    "mail.aol.com": "AOL Mail",
    "mail.yandex.ru": "Yandex Mail",
    "e.mail.ru": "Mail.ru",
    "mail.zoho.com": "Zoho Mail",
    "app.fastmail.com": "Fastmail",
    "mail.tutanota.com": "Tuta",
    "app.tuta.com": "Tuta",
    "icloud.com": "iCloud Mail",
}
_BY_HOST: dict[str, tuple[Source, str]] = {
    **{host: ("search", name) for host, name in _SEARCH.items()},
    **{host: ("social", name) for host, name in _SOCIAL.items()},
    **{host: ("email", name) for host, name in _EMAIL.items()},
}
_COUNTRY_TLD_ENGINES = {"google": "Google", "yandex": "Yandex", "bing": "Bing", "yahoo": "Yahoo!"}
_BY_NAME: dict[str, tuple[Source, str]] = {
    name.lower().replace(" ", "").replace("!", ""): (group, name) for group, name in _BY_HOST.values()
}
_BY_NAME.update(
    {
        "google": ("search", "Google"),
        "fb": ("social", "Facebook"),
        "ig": ("social", "Instagram"),
        "hn": ("social", "Hacker News"),
        "ycombinator": ("social", "Hacker News"),
        "gmail": ("email", "Gmail"),
    }
)
_SECOND_LEVEL = frozenset({"co", "com", "ac", "gov", "net", "org", "or", "ne", "edu"})


@dataclass(frozen=True, slots=True)
class Sourcing:
    source: Source
    source_name: str | None
    referrer_host: str | None
    referrer_path: str | None
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    utm_content: str | None
    utm_term: str | None


def _host(netloc: str) -> str:
    host = netloc.rpartition("@")[2].lower()
    host = host[: host.find("]") + 1] if host.startswith("[") else host.partition(":")[0]
    host = host.rstrip(".")
    for prefix in ("www.", "m.", "mobile.", "amp."):
        if host.startswith(prefix) and host.count(".") >= 2:
            host = host[len(prefix) :]
            break
    return host[:MAX_HOST]


def _tag(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()[:MAX_TAG]
    return value or None


def known_host(host: str) -> tuple[Source, str] | None:
    """The group and name of a search engine, social network or webmail host (or a subdomain of one)."""
    labels = host.split(".")
    for start in range(len(labels) - 1):
        found = _BY_HOST.get(".".join(labels[start:]))
        if found is not None:
            return found
    # google.de, google.co.uk, yandex.com.tr ...: the engine's name followed by a country's TLD
    if len(labels) >= 2:
        for index in (-2, -3):
            if len(labels) >= -index and labels[index] in _COUNTRY_TLD_ENGINES:
                tail = labels[index + 1 :]
                if len(tail) == 1 or (len(tail) == 2 and tail[0] in _SECOND_LEVEL and len(tail[1]) == 2):
                    return "search", _COUNTRY_TLD_ENGINES[labels[index]]
    return None


def _named(value: str) -> tuple[Source, str] | None:
    key = value.lower().replace(" ", "").replace("!", "")
    found = _BY_NAME.get(key)
    if found is None and "." in key:
        found = known_host(_host(key))
    return found


def classify(referrer: str | None, url: str | None) -> Sourcing:
    params: dict[str, str] = {}
    page_host = ""
    if url:
        try:
            parts = urlsplit(url)
            page_host = _host(parts.netloc)
            params = {key.lower(): value for key, value in parse_qsl(parts.query)[:64] if value}
        except ValueError:
            pass
    utm_source = _tag(params.get("utm_source") or params.get("ref") or params.get("source"))
    utm_medium = _tag(params.get("utm_medium"))
    tags = (
        utm_source,
        utm_medium,
        _tag(params.get("utm_campaign")),
        _tag(params.get("utm_content")),
        _tag(params.get("utm_term")),
    )
    ref_host = ref_path = None
    if referrer:
        try:
            ref = urlsplit(referrer.strip())
            if ref.scheme in ("http", "https", "android-app") and ref.netloc:
                ref_host = _host(ref.netloc) or None
                ref_path = (ref.path or "/")[:MAX_PATH]
        except ValueError:
            pass
    if ref_host is not None and page_host and ref_host == page_host:
        ref_host = ref_path = None  # internal navigation
    named = _named(utm_source) if utm_source else None
    medium = (utm_medium or "").lower()
    source: Source | None = None
    if medium in PAID_MEDIA:
        source = "paid"
    elif medium in EMAIL_MEDIA:
        source = "email"
    elif medium in SOCIAL_MEDIA:
        source = "social"
    elif medium in SEARCH_MEDIA:
        source = "search"
    if source is not None:
        if named is not None:
            name: str | None = named[1]
        elif utm_source is not None or ref_host is None:
            name = utm_source
        else:
            name = (known_host(ref_host) or (source, ref_host))[1]
        return Sourcing(source, name, ref_host, ref_path, *tags)
    if ref_host is not None:
        found = known_host(ref_host)
        if found is not None:
            return Sourcing(found[0], found[1], ref_host, ref_path, *tags)
        if utm_source is None:
            return Sourcing("referral", ref_host, ref_host, ref_path, *tags)
    if utm_source is not None:
        if named is not None:
            return Sourcing(named[0], named[1], ref_host, ref_path, *tags)
        return Sourcing("referral", utm_source, ref_host, ref_path, *tags)
    return Sourcing("direct", None, None, None, *tags)
