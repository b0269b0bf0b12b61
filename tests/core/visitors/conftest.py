"""Fixtures of the visitor-facts tests: one Visitors per module on the real CC0 country files, and small
City and ASN MMDB files written here (mmdb-writer), since the real GeoLite2/ASN files are not shipped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mmdb_writer import MMDBWriter  # type: ignore[import-untyped]
from netaddr import IPSet  # type: ignore[import-untyped]

from pentad.core.visitors.geoip import COUNTRY_PACKAGE, GeoIP

ROOT = Path(__file__).resolve().parents[3]
COUNTRY_FILES = ROOT / COUNTRY_PACKAGE

AWS_IP = "3.5.140.2"
"""In 3.5.140.0/22, an Amazon EC2 range (AWS ip-ranges.json)."""
HETZNER_IP = "2a01:4f8:c17:1::1"
CITY_IP = "81.2.69.160"
"""MaxMind's own test address (London in their GeoIP2-City-Test.mmdb)."""


def write_city_db(path: Path) -> Path:
    """A GeoLite2-City-shaped file: nested country / subdivisions / city names."""
    writer = MMDBWriter(ip_version=6, database_type="GeoLite2-City", languages=["en"], ipv4_compatible=True)
    writer.insert_network(
        IPSet(["81.2.69.0/24"]),
        {
            "country": {"iso_code": "GB", "names": {"en": "United Kingdom"}},
            "subdivisions": [{"iso_code": "ENG", "names": {"en": "England"}}],
            "city": {"names": {"en": "London"}},
        },
    )
    writer.insert_network(
        IPSet(["2001:db8:1::/48"]),
        {"country": {"iso_code": "de"}, "city": {"names": {"en": "Berlin"}}},
    )
    writer.to_db_file(str(path))
    return path


def write_asn_db(path: Path) -> Path:
    """An IP-to-ASN file in the iptoasn / GeoLite2-ASN shape."""
    writer = MMDBWriter(ip_version=6, database_type="GeoLite2-ASN", ipv4_compatible=True)
    writer.insert_network(
        IPSet(["3.5.140.0/22"]),
        {"autonomous_system_number": 16509, "autonomous_system_organization": "AMAZON-02"},
    )
    writer.insert_network(
        IPSet(["2a01:4f8::/32"]),
        {"autonomous_system_number": 24940, "autonomous_system_organization": "Hetzner Online GmbH"},
    )
    writer.insert_network(
        IPSet(["81.2.69.0/24"]),
        {"autonomous_system_number": 20712, "autonomous_system_organization": "Andrews & Arnold Ltd"},
    )
    writer.to_db_file(str(path))
    return path


@pytest.fixture(scope="module")
def geo_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("geo")
    return write_city_db(folder / "city.mmdb"), write_asn_db(folder / "asn.mmdb")


@pytest.fixture(scope="module")
def geoip(geo_files: tuple[Path, Path]) -> Iterator[GeoIP]:
    city, asn = geo_files
    reader = GeoIP(COUNTRY_FILES, city, asn)
    yield reader
    reader.close()
