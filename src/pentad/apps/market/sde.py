"""Importing EVE Online's static data export (SDE): `pentad market sde import PATH`.

CCP publishes the SDE at developers.eveonline.com/static-data as a zip of JSON Lines files (one record a
line; integer keys are written as `_key`; names are localised objects such as `{"en": "Jita", …}`). PATH
is such a zip, or a folder of its files; each file may also be gzipped (`types.jsonl.gz`), which is how
the shipped subset (`sde_subset/`) is stored.

What is read (the rest of the export is ignored):

| file | becomes |
|---|---|
| `types` | market_types (name, group, market group, volume, packaged volume) |
| `groups`, `marketGroups` | market_groups, market_market_groups |
| `mapRegions`, `mapConstellations`, `mapSolarSystems` | regions, constellations, systems (`securityStatus`) |
| `mapStargates` | market_stargates (each gate with its `destination.solarSystemID`) |
| `npcCorporations` | market_npc_corporations (station owners and their factions) |
| `npcStations` | market_stations (kind `npc`), named by the SDE's rules (below) |
| `_sde` | the build number (optional) |

The SDE does not name NPC stations: a name is `<orbit name> - <owner corporation>[ <operation>]`, the orbit
being a planet (`<system> <celestialIndex in Roman numerals>`, unless it has its own name) or a moon
(`<planet> - Moon <orbitIndex>`) (esi-docs, guides/staticdata.md). `mapPlanets`, `mapMoons` and
`stationOperations` are optional: without them a station is named `<system> station <id>` until ESI
resolves it. The SDE has no packaged volumes either (esi-issues #1499); ships take their group's
repackaged volume below, everything else its volume.

An import reads and checks everything first — every record of every file, and that the files agree
(systems in known regions, gates between known systems, stations in known systems) — and only then writes,
in the caller's transaction: the static tables are replaced whole (player structures resolved through ESI
are kept), and one `market_sde_imports` row records it. A bad file is refused with one line naming the
file, the line and the problem, and nothing is written; importing the same export twice gives the same
rows.
"""

from __future__ import annotations

import asyncio
import gzip
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, cast

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.market import repository
from pentad.apps.market.models import MarketSdeImport
from pentad.core.errors import AppError

SUBSET = Path(__file__).parent / "sde_subset"
"""The shipped subset: the five trade hubs and the stargates between them (synthetic where not the hubs'
own data; tests/apps/market/make_sde_subset.py writes it)."""

REQUIRED = (
    "types",
    "groups",
    "marketGroups",
    "mapRegions",
    "mapConstellations",
    "mapSolarSystems",
    "mapStargates",
    "npcCorporations",
    "npcStations",
)
OPTIONAL = ("mapPlanets", "mapMoons", "stationOperations", "_sde")

SHIP_PACKAGED_VOLUMES: dict[int, float] = {
    25: 2500.0,  # Frigate
    26: 10000.0,  # Cruiser
    27: 50000.0,  # Battleship
    28: 20000.0,  # Hauler (industrial)
    29: 500.0,  # Capsule
    31: 500.0,  # Shuttle
    237: 2500.0,  # Corvette
    324: 2500.0,  # Assault Frigate
    358: 10000.0,  # Heavy Assault Cruiser
    380: 20000.0,  # Deep Space Transport
    419: 15000.0,  # Combat Battlecruiser
    420: 5000.0,  # Destroyer
    463: 3750.0,  # Mining Barge
    540: 15000.0,  # Command Ship
    541: 5000.0,  # Interdictor
    543: 3750.0,  # Exhumer
    830: 2500.0,  # Covert Ops
    831: 2500.0,  # Interceptor
    832: 10000.0,  # Logistics
    833: 10000.0,  # Force Recon Ship
    834: 2500.0,  # Stealth Bomber
    893: 2500.0,  # Electronic Attack Ship
    894: 10000.0,  # Heavy Interdiction Cruiser
    898: 50000.0,  # Black Ops
    900: 50000.0,  # Marauder
    906: 10000.0,  # Combat Recon Ship
    963: 5000.0,  # Strategic Cruiser
    1201: 15000.0,  # Attack Battlecruiser
    1283: 2500.0,  # Expedition Frigate
    1305: 5000.0,  # Tactical Destroyer
    1527: 2500.0,  # Logistics Frigate
    1534: 5000.0,  # Command Destroyer
}
"""Repackaged volume (m³) of ships by inventory group, which the SDE does not carry."""

FEE_SKILLS = ("Accounting", "Broker Relations", "Advanced Broker Relations")
"""Skills the fee formulas read, looked up by name in the imported types."""

_ROMAN = (
    (1000, "M"),
    (900, "CM"),
    (500, "D"),
    (400, "CD"),
    (100, "C"),
    (90, "XC"),
    (50, "L"),
    (40, "XL"),
    (10, "X"),
    (9, "IX"),
    (5, "V"),
    (4, "IV"),
    (1, "I"),
)


class SdeError(AppError):
    """The static data could not be imported: the message names the file, the line and the problem."""

    status, code = 400, "sde_invalid"


def roman(number: int) -> str:
    """`number` in Roman numerals (celestial indexes: 1 → I, 4 → IV, 12 → XII)."""
    if number < 1:
        raise ValueError("Roman numerals start at 1")
    out = []
    for value, letters in _ROMAN:
        count, number = divmod(number, value)
        out.append(letters * count)
    return "".join(out)


@dataclass
class SdeData:
    """The rows an import writes, table by table (column name → value), and the export's build."""

    build: str | None = None
    regions: list[dict[str, Any]] = field(default_factory=list)
    constellations: list[dict[str, Any]] = field(default_factory=list)
    systems: list[dict[str, Any]] = field(default_factory=list)
    stargates: list[dict[str, Any]] = field(default_factory=list)
    types: list[dict[str, Any]] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)
    market_groups: list[dict[str, Any]] = field(default_factory=list)
    corporations: list[dict[str, Any]] = field(default_factory=list)
    stations: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "regions": len(self.regions),
            "constellations": len(self.constellations),
            "systems": len(self.systems),
            "stargates": len(self.stargates),
            "types": len(self.types),
            "groups": len(self.groups),
            "market_groups": len(self.market_groups),
            "corporations": len(self.corporations),
            "stations": len(self.stations),
        }


# --- reading files -----------------------------------------------------------------------------------------


class _Source:
    """The SDE's files by name (`types`, `mapSolarSystems`, …) in a zip or a folder, plain or gzipped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self._names: dict[str, str] = {}
        if path.is_dir():
            for child in path.iterdir():
                self._register(child.name, str(child))
        elif path.is_file():
            try:
                self._zip = zipfile.ZipFile(path)
            except zipfile.BadZipFile:
                raise SdeError(f"{path} is not a zip file or a folder of SDE files") from None
            for member in self._zip.namelist():
                self._register(PurePosixPath(member).name, member)
        else:
            raise SdeError(f"{path} does not exist")

    def _register(self, filename: str, where: str) -> None:
        for suffix in (".jsonl", ".jsonl.gz"):
            if filename.endswith(suffix):
                self._names.setdefault(filename[: -len(suffix)], where)

    def __contains__(self, name: str) -> bool:
        return name in self._names

    def filename(self, name: str) -> str:
        return PurePosixPath(self._names[name]).name

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def _open(self, name: str) -> IO[bytes]:
        where = self._names[name]
        raw: IO[bytes] = self._zip.open(where) if self._zip is not None else open(where, "rb")  # noqa: SIM115
        if where.endswith(".gz"):
            return cast(IO[bytes], gzip.GzipFile(fileobj=raw))
        return raw

    def records(self, name: str) -> Iterator[tuple[int, dict[str, Any]]]:
        """(line number, record) of every non-empty line; SdeError for a line that is not a JSON object."""
        filename = self.filename(name)
        try:
            with self._open(name) as stream:
                for number, line in enumerate(stream, start=1):
                    if not line.strip():
                        continue
                    try:
                        record = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        raise SdeError(f"{filename} line {number}: not JSON") from None
                    if not isinstance(record, dict):
                        raise SdeError(f"{filename} line {number}: not a JSON object")
                    yield number, record
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise SdeError(f"{filename}: unreadable ({exc})") from None


class _Checker:
    """Typed reads of a record's fields, failing with the file and line."""

    def __init__(self, filename: str, number: int, record: dict[str, Any]) -> None:
        self.where = f"{filename} line {number}"
        self.record = record

    def fail(self, problem: str) -> SdeError:
        return SdeError(f"{self.where}: {problem}")

    def integer(self, key: str, *, optional: bool = False) -> int | None:
        value = _dig(self.record, key)
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"{key} must be an integer" if value is not None else f"missing {key}")
        return value

    def req_int(self, key: str) -> int:
        value = self.integer(key)
        assert value is not None
        return value

    def number(self, key: str, *, default: float | None = None) -> float:
        value = _dig(self.record, key)
        if value is None and default is not None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(f"{key} must be a number" if value is not None else f"missing {key}")
        return float(value)

    def flag(self, key: str, *, default: bool) -> bool:
        value = self.record.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(f"{key} must be true or false")
        return value

    def name(self, key: str = "name", *, optional: bool = False, limit: int = 200) -> str | None:
        value = self.record.get(key)
        if isinstance(value, dict):
            value = value.get("en", value.get("en-us"))
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{key} must be a name (text, or an object with an `en` text)")
        if "\x00" in value:
            raise self.fail(f"{key} holds a NUL character")
        return value.strip()[:limit]


def _dig(record: dict[str, Any], key: str) -> Any:
    value: Any = record
    for part in key.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _rows(source: _Source, name: str) -> Iterator[_Checker]:
    filename = source.filename(name)
    seen: set[int] = set()
    for number, record in source.records(name):
        check = _Checker(filename, number, record)
        key = check.req_int("_key")
        if key in seen:
            raise check.fail(f"_key {key} appears twice")
        seen.add(key)
        yield check


def read_sde(path: Path) -> SdeData:
    """Read and check an export (zip or folder) into rows; SdeError (one line) for anything wrong."""
    source = _Source(path)
    try:
        missing = [name for name in REQUIRED if name not in source]
        if missing:
            raise SdeError(
                f"{path} is not a static data export in JSON Lines: {missing[0]}.jsonl is missing "
                f"(expected {', '.join(REQUIRED)})"
            )
        return _read(source)
    finally:
        source.close()


def _read(source: _Source) -> SdeData:
    data = SdeData()
    if "_sde" in source:
        for _number, record in source.records("_sde"):
            if record.get("_key") == "sde" and record.get("buildNumber") is not None:
                data.build = str(record["buildNumber"])[:64]

    regions: set[int] = set()
    for row in _rows(source, "mapRegions"):
        data.regions.append({"id": row.req_int("_key"), "name": row.name(limit=100)})
        regions.add(data.regions[-1]["id"])

    constellations: set[int] = set()
    for row in _rows(source, "mapConstellations"):
        region = row.req_int("regionID")
        if region not in regions:
            raise row.fail(f"regionID {region} is not in mapRegions")
        data.constellations.append(
            {"id": row.req_int("_key"), "name": row.name(limit=100), "region_id": region}
        )
        constellations.add(data.constellations[-1]["id"])

    system_names: dict[int, str] = {}
    for row in _rows(source, "mapSolarSystems"):
        region = row.req_int("regionID")
        constellation = row.req_int("constellationID")
        if region not in regions:
            raise row.fail(f"regionID {region} is not in mapRegions")
        if constellation not in constellations:
            raise row.fail(f"constellationID {constellation} is not in mapConstellations")
        security = row.number("securityStatus")
        if not -1.0 <= security <= 1.0:
            raise row.fail(f"securityStatus {security} is outside -1.0..1.0")
        system_id = row.req_int("_key")
        name = row.name(limit=100)
        assert name is not None
        system_names[system_id] = name
        data.systems.append(
            {
                "id": system_id,
                "name": name,
                "constellation_id": constellation,
                "region_id": region,
                "security": security,
            }
        )
    system_region = {row["id"]: row["region_id"] for row in data.systems}

    for row in _rows(source, "mapStargates"):
        system = row.req_int("solarSystemID")
        destination = row.req_int("destination.solarSystemID")
        for which in (system, destination):
            if which not in system_names:
                raise row.fail(f"solar system {which} is not in mapSolarSystems")
        data.stargates.append(
            {
                "id": row.req_int("_key"),
                "system_id": system,
                "dest_system_id": destination,
                "dest_stargate_id": row.integer("destination.stargateID", optional=True),
            }
        )

    groups: dict[int, int] = {}
    for row in _rows(source, "groups"):
        group_id = row.req_int("_key")
        groups[group_id] = row.req_int("categoryID")
        data.groups.append({"id": group_id, "name": row.name(), "category_id": groups[group_id]})

    market_groups: set[int] = set()
    parents: list[tuple[_Checker, int]] = []
    for row in _rows(source, "marketGroups"):
        parent = row.integer("parentGroupID", optional=True)
        data.market_groups.append({"id": row.req_int("_key"), "parent_id": parent, "name": row.name()})
        market_groups.add(data.market_groups[-1]["id"])
        if parent is not None:
            parents.append((row, parent))
    for row, parent in parents:
        if parent not in market_groups:
            raise row.fail(f"parentGroupID {parent} is not in marketGroups")

    for row in _rows(source, "types"):
        group = row.req_int("groupID")
        if group not in groups:
            raise row.fail(f"groupID {group} is not in groups")
        market_group = row.integer("marketGroupID", optional=True)
        if market_group is not None and market_group not in market_groups:
            raise row.fail(f"marketGroupID {market_group} is not in marketGroups")
        volume = row.number("volume", default=0.0)
        if volume < 0:
            raise row.fail("volume is negative")
        data.types.append(
            {
                "id": row.req_int("_key"),
                "name": row.name(),
                "group_id": group,
                "market_group_id": market_group,
                "volume_m3": volume,
                "packaged_volume_m3": SHIP_PACKAGED_VOLUMES.get(group, volume)
                if groups[group] == 6
                else volume,
                "published": row.flag("published", default=False),
            }
        )

    corporations: dict[int, str] = {}
    factions: dict[int, int | None] = {}
    for row in _rows(source, "npcCorporations"):
        corp_id = row.req_int("_key")
        name = row.name()
        assert name is not None
        corporations[corp_id] = name
        factions[corp_id] = row.integer("factionID", optional=True)
        data.corporations.append({"id": corp_id, "name": name, "faction_id": factions[corp_id]})

    data.stations = _stations(source, system_names, system_region, corporations, factions)
    if not data.types:
        raise SdeError(f"{source.filename('types')}: no types")
    if not data.systems:
        raise SdeError(f"{source.filename('mapSolarSystems')}: no solar systems")
    return data


def _stations(
    source: _Source,
    system_names: dict[int, str],
    system_region: dict[int, int],
    corporations: dict[int, str],
    factions: dict[int, int | None],
) -> list[dict[str, Any]]:
    records: list[tuple[_Checker, int, int, int | None, int | None]] = []
    orbits: set[int] = set()
    for row in _rows(source, "npcStations"):
        system = row.req_int("solarSystemID")
        if system not in system_names:
            raise row.fail(f"solarSystemID {system} is not in mapSolarSystems")
        owner = row.req_int("ownerID")
        if owner not in corporations:
            raise row.fail(f"ownerID {owner} is not in npcCorporations")
        orbit = row.integer("orbitID", optional=True)
        if orbit is not None:
            orbits.add(orbit)
        records.append((row, system, owner, orbit, row.integer("operationID", optional=True)))

    operations: dict[int, str] = {}
    if "stationOperations" in source:
        for row in _rows(source, "stationOperations"):
            name = row.name("operationName", optional=True)
            if name is not None:
                operations[row.req_int("_key")] = name

    # Only the moons and planets stations orbit are kept (the full mapMoons has ~340,000 lines).
    moons: dict[int, tuple[int, int, str | None]] = {}
    if "mapMoons" in source:
        for row in _rows(source, "mapMoons"):
            key = row.req_int("_key")
            if key in orbits:
                moons[key] = (row.req_int("orbitID"), row.req_int("orbitIndex"), row.name(optional=True))
    planets_needed = orbits | {planet for planet, _index, _name in moons.values()}
    planets: dict[int, str] = {}
    if "mapPlanets" in source:
        for row in _rows(source, "mapPlanets"):
            key = row.req_int("_key")
            if key in planets_needed:
                own = row.name(optional=True)
                system = row.req_int("solarSystemID")
                if own is None:
                    if system not in system_names:
                        raise row.fail(f"solarSystemID {system} is not in mapSolarSystems")
                    own = f"{system_names[system]} {roman(row.req_int('celestialIndex'))}"
                planets[key] = own

    stations: list[dict[str, Any]] = []
    for row, system, owner, orbit, operation in records:
        name = row.name(optional=True)
        if name is None:
            orbit_name = _orbit_name(orbit, moons, planets)
            if orbit_name is None:
                name = f"{system_names[system]} station {row.req_int('_key')}"
            else:
                name = f"{orbit_name} - {corporations[owner]}"
                if row.flag("useOperationName", default=False) and operation in operations:
                    name += f" {operations[operation]}"
        stations.append(
            {
                "id": row.req_int("_key"),
                "name": name[:200],
                "system_id": system,
                "region_id": system_region[system],
                "owner_corp_id": owner,
                "faction_id": factions.get(owner),
                "kind": "npc",
            }
        )
    return stations


def _orbit_name(
    orbit: int | None, moons: dict[int, tuple[int, int, str | None]], planets: dict[int, str]
) -> str | None:
    if orbit is None:
        return None
    if orbit in moons:
        planet, index, own = moons[orbit]
        if own is not None:
            return own
        return f"{planets[planet]} - Moon {index}" if planet in planets else None
    return planets.get(orbit)


async def import_sde(session: AsyncSession, path: Path, *, source: str | None = None) -> MarketSdeImport:
    """Read and check the export at `path` (in a thread: the full SDE takes seconds), then replace the
    static tables with it in `session`'s transaction; the import's record. SdeError: nothing written."""
    data = await asyncio.to_thread(read_sde, path)
    return await repository.replace_static(session, data, source=source or str(path))


async def import_subset(session: AsyncSession) -> MarketSdeImport:
    """Import the shipped subset (first run, tests)."""
    return await import_sde(session, SUBSET, source="shipped subset")
