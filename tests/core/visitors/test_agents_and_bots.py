"""User agents of real browsers, phones, tablets, crawlers and tools: device class, browser and OS with
majors, and the bot reason (bot_ua, headless, datacenter)."""

from __future__ import annotations

import pytest

from pentad.core.config import VisitorsSettings
from pentad.core.visitors.agents import MAX_UA_LENGTH, Agent, Agents
from pentad.core.visitors.bots import BotRules

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
    "Safari/537.36"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1"
)
SAFARI_IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 "
    "Mobile/15E148 Safari/604.1"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
GOOGLEBOT_SMARTPHONE = (
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.6778.69 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
)
HEADLESS_CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.6099.109 "
    "Safari/537.36"
)
CURL = "curl/8.5.0"
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
SAFARI_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 "
    "Safari/605.1.15"
)
CHROME_ANDROID_PHONE = (
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile "
    "Safari/537.36"
)
CHROME_ANDROID_TABLET = (
    "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
    "Safari/537.36"
)
EDGE = CHROME_WINDOWS + " Edg/131.0.2903.70"
SAMSUNG = (
    "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/27.0 "
    "Chrome/125.0.0.0 Mobile Safari/537.36"
)
CUBOT_PHONE = (
    "Mozilla/5.0 (Linux; Android 13; CUBOT P80) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
    "Mobile Safari/537.36"
)
FACEBOOK_APP = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 [FBAN/FBIOS;FBAV/450.0.0.38.108;FBBV/600000000;FBDV/iPhone15,2;FBMD/iPhone;FBSN/iOS;"
    "FBSV/17.4;FBSS/3;FBCR/;FBID/phone;FBLC/en_US;FBOP/80]"
)

PARSED = [
    (CHROME_WINDOWS, Agent("desktop", "Chrome", "131", "Windows", "10", spider=False)),
    (SAFARI_IPHONE, Agent("mobile", "Mobile Safari", "17", "iOS", "17", spider=False)),
    (SAFARI_IPAD, Agent("tablet", "Mobile Safari", "16", "iOS", "16", spider=False)),
    (GOOGLEBOT, Agent("bot", "Googlebot", "2", None, None, spider=True, bot="bot_ua")),
    (HEADLESS_CHROME, Agent("desktop", "HeadlessChrome", "120", "Linux", None, spider=False, bot="headless")),
    (CURL, Agent("other", "curl", "8", None, None, spider=False, bot="bot_ua")),
    (FIREFOX_LINUX, Agent("desktop", "Firefox", "133", "Linux", None, spider=False)),
    (SAFARI_MAC, Agent("desktop", "Safari", "17", "Mac OS X", "10", spider=False)),
    (CHROME_ANDROID_PHONE, Agent("mobile", "Chrome Mobile", "131", "Android", "10", spider=False)),
    (CHROME_ANDROID_TABLET, Agent("tablet", "Chrome", "131", "Android", "14", spider=False)),
    (EDGE, Agent("desktop", "Edge", "131", "Windows", "10", spider=False)),
    (SAMSUNG, Agent("mobile", "Samsung Internet", "27", "Android", "14", spider=False)),
    ("", Agent("other", None, None, None, None, spider=False, bot="bot_ua")),
]


@pytest.fixture(scope="module")
def agents() -> Agents:
    return Agents(cache_size=64)


@pytest.mark.parametrize(("user_agent", "expected"), PARSED, ids=[a.browser or "empty" for _, a in PARSED])
def test_user_agents_are_classified(agents: Agents, user_agent: str, expected: Agent) -> None:
    assert agents.parse(user_agent) == expected


def test_the_native_resolver_runs_and_parses_are_cached(agents: Agents) -> None:
    assert agents.backend == "rust"
    agents.parse.cache_clear()
    agents.parse(CHROME_WINDOWS)
    agents.parse(CHROME_WINDOWS)
    info = agents.parse.cache_info()
    assert (info.hits, info.misses, info.maxsize) == (1, 1, 64)


def test_a_huge_user_agent_is_cut_before_parsing(agents: Agents) -> None:
    assert agents.parse(CHROME_WINDOWS + " " + "x" * 100_000).browser == "Chrome"
    assert len(CHROME_WINDOWS) < MAX_UA_LENGTH


RULES = BotRules(VisitorsSettings().datacenter_asns)

REASONS = [
    (CHROME_WINDOWS, None),
    (SAFARI_IPHONE, None),
    (SAFARI_IPAD, None),
    (FIREFOX_LINUX, None),
    (EDGE, None),
    (SAMSUNG, None),
    (CUBOT_PHONE, None),  # "CUBOT" is a phone maker, not a bot
    (FACEBOOK_APP, None),  # Facebook's in-app browser is a person
    (GOOGLEBOT, "bot_ua"),
    (GOOGLEBOT_SMARTPHONE, "bot_ua"),
    (CURL, "bot_ua"),
    ("python-requests/2.32.3", "bot_ua"),
    ("Go-http-client/2.0", "bot_ua"),
    ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", "bot_ua"),
    (
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
        "bot_ua",
    ),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", "bot_ua"),
    ("Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", "bot_ua"),
    ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "bot_ua"),
    ("Mozilla/5.0", "bot_ua"),
    ("", "bot_ua"),
    (HEADLESS_CHROME, "headless"),
    (
        "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 "
        "Safari/538.1",
        "headless",
    ),
]


@pytest.mark.parametrize(("user_agent", "reason"), REASONS)
def test_bot_reasons_of_real_user_agents(agents: Agents, user_agent: str, reason: str | None) -> None:
    assert RULES.reason(user_agent, spider=agents.parse(user_agent).spider) == reason


def test_the_webdriver_flag_marks_an_ordinary_browser_headless() -> None:
    assert RULES.reason(CHROME_WINDOWS, webdriver=True) == "headless"


def test_a_hosting_network_is_a_datacenter_bot_and_an_access_network_is_not() -> None:
    assert RULES.reason(CHROME_WINDOWS, asn=16509) == "datacenter"  # AWS
    assert RULES.reason(CHROME_WINDOWS, asn=24940) == "datacenter"  # Hetzner
    assert RULES.reason(CHROME_WINDOWS, asn=3320) is None  # Deutsche Telekom
    assert RULES.reason(CHROME_WINDOWS, asn=None) is None
    assert RULES.reason(GOOGLEBOT, asn=15169) == "bot_ua"  # the UA names it first
    assert not BotRules(["64500"]).is_datacenter(16509)  # the list is the setting's


def test_the_datacenter_list_setting_takes_numbers_only() -> None:
    assert VisitorsSettings(datacenter_asns="16509, 24940").datacenter_asns == ["16509", "24940"]
    with pytest.raises(ValueError, match="AS number"):
        VisitorsSettings(datacenter_asns="AS16509")
