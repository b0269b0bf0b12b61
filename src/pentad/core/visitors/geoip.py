"""IP -> country, region, city, ASN from MaxMind-DB files, read through memory maps (`maxminddb`).

Two shapes are understood: the flat `{"country_code": "US"}` of the CC0 `@ip-location-db` country files
(one combined file or an `*ipv4.mmdb` + `*ipv6.mmdb` pair) and MaxMind's nested GeoLite2 shape
(`country.iso_code`, `subdivisions[0].iso_code`, `city.names.en`); ASN files give
`autonomous_system_number`. A file replaced on disk (an update) is reopened within RECHECK_SECONDS; a
missing or broken file makes its answers None (and `GeoIP.ready` False, which /readyz reports), never an
error for the request.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import maxminddb

logger = logging.getLogger(__name__)

RECHECK_SECONDS = 30.0
COUNTRY_PACKAGE = Path("web/node_modules/@ip-location-db/geo-whois-asn-country-mmdb")
"""Where `make install` puts the CC0 country files, relative to a source checkout."""
_CHECKOUT = Path(__file__).resolve().parents[4]


@dataclass(frozen=True, slots=True)
class Location:
    country: str | None = None
    region: str | None = None
    city: str | None = None
    asn: int | None = None


NOWHERE = Location()


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


class _File:
    """One MMDB file, reopened when it changes on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._reader: maxminddb.Reader | None = None
        self._signature: tuple[int, int, int] | None = None
        self._checked = -RECHECK_SECONDS
        self.error: str | None = None
        self._refresh()

    def _refresh(self) -> None:
        self._checked = time.monotonic()
        signature = _signature(self.path)
        if signature == self._signature and (self._reader is not None or signature is None):
            return
        old, self._reader, self._signature = self._reader, None, signature
        if old is not None:
            old.close()
        if signature is None:
            self.error = f"{self.path} is missing"
            return
        try:
            self._reader = maxminddb.open_database(os.fspath(self.path), maxminddb.MODE_MMAP_EXT)
            self.error = None
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
            self.error = f"{self.path} cannot be read: {exc}"
            logger.warning("geoip database unreadable", extra={"path": str(self.path)})

    @property
    def reader(self) -> maxminddb.Reader | None:
        if time.monotonic() - self._checked >= RECHECK_SECONDS:
            self._refresh()
        return self._reader

    def get(self, ip: str) -> Mapping[str, Any] | None:
        reader = self.reader
        if reader is None:
            return None
        try:
            found = reader.get(ip)
        except ValueError:  # not an IP, or IPv6 in an IPv4-only file
            return None
        return found if isinstance(found, dict) else None

    def reopen(self) -> None:
        """Look at the file now rather than within RECHECK_SECONDS."""
        self._signature = None if self._reader is None else (-1, -1, -1)
        self._refresh()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


class _Files:
    """A combined file, or a v4 + v6 pair chosen by the address family."""

    def __init__(self, files: Sequence[_File], v6: _File | None = None) -> None:
        self.files = list(files) + ([v6] if v6 else [])
        self._v4 = files[0] if files else None
        self._v6 = v6 or self._v4

    def get(self, ip: str) -> Mapping[str, Any] | None:
        chosen = self._v6 if ":" in ip else self._v4
        return chosen.get(ip) if chosen is not None else None

    @property
    def error(self) -> str | None:
        if not self.files:
            return "no database file found"
        return next((f.error for f in self.files if f.error), None)

    def reopen(self) -> None:
        for file in self.files:
            file.reopen()

    def close(self) -> None:
        for file in self.files:
            file.close()


def _open(path: Path | None) -> _Files:
    if path is None:
        return _Files([])
    if not path.is_dir():
        return _Files([_File(path)])
    found = sorted(path.glob("*.mmdb"))
    v4 = [p for p in found if p.stem.endswith("ipv4")]
    v6 = [p for p in found if p.stem.endswith("ipv6")]
    combined = [p for p in found if p not in v4 and p not in v6]
    if combined:
        return _Files([_File(combined[0])])
    if v4 or v6:
        return _Files([_File(v4[0])] if v4 else [], _File(v6[0]) if v6 else None)
    return _Files([])


def default_country_db(data_dir: Path) -> Path:
    """`<data dir>/geoip/country/` when it holds an .mmdb file, else the checkout's npm package folder."""
    local = data_dir / "geoip" / "country"
    if any(local.glob("*.mmdb")):
        return local
    return _CHECKOUT / COUNTRY_PACKAGE


def default_asn_db(data_dir: Path) -> Path | None:
    """`<data dir>/geoip/asn.mmdb` when present."""
    local = data_dir / "geoip" / "asn.mmdb"
    return local if local.exists() else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


class GeoIP:
    """Country (required file), region and city (optional GeoLite2-City file), ASN (optional file)."""

    def __init__(
        self, country_db: Path | None, city_db: Path | None = None, asn_db: Path | None = None
    ) -> None:
        self._country = _open(country_db)
        self._city = _open(city_db) if city_db is not None else None
        self._asn = _open(asn_db) if asn_db is not None else None

    @property
    def ready(self) -> bool:
        return self.problem is None

    @property
    def problem(self) -> str | None:
        """Why a configured database gives no answers (None when every one reads)."""
        for files in (self._country, self._city, self._asn):
            if files is not None and files.error is not None:
                return files.error
        return None

    @property
    def has_asn(self) -> bool:
        return self._asn is not None and self._asn.error is None

    def lookup(self, ip: str) -> Location:
        country = region = city = None
        asn = None
        record = self._country.get(ip)
        if record is not None:
            country = _country_of(record)
        if self._city is not None and (record := self._city.get(ip)) is not None:
            country = _country_of(record) or country
            subdivisions = record.get("subdivisions")
            if isinstance(subdivisions, list) and subdivisions and isinstance(subdivisions[0], dict):
                region = _text(subdivisions[0].get("iso_code"))
            names = record.get("city", {}).get("names") if isinstance(record.get("city"), dict) else None
            if isinstance(names, dict):
                city = _text(names.get("en"))
        if self._asn is not None and (record := self._asn.get(ip)) is not None:
            number = record.get("autonomous_system_number", record.get("asn"))
            asn = number if isinstance(number, int) else None
        if country is None and region is None and city is None and asn is None:
            return NOWHERE
        return Location(country, region, city, asn)

    def reopen(self) -> None:
        for files in (self._country, self._city, self._asn):
            if files is not None:
                files.reopen()

    def close(self) -> None:
        for files in (self._country, self._city, self._asn):
            if files is not None:
                files.close()


def _country_of(record: Mapping[str, Any]) -> str | None:
    flat = record.get("country_code")
    if isinstance(flat, str):
        return flat.upper() if len(flat) == 2 else None
    nested = record.get("country")
    if isinstance(nested, dict):
        code = nested.get("iso_code")
        if isinstance(code, str) and len(code) == 2:
            return code.upper()
    return None
