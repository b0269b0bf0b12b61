"""Visitors.facts end to end: the daily id (stable within a day, scope and visitor; different across
scopes, days, addresses and agents), geography, device, bot reason and source in one answer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from pentad.core.config import DatabaseSettings, VisitorsSettings
from pentad.core.crypto import KeyRing
from pentad.core.db.base import Base
from pentad.core.db.engine import Database
from pentad.core.visitors import SaltUnavailable, VisitorFacts, Visitors
from pentad.core.visitors.agents import MAX_UA_LENGTH
from pentad.core.visitors.ids import salt_for, utc_today
from tests.core.visitors.conftest import AWS_IP, CITY_IP, COUNTRY_FILES
from tests.core.visitors.test_agents_and_bots import CHROME_WINDOWS, GOOGLEBOT, HEADLESS_CHROME, SAFARI_IPHONE
from tests.factories import TEST_CRYPTO_KEYS

SITE = "shop.example.com"
PAGE = f"https://{SITE}/products/42"
VISITOR_IP = "193.0.6.139"


KEYRING = KeyRing.parse(TEST_CRYPTO_KEYS)


@pytest.fixture(scope="module")
async def salt_database(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Database]:
    """Salt storage is tested on every engine in test_salts.py; here one SQLite file holds the salts."""
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('visitors') / 'salts.db'}"
    database = Database.from_settings(DatabaseSettings(url=url))
    async with database.engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all, tables=[Base.metadata.tables["visitor_salts"]])
    yield database
    await database.dispose()


@pytest.fixture(scope="module")
def visitors(
    salt_database: Database, geo_files: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Visitors]:
    city, asn = geo_files
    settings = VisitorsSettings(country_db=COUNTRY_FILES, city_db=city, asn_db=asn)
    found = Visitors(settings, salt_database, KEYRING, data_dir=tmp_path_factory.mktemp("data"))
    yield found
    found.close()


async def test_a_chrome_desktop_visitor_from_google(visitors: Visitors) -> None:
    facts = await visitors.facts(VISITOR_IP, CHROME_WINDOWS, "https://www.google.com/", PAGE, SITE)
    assert facts == VisitorFacts(
        visitor_id=facts.visitor_id,
        country="NL",
        region=None,
        city=None,
        asn=None,
        datacenter=False,
        device="desktop",
        browser="Chrome",
        browser_major="131",
        os="Windows",
        os_major="10",
        bot_reason=None,
        source="search",
        source_name="Google",
        referrer_host="google.com",
        referrer_path="/",
        utm_source=None,
        utm_medium=None,
        utm_campaign=None,
        utm_content=None,
        utm_term=None,
    )
    assert -(1 << 62) <= facts.visitor_id < (1 << 62)
    assert not facts.is_bot


async def test_the_id_is_stable_within_a_day_and_differs_across_scopes_days_and_visitors(
    visitors: Visitors, salt_database: Database
) -> None:
    today = utc_today()
    yesterday = today - timedelta(days=1)
    one = await visitors.facts(VISITOR_IP, SAFARI_IPHONE, None, PAGE, SITE)
    again = await visitors.facts(VISITOR_IP, SAFARI_IPHONE, "https://t.co/x", PAGE + "?utm_source=a", SITE)
    assert one.visitor_id == again.visitor_id  # referrer and page do not change who it is
    assert await visitors.visitor_id(VISITOR_IP, SAFARI_IPHONE, SITE) == one.visitor_id
    others = [
        (await visitors.facts(VISITOR_IP, SAFARI_IPHONE, None, PAGE, "blog.example.com")).visitor_id,
        (await visitors.facts("193.0.6.140", SAFARI_IPHONE, None, PAGE, SITE)).visitor_id,
        (await visitors.facts(VISITOR_IP, CHROME_WINDOWS, None, PAGE, SITE)).visitor_id,
    ]
    assert len({one.visitor_id, *others}) == 4
    # Yesterday's salt exists once some process made it that day (here: made directly, as yesterday's
    # first request would have): the same visitor then had another id.
    async with salt_database.transaction() as session:
        await salt_for(session, KEYRING, yesterday, create=True)
    before = await visitors.facts(VISITOR_IP, SAFARI_IPHONE, None, PAGE, SITE, day=yesterday)
    assert before.visitor_id != one.visitor_id
    assert (await visitors.facts(VISITOR_IP, SAFARI_IPHONE, None, PAGE, SITE, day=yesterday)) == before
    with pytest.raises(SaltUnavailable):
        await visitors.facts(VISITOR_IP, SAFARI_IPHONE, None, PAGE, SITE, day=today - timedelta(days=2))


async def test_a_new_process_computes_the_same_ids(visitors: Visitors) -> None:
    first = await visitors.visitor_id(VISITOR_IP, CHROME_WINDOWS, SITE)
    visitors.salts.forget()
    assert await visitors.visitor_id(VISITOR_IP, CHROME_WINDOWS, SITE) == first


async def test_bots_are_flagged_by_user_agent_headless_marker_and_network(visitors: Visitors) -> None:
    googlebot = await visitors.facts("66.249.66.1", GOOGLEBOT, None, PAGE, SITE)
    assert (googlebot.bot_reason, googlebot.device, googlebot.country) == ("bot_ua", "bot", "US")
    headless = await visitors.facts(VISITOR_IP, HEADLESS_CHROME, None, PAGE, SITE)
    assert (headless.bot_reason, headless.device) == ("headless", "bot")
    webdriver = await visitors.facts(VISITOR_IP, CHROME_WINDOWS, None, PAGE, SITE, webdriver=True)
    assert webdriver.bot_reason == "headless"
    cloud = await visitors.facts(AWS_IP, CHROME_WINDOWS, None, PAGE, SITE)
    assert (cloud.bot_reason, cloud.datacenter, cloud.asn, cloud.device) == (
        "datacenter",
        True,
        16509,
        "desktop",
    )
    home = await visitors.facts(CITY_IP, SAFARI_IPHONE, None, PAGE, SITE)
    assert (home.bot_reason, home.datacenter, home.asn) == (None, False, 20712)
    assert (home.country, home.region, home.city, home.device) == ("GB", "ENG", "London", "mobile")


async def test_paid_campaign_facts_carry_the_utm_tags(visitors: Visitors) -> None:
    facts = await visitors.facts(
        VISITOR_IP, CHROME_WINDOWS, None, PAGE + "?utm_source=google&utm_medium=cpc&utm_campaign=winter", SITE
    )
    assert (facts.source, facts.source_name, facts.utm_campaign) == ("paid", "Google", "winter")


async def test_same_site_navigation_is_direct(visitors: Visitors) -> None:
    facts = await visitors.facts(VISITOR_IP, CHROME_WINDOWS, f"https://{SITE}/cart", PAGE, SITE)
    assert (facts.source, facts.referrer_host) == ("direct", None)


async def test_a_missing_country_database_answers_without_countries(
    salt_database: Database, tmp_path: Path
) -> None:
    settings = VisitorsSettings(country_db=tmp_path / "missing.mmdb")
    lonely = Visitors(settings, salt_database, KEYRING, data_dir=tmp_path)
    facts = await lonely.facts(VISITOR_IP, CHROME_WINDOWS, None, PAGE, SITE)
    assert (facts.country, facts.asn, facts.browser) == (None, None, "Chrome")
    assert not lonely.geoip.ready


async def test_one_visitor_has_one_id_whatever_the_spelling_of_its_address_and_the_scope(
    visitors: Visitors,
) -> None:
    plain = await visitors.visitor_id("193.0.6.139", CHROME_WINDOWS, SITE)
    assert await visitors.visitor_id("::ffff:193.0.6.139", CHROME_WINDOWS, SITE) == plain
    assert await visitors.visitor_id("193.0.6.139", CHROME_WINDOWS, " Shop.Example.COM") == plain
    facts = await visitors.facts("::ffff:193.0.6.139", CHROME_WINDOWS, None, PAGE, SITE.upper())
    assert (facts.visitor_id, facts.country) == (plain, "NL")
    v6 = await visitors.visitor_id("2001:67c:2e8:22::c100:68b", CHROME_WINDOWS, SITE)
    assert await visitors.visitor_id("2001:067c:02e8:0022:0000:0000:c100:068b", CHROME_WINDOWS, SITE) == v6


async def test_a_huge_user_agent_counts_by_its_first_characters(visitors: Visitors) -> None:
    huge = CHROME_WINDOWS + " " + "x" * 1_000_000
    facts = await visitors.facts(VISITOR_IP, huge, None, PAGE, SITE)
    assert facts.browser == "Chrome"
    assert (
        facts.visitor_id
        == (await visitors.facts(VISITOR_IP, huge[:MAX_UA_LENGTH], None, PAGE, SITE)).visitor_id
    )


async def test_a_malformed_address_still_gets_an_id_and_no_place(visitors: Visitors) -> None:
    facts = await visitors.facts("not-an-ip", CHROME_WINDOWS, None, PAGE, SITE)
    assert (facts.country, facts.asn, facts.datacenter) == (None, None, False)
    assert facts.visitor_id != (await visitors.facts("", CHROME_WINDOWS, None, PAGE, SITE)).visitor_id
