"""`pentad analytics …` run as an operator runs it, against a fresh SQLite database."""

from __future__ import annotations

from tests.test_cli import env
from tests.test_cli import pentad_here as pentad

__all__ = ["env"]


PASSWORD = "a long operator password"


def test_site_create_list_and_grant(env: dict[str, str]) -> None:
    pentad(env, "migrate")
    for email in ("owner@example.com", "viewer@example.com"):
        pentad(env, "user", "create", "--email", email, "--password", PASSWORD)

    created = pentad(
        env, "analytics", "site", "create", "Shop.Example", "--owner", "owner@example.com"
    ).stdout
    assert "Created analytics site shop.example" in created
    assert 'data-domain="shop.example"' in created
    assert "/analytics/js/script.js" in created
    listed = pentad(env, "analytics", "site", "list").stdout.splitlines()
    assert len(listed) == 1
    assert listed[0].startswith("shop.example\t")

    granted = pentad(env, "analytics", "site", "grant", "shop.example", "viewer@example.com")
    assert "viewer@example.com is now viewer of shop.example" in granted.stdout

    for args, message in [
        (("site", "create", "shop.example"), "exists"),
        (("site", "create", "https://bad/"), "host name"),
        (("site", "create", "ok.example", "--timezone", "Mars/Base"), "time zone"),
        (("site", "create", "ok.example", "--owner", "nobody@example.com"), "user"),
        (("site", "grant", "missing.example", "viewer@example.com"), "No analytics site"),
    ]:
        refused = pentad(env, "analytics", *args, check=False)
        assert refused.returncode != 0, args
        assert message in refused.stderr, (args, refused.stderr)
    assert len(pentad(env, "analytics", "site", "list").stdout.splitlines()) == 1
