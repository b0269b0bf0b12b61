"""`pentad ads …` run as an operator runs it, against a fresh SQLite database."""

from __future__ import annotations

from tests.test_cli import env
from tests.test_cli import pentad_here as pentad

__all__ = ["env"]


def test_sites_and_advertisers_are_created_for_an_owner_listed_and_tokens_checked(
    env: dict[str, str],
) -> None:
    env["PENTAD_APPS"] = "ads"
    pentad(env, "migrate")
    pentad(env, "user", "create", "--email", "pub@example.com", "--password", "a long cli password")

    site = pentad(
        env, "ads", "site", "create", "news.example.com", "--name", "News", "--owner", "pub@example.com"
    )
    taken = pentad(
        env,
        "ads",
        "site",
        "create",
        "news.example.com",
        "--name",
        "Again",
        "--owner",
        "pub@example.com",
        check=False,
    )
    advertiser = pentad(
        env,
        "ads",
        "advertiser",
        "create",
        "Acme",
        "--owner",
        "pub@example.com",
        "--contact",
        "buyer@example.com",
    )
    sites = pentad(env, "ads", "site", "list").stdout
    advertisers = pentad(env, "ads", "advertiser", "list").stdout
    forged = pentad(env, "ads", "check-token", "A" * 94, check=False)

    assert "Created site news.example.com" in site.stdout
    assert taken.returncode != 0
    assert "another site already has this domain" in taken.stderr.lower()
    assert "Created advertiser Acme" in advertiser.stdout
    # only the rows: the start-up log line (analytics is off: no goal subscriber) goes to stderr
    assert sites.count("\n") == 1
    assert "news.example.com\tUTC\tNews" in sites
    assert "\tAcme\t" in advertisers
    assert "buyer@example.com" not in advertisers
    assert forged.returncode != 0
    assert "not valid" in forged.stderr
