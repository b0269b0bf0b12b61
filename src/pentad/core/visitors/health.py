"""Readiness of the GeoIP files, for the apps that rely on visitor countries (analytics, ads):

    AppSpec(..., health_checks=[GEOIP_CHECK])     # /readyz then lists "<app>.geoip"

The probe opens the configured files the way Visitors does and fails (503 from /readyz, the reason in the
log) when a file is missing or unreadable; requests meanwhile get facts with unknown countries.
"""

from __future__ import annotations

from pentad.core.health import HealthCheck, HealthContext
from pentad.core.visitors.geoip import GeoIP, default_asn_db, default_country_db


class GeoIPUnavailable(RuntimeError):
    pass


def geoip_for(context: HealthContext) -> GeoIP:
    settings = context.settings.visitors
    return GeoIP(
        settings.country_db or default_country_db(context.settings.data_dir),
        settings.city_db,
        settings.asn_db or default_asn_db(context.settings.data_dir),
    )


async def _probe(context: HealthContext) -> None:
    reader = geoip_for(context)
    try:
        if reader.problem is not None:
            raise GeoIPUnavailable(reader.problem)
    finally:
        reader.close()


GEOIP_CHECK = HealthCheck("geoip", _probe)
