"""GeoIP on the real CC0 country files (combined, and the v4 + v6 pair), a written GeoLite2-City file and an
ASN file; missing and replaced files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pentad.core.visitors import geoip as geoip_module
from pentad.core.visitors.geoip import GeoIP, Location, default_country_db
from tests.core.visitors.conftest import (
    AWS_IP,
    CITY_IP,
    COUNTRY_FILES,
    HETZNER_IP,
    write_asn_db,
    write_city_db,
)

KNOWN = [
    ("8.8.8.8", "US"),  # Google Public DNS
    ("2001:4860:4860::8888", "US"),
    ("1.1.1.1", "AU"),  # APNIC/Cloudflare research prefix, registered in Australia
    ("193.0.6.139", "NL"),  # RIPE NCC, Amsterdam
    ("2001:67c:2e8:22::c100:68b", "NL"),  # RIPE NCC over IPv6
    ("202.12.29.205", "AU"),  # APNIC, Brisbane
    ("200.160.2.3", "BR"),  # NIC.br
]


@pytest.mark.parametrize(("ip", "country"), KNOWN)
def test_known_public_addresses_resolve_to_their_country(geoip: GeoIP, ip: str, country: str) -> None:
    assert geoip.lookup(ip).country == country


def test_the_v4_and_v6_pair_answers_like_the_combined_file(tmp_path: Path) -> None:
    for name in ("geo-whois-asn-country-ipv4.mmdb", "geo-whois-asn-country-ipv6.mmdb"):
        (tmp_path / name).symlink_to(COUNTRY_FILES / name)
    pair = GeoIP(tmp_path)
    try:
        assert [pair.lookup(ip).country for ip, _ in KNOWN] == [country for _, country in KNOWN]
        assert pair.ready
    finally:
        pair.close()


def test_private_reserved_and_malformed_addresses_have_no_location(geoip: GeoIP) -> None:
    for ip in (
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.1",
        "::1",
        "fe80::1",
        "not an ip",
        "",
        "1.2.3.999",
        "1.2.3",
    ):
        assert geoip.lookup(ip) == Location()


def test_the_city_file_adds_region_and_city_in_the_nested_shape(geoip: GeoIP) -> None:
    assert geoip.lookup(CITY_IP) == Location("GB", "ENG", "London", 20712)
    berlin = geoip.lookup("2a02:8108:1::5")
    assert (berlin.country, berlin.region, berlin.city) == ("DE", None, "Berlin")


def test_the_asn_file_gives_the_network(geoip: GeoIP) -> None:
    assert geoip.lookup(AWS_IP).asn == 16509
    assert geoip.lookup(HETZNER_IP).asn == 24940
    assert geoip.lookup("8.8.8.8").asn is None  # not in the written file


def test_a_missing_file_gives_unknown_countries_and_is_not_ready(tmp_path: Path) -> None:
    missing = GeoIP(tmp_path / "nowhere.mmdb")
    assert missing.lookup("8.8.8.8") == Location()
    assert not missing.ready
    assert "missing" in (missing.problem or "")
    empty = GeoIP(tmp_path)  # a folder without any .mmdb
    assert not empty.ready
    assert empty.lookup("8.8.8.8") == Location()


def test_a_broken_file_is_reported_not_raised(tmp_path: Path) -> None:
    broken = tmp_path / "broken.mmdb"
    broken.write_bytes(b"this is not a maxmind database" * 100)
    reader = GeoIP(broken)
    assert reader.lookup("8.8.8.8") == Location()
    assert "cannot be read" in (reader.problem or "")


def test_a_file_that_appears_or_is_replaced_is_reopened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(geoip_module, "RECHECK_SECONDS", 0.0)
    target = tmp_path / "country.mmdb"
    reader = GeoIP(target, asn_db=tmp_path / "asn.mmdb")
    try:
        assert reader.lookup("8.8.8.8").country is None
        shutil.copy(COUNTRY_FILES / "geo-whois-asn-country.mmdb", target)
        write_asn_db(tmp_path / "asn.mmdb")
        assert reader.lookup("8.8.8.8").country == "US"
        assert reader.lookup(AWS_IP).asn == 16509
        assert reader.ready
        # An update replaces the file (a new inode, as `mv` does): the reader follows it.
        write_city_db(tmp_path / "next.mmdb")
        (tmp_path / "next.mmdb").replace(target)
        assert reader.lookup(CITY_IP).country == "GB"
        assert reader.lookup("8.8.8.8").country is None  # the new file knows only its own networks
    finally:
        reader.close()


def test_the_default_country_database_is_the_data_dir_then_the_checkouts_package(tmp_path: Path) -> None:
    assert default_country_db(tmp_path) == COUNTRY_FILES
    local = tmp_path / "geoip" / "country"
    local.mkdir(parents=True)
    shutil.copy(COUNTRY_FILES / "geo-whois-asn-country-ipv4.mmdb", local)
    assert default_country_db(tmp_path) == local


def test_an_ipv4_mapped_ipv6_address_is_looked_up_as_ipv4(geoip: GeoIP) -> None:
    assert geoip.lookup("::ffff:8.8.8.8").country == "US"
