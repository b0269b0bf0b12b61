"""Referrer and UTM classification: search, social, email, paid, referral, direct, internal navigation."""

from __future__ import annotations

import pytest

from pentad.core.visitors.sources import MAX_TAG, classify

PAGE = "https://shop.example.com/products/42"

CASES = [
    ("https://www.google.com/", PAGE, "search", "Google", "google.com"),
    ("https://www.google.co.uk/search?q=shoes", PAGE, "search", "Google", "google.co.uk"),
    ("https://www.google.de/", PAGE, "search", "Google", "google.de"),
    ("https://www.bing.com/search?q=x", PAGE, "search", "Bing", "bing.com"),
    ("https://duckduckgo.com/", PAGE, "search", "DuckDuckGo", "duckduckgo.com"),
    ("https://yandex.com.tr/", PAGE, "search", "Yandex", "yandex.com.tr"),
    ("https://t.co/AbCdEf", PAGE, "social", "Twitter", "t.co"),
    (
        "https://l.facebook.com/l.php?u=https%3A%2F%2Fshop.example.com",
        PAGE,
        "social",
        "Facebook",
        "l.facebook.com",
    ),
    ("https://m.facebook.com/", PAGE, "social", "Facebook", "facebook.com"),
    ("https://news.ycombinator.com/item?id=1", PAGE, "social", "Hacker News", "news.ycombinator.com"),
    ("https://www.reddit.com/r/python/", PAGE, "social", "Reddit", "reddit.com"),
    ("https://mail.google.com/mail/u/0/", PAGE, "email", "Gmail", "mail.google.com"),
    ("https://outlook.live.com/mail/0/", PAGE, "email", "Outlook.com", "outlook.live.com"),
    (
        "https://blog.other.org/2026/a-post?session=secret",
        PAGE,
        "referral",
        "blog.other.org",
        "blog.other.org",
    ),
]


@pytest.mark.parametrize(("referrer", "url", "source", "name", "host"), CASES)
def test_referrers_are_classified(referrer: str, url: str, source: str, name: str, host: str) -> None:
    found = classify(referrer, url)
    assert (found.source, found.source_name, found.referrer_host) == (source, name, host)


def test_no_referrer_is_direct() -> None:
    found = classify(None, PAGE)
    assert (found.source, found.source_name, found.referrer_host, found.referrer_path) == (
        "direct",
        None,
        None,
        None,
    )
    assert classify("", None).source == "direct"


def test_a_same_site_referrer_is_direct_internal_navigation() -> None:
    for referrer in (
        "https://shop.example.com/cart",
        "https://www.shop.example.com/",
        "http://shop.example.com:443/",
    ):
        found = classify(referrer, PAGE)
        assert (found.source, found.referrer_host, found.referrer_path) == ("direct", None, None)
    assert classify("https://example.com/", PAGE).source == "referral"  # the parent domain is another site


def test_only_the_referrers_host_and_path_are_kept() -> None:
    found = classify("https://user:pw@blog.other.org:8443/a/b?token=secret#frag", PAGE)
    assert (found.referrer_host, found.referrer_path) == ("blog.other.org", "/a/b")


def test_cpc_medium_is_paid_named_by_its_source() -> None:
    found = classify(
        "https://www.google.com/",
        PAGE + "?utm_source=google&utm_medium=cpc&utm_campaign=winter&utm_content=ad1&utm_term=boots",
    )
    assert (found.source, found.source_name, found.referrer_host) == ("paid", "Google", "google.com")
    assert (found.utm_source, found.utm_medium, found.utm_campaign, found.utm_content, found.utm_term) == (
        "google",
        "cpc",
        "winter",
        "ad1",
        "boots",
    )
    for medium in ("ppc", "paid", "CPC", "display", "paid_social"):
        assert classify(None, f"{PAGE}?utm_source=x&utm_medium={medium}").source == "paid"


def test_utm_mediums_name_their_group() -> None:
    assert classify(None, PAGE + "?utm_source=newsletter&utm_medium=email").source == "email"
    assert classify(None, PAGE + "?utm_source=mastodon&utm_medium=social").source == "social"
    assert classify(None, PAGE + "?utm_source=ecosia&utm_medium=organic").source == "search"


def test_ref_and_source_parameters_name_the_source_without_a_referrer() -> None:
    producthunt = classify(None, PAGE + "?ref=producthunt")
    assert (producthunt.source, producthunt.source_name, producthunt.utm_source) == (
        "social",
        "Product Hunt",
        "producthunt",
    )
    partner = classify(None, PAGE + "?source=partner-blog")
    assert (partner.source, partner.source_name) == ("referral", "partner-blog")
    assert classify(None, PAGE + "?utm_source=duckduckgo.com").source_name == "DuckDuckGo"


def test_garbage_is_direct_and_tags_are_bounded() -> None:
    assert classify("not a url", "::::").source == "direct"
    assert classify("javascript:alert(1)", PAGE).source == "direct"
    assert classify("https://[::1/", PAGE).source == "direct"
    long = classify(None, PAGE + "?utm_campaign=" + "c" * 5000)
    assert long.utm_campaign == "c" * MAX_TAG
    assert classify(None, PAGE + "?utm_source=%20%20").utm_source is None
