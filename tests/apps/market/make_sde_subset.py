"""Writes the market app's shipped static data subset (src/pentad/apps/market/sde_subset/) in the official
SDE's JSON Lines format, one `<file>.jsonl.gz` per SDE file: `python -m tests.apps.market.make_sde_subset`.

CCP's terms for redistributing the static data export are not clear to us, so the subset is synthetic,
keeping the real ids and names where code and users rely on them:

- real: the five trade hubs' regions, solar systems, NPC stations (their names come out of the SDE's naming
  rules: planet/moon + owner corporation + operation), the stations' owner corporations and factions, the
  trade skills (Trade, Retail, Broker Relations, Advanced Broker Relations, Accounting, …), the minerals and
  a few dozen well-known ships and items by type id and name;
- synthetic (ids from 9xx… ranges EVE does not use, names starting "Syn"): the systems and stargates
  connecting the hubs, the constellations, planets and moons, station operations, market groups, about
  250 trade goods, and all volumes and security values (close to the game's, not copied from it).

The stargate graph is connected and built for route tests: a high-sec road between every pair of hubs, a
shorter low-sec shortcut Jita↔Amarr and Jita↔Hek, a 0.45 system (rounds to 0.5: high-sec) on the Dodixie-
Amarr road, and Hek itself at 0.46 (shown as 0.5, high-sec).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[3] / "src" / "pentad" / "apps" / "market" / "sde_subset"
BUILD = "subset-1"

HUBS = [
    # key, region (id, name), system (id, name, security), corp (id, name, faction), station id,
    # planet (celestial index, own name or None), moon orbit index or None, operation name
    ("jita", (10000002, "The Forge"), (30000142, "Jita", 0.9459), (1000035, "Caldari Navy", 500001),
     60003760, (4, None), 4, "Assembly Plant"),
    ("amarr", (10000043, "Domain"), (30002187, "Amarr", 1.0), (1000086, "Emperor Family", 500003),
     60008494, (8, "Amarr VIII (Oris)"), None, "Academy"),
    ("dodixie", (10000032, "Sinq Laison"), (30002659, "Dodixie", 0.8654),
     (1000120, "Federation Navy", 500004), 60011866, (9, None), 20, "Assembly Plant"),
    ("rens", (10000030, "Heimatar"), (30002510, "Rens", 0.8998), (1000049, "Brutor Tribe", 500002),
     60004588, (6, None), 8, "Treasury"),
    ("hek", (10000042, "Metropolis"), (30002053, "Hek", 0.4637), (1000057, "Boundless Creation", 500002),
     60005686, (8, None), 12, "Factory"),
]  # fmt: skip

# Roads between hubs: (from, to, region of the synthetic systems, their securities).
ROADS = [
    ("jita", "rens", "jita", [0.9, 0.8, 0.7, 0.6, 0.7, 0.8]),
    ("rens", "hek", "rens", [0.7, 0.6, 0.5]),
    ("jita", "hek", "hek", [0.3, 0.2]),
    ("jita", "dodixie", "dodixie", [0.8, 0.7, 0.6, 0.7, 0.9]),
    ("dodixie", "amarr", "amarr", [0.6, 0.5, 0.45, 0.6, 0.7, 0.8, 0.9, 1.0]),
    ("jita", "amarr", "amarr", [0.4, 0.1, 0.3, 0.4]),
]

SKILLS = [
    (3443, "Trade"),
    (3444, "Retail"),
    (3446, "Broker Relations"),
    (16597, "Advanced Broker Relations"),
    (16622, "Accounting"),
    (16594, "Procurement"),
    (16595, "Daytrading"),
    (16596, "Wholesale"),
    (16598, "Marketing"),
    (18580, "Tycoon"),
]
MINERALS = [
    (34, "Tritanium"),
    (35, "Pyerite"),
    (36, "Mexallon"),
    (37, "Isogen"),
    (38, "Nocxium"),
    (39, "Zydrine"),
    (40, "Megacyte"),
    (11399, "Morphite"),
]
SHIPS = [
    # id, name, group, assembled volume (approximate)
    (587, "Rifter", 25, 27289.0),
    (603, "Merlin", 25, 16500.0),
    (597, "Punisher", 25, 28600.0),
    (608, "Atron", 25, 22500.0),
    (620, "Osprey", 26, 107000.0),
    (621, "Caracal", 26, 92000.0),
    (622, "Stabber", 26, 80000.0),
    (627, "Thorax", 26, 112000.0),
    (638, "Raven", 27, 486000.0),
    (639, "Tempest", 27, 450000.0),
    (641, "Megathron", 27, 486000.0),
    (642, "Apocalypse", 27, 495000.0),
    (643, "Armageddon", 27, 486000.0),
    (648, "Badger", 28, 250000.0),
    (24698, "Drake", 419, 252000.0),
]
GROUPS = [
    (18, "Mineral", 4),
    (25, "Frigate", 6),
    (26, "Cruiser", 6),
    (27, "Battleship", 6),
    (28, "Hauler", 6),
    (274, "Trade", 16),
    (419, "Combat Battlecruiser", 6),
    (990001, "Syn Trade Goods", 17),
    (990002, "Syn Components", 17),
    (990003, "Syn Modules", 7),
]
MARKET_GROUPS = [
    (99001, None, "Syn Materials"),
    (99002, 99001, "Syn Minerals"),
    (99003, None, "Syn Ships"),
    (99004, 99003, "Syn Frigates"),
    (99005, 99003, "Syn Cruisers"),
    (99006, 99003, "Syn Battleships"),
    (99007, 99003, "Syn Industrial Ships"),
    (99008, 99003, "Syn Battlecruisers"),
    (99009, None, "Syn Skills"),
    (99010, 99009, "Syn Trade Skills"),
    (99011, None, "Syn Trade Goods"),
    (99012, None, "Syn Manufacture & Research"),
    (99013, None, "Syn Ship Equipment"),
]
SHIP_MARKET_GROUP = {25: 99004, 26: 99005, 27: 99006, 28: 99007, 419: 99008}
ROMAN = ["", "I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII"]


def _en(text: str) -> dict[str, str]:
    return {"en": text, "de": text}


def build() -> dict[str, list[dict[str, Any]]]:
    files: dict[str, list[dict[str, Any]]] = {name: [] for name in (
        "_sde", "types", "groups", "marketGroups", "mapRegions", "mapConstellations", "mapSolarSystems",
        "mapStargates", "mapPlanets", "mapMoons", "npcStations", "npcCorporations", "stationOperations",
    )}  # fmt: skip
    files["_sde"].append({"_key": "sde", "buildNumber": BUILD, "releaseDate": "2026-12-05T00:00:00Z"})
    hub_system = {}
    region_of_hub = {}
    constellation_of_region: dict[int, int] = {}
    systems: dict[int, dict[str, Any]] = {}
    next_constellation = 20900001
    for key, (region_id, region_name), (system_id, system_name, security), *_ in HUBS:
        constellation_id = next_constellation
        next_constellation += 1
        constellation_of_region[region_id] = constellation_id
        files["mapRegions"].append({"_key": region_id, "name": _en(region_name)})
        files["mapConstellations"].append(
            {"_key": constellation_id, "name": _en(f"Syn {region_name}"), "regionID": region_id}
        )
        systems[system_id] = {
            "_key": system_id, "name": _en(system_name), "constellationID": constellation_id,
            "regionID": region_id, "securityStatus": security,
        }  # fmt: skip
        hub_system[key] = system_id
        region_of_hub[key] = region_id

    gates: list[dict[str, Any]] = []
    next_system, next_gate = 30900001, 50900001

    def connect(a: int, b: int) -> None:
        nonlocal next_gate
        gate_a, gate_b = next_gate, next_gate + 1
        next_gate += 2
        gates.append(
            {"_key": gate_a, "solarSystemID": a, "destination": {"solarSystemID": b, "stargateID": gate_b}}
        )
        gates.append(
            {"_key": gate_b, "solarSystemID": b, "destination": {"solarSystemID": a, "stargateID": gate_a}}
        )

    for start, end, owner, securities in ROADS:
        region_id = region_of_hub[owner]
        previous = hub_system[start]
        for security in securities:
            system_id = next_system
            next_system += 1
            systems[system_id] = {
                "_key": system_id, "name": _en(f"Syn-{system_id - 30900000:03d}"),
                "constellationID": constellation_of_region[region_id], "regionID": region_id,
                "securityStatus": security,
            }  # fmt: skip
            connect(previous, system_id)
            previous = system_id
        connect(previous, hub_system[end])
    files["mapSolarSystems"] = sorted(systems.values(), key=lambda row: row["_key"])
    files["mapStargates"] = gates

    operations: dict[str, int] = {}
    next_celestial = 40900001
    corporations: dict[int, dict[str, Any]] = {}
    for _key, _region, (system_id, _name, _sec), (corp_id, corp_name, faction_id), station_id, (
        planet_index,
        planet_name,
    ), moon_index, operation in HUBS:
        corporations[corp_id] = {"_key": corp_id, "name": _en(corp_name), "factionID": faction_id}
        operation_id = operations.setdefault(operation, len(operations) + 1)
        planet_id = next_celestial
        next_celestial += 1
        planet: dict[str, Any] = {
            "_key": planet_id,
            "solarSystemID": system_id,
            "celestialIndex": planet_index,
        }
        if planet_name:
            planet["name"] = _en(planet_name)
        files["mapPlanets"].append(planet)
        orbit_id = planet_id
        if moon_index is not None:
            orbit_id = next_celestial
            next_celestial += 1
            files["mapMoons"].append(
                {"_key": orbit_id, "solarSystemID": system_id, "orbitID": planet_id, "orbitIndex": moon_index,
                 "celestialIndex": planet_index}
            )  # fmt: skip
        files["npcStations"].append(
            {"_key": station_id, "solarSystemID": system_id, "ownerID": corp_id, "operationID": operation_id,
             "orbitID": orbit_id, "useOperationName": True, "typeID": 1529}
        )  # fmt: skip
    files["npcCorporations"] = sorted(corporations.values(), key=lambda row: row["_key"])
    files["stationOperations"] = [
        {"_key": number, "operationName": _en(name)} for name, number in operations.items()
    ]

    files["groups"] = [
        {"_key": gid, "name": _en(name), "categoryID": category, "published": True}
        for gid, name, category in GROUPS
    ]
    files["marketGroups"] = [
        {"_key": mid, "name": _en(name), **({"parentGroupID": parent} if parent else {})}
        for mid, parent, name in MARKET_GROUPS
    ]
    types: list[dict[str, Any]] = []
    for tid, name in MINERALS:
        types.append({"_key": tid, "name": _en(name), "groupID": 18, "marketGroupID": 99002, "volume": 0.01,
                      "published": True, "portionSize": 1})  # fmt: skip
    for tid, name in SKILLS:
        types.append({"_key": tid, "name": _en(name), "groupID": 274, "marketGroupID": 99010, "volume": 0.01,
                      "published": True, "portionSize": 1})  # fmt: skip
    for tid, name, group, volume in SHIPS:
        types.append({"_key": tid, "name": _en(name), "groupID": group,
                      "marketGroupID": SHIP_MARKET_GROUP[group], "volume": volume, "published": True,
                      "portionSize": 1})  # fmt: skip
    # Synthetic goods: volumes from 0.1 to 500 m³, a few unpublished (not on the market).
    volumes = [0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 500.0]
    for n in range(1, 251):
        group = 990001 + n % 3
        market_group = {990001: 99011, 990002: 99012, 990003: 99013}[group]
        entry: dict[str, Any] = {
            "_key": 9900000 + n, "name": _en(f"Syn {['Trade Good', 'Component', 'Module'][n % 3]} {n:03d}"),
            "groupID": group, "volume": volumes[n % len(volumes)], "published": n % 50 != 0, "portionSize": 1,
        }  # fmt: skip
        if n % 50 != 0:
            entry["marketGroupID"] = market_group
        types.append(entry)
    files["types"] = types
    return files


def write(out: Path = OUT) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in build().items():
        lines = "".join(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows)
        # mtime=0: the same bytes every run (the files are committed).
        with (
            open(out / f"{name}.jsonl.gz", "wb") as raw,
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz,
        ):
            gz.write(lines.encode())


if __name__ == "__main__":
    write()
