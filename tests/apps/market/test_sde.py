"""`sde.import_sde`: CCP's JSON Lines export (a zip or a folder, plain or gzipped files) becomes the static
tables in one transaction — the same rows however often it runs, a bad file refused with one line naming
the file, the line and the problem, and nothing written then."""

from __future__ import annotations

import gzip
import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pentad.apps.market import repository, sde
from pentad.apps.market.models import MarketSdeImport, MarketStation, MarketSystem, MarketType
from pentad.core.db.engine import Database

HUB_STATIONS = {
    60003760: "Jita IV - Moon 4 - Caldari Navy Assembly Plant",
    60008494: "Amarr VIII (Oris) - Emperor Family Academy",
    60011866: "Dodixie IX - Moon 20 - Federation Navy Assembly Plant",
    60004588: "Rens VI - Moon 8 - Brutor Tribe Treasury",
    60005686: "Hek VIII - Moon 12 - Boundless Creation Factory",
}


def _read(name: str) -> list[dict[str, Any]]:
    with gzip.open(sde.SUBSET / f"{name}.jsonl.gz", "rt") as stream:
        return [json.loads(line) for line in stream if line.strip()]


def _write(folder: Path, name: str, rows: list[dict[str, Any]] | str) -> None:
    text = rows if isinstance(rows, str) else "".join(json.dumps(row) + "\n" for row in rows)
    (folder / f"{name}.jsonl.gz").unlink(missing_ok=True)
    (folder / f"{name}.jsonl").write_text(text)


@pytest.fixture
def export(tmp_path: Path) -> Path:
    """A writable copy of the shipped subset."""
    folder = tmp_path / "sde"
    shutil.copytree(sde.SUBSET, folder)
    return folder


async def _snapshot(session: AsyncSession) -> dict[str, Any]:
    """What the static tables hold, in a comparable form."""
    return {
        "counts": await repository.static_counts(session),
        "types": (
            await session.execute(select(MarketType.id, MarketType.name).order_by(MarketType.id))
        ).all(),
        "systems": (
            await session.execute(select(MarketSystem.id, MarketSystem.security).order_by(MarketSystem.id))
        ).all(),
        "stations": (
            await session.execute(select(MarketStation.id, MarketStation.name).order_by(MarketStation.id))
        ).all(),
    }


# --- reading (no database) ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "text"), [(1, "I"), (4, "IV"), (8, "VIII"), (9, "IX"), (12, "XII"), (40, "XL")]
)
def test_celestial_indexes_are_roman_numerals(number: int, text: str) -> None:
    assert sde.roman(number) == text


def test_the_subset_names_the_hub_stations_by_the_sdes_rules() -> None:
    data = sde.read_sde(sde.SUBSET)
    assert {row["id"]: row["name"] for row in data.stations} == HUB_STATIONS
    assert data.build == "subset-1"
    assert data.counts()["types"] > 250
    jita = next(row for row in data.stations if row["id"] == 60003760)
    assert (jita["system_id"], jita["region_id"], jita["owner_corp_id"], jita["faction_id"]) == (
        30000142, 10000002, 1000035, 500001,
    )  # fmt: skip


def test_ships_get_their_repackaged_volume_and_other_types_their_volume() -> None:
    types = {row["id"]: row for row in sde.read_sde(sde.SUBSET).types}
    rifter, badger, tritanium = types[587], types[648], types[34]
    assert (rifter["volume_m3"], rifter["packaged_volume_m3"]) == (27289.0, 2500.0)
    assert badger["packaged_volume_m3"] == 20000.0
    assert tritanium["packaged_volume_m3"] == tritanium["volume_m3"] == 0.01


def test_without_planets_and_moons_a_station_gets_a_placeholder_name(export: Path) -> None:
    for name in ("mapPlanets", "mapMoons", "stationOperations"):
        (export / f"{name}.jsonl.gz").unlink()
    names = {row["id"]: row["name"] for row in sde.read_sde(export).stations}
    assert names[60003760] == "Jita station 60003760"


def test_a_zip_with_plain_files_in_a_folder_reads_like_the_folder(tmp_path: Path) -> None:
    archive = tmp_path / "eve-online-static-data-1-jsonl.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for file in sde.SUBSET.iterdir():
            zipped.writestr(f"sde/{file.name.removesuffix('.gz')}", gzip.decompress(file.read_bytes()))
    assert sde.read_sde(archive) == sde.read_sde(sde.SUBSET)


def _drop_key(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    rows[3].pop(key)
    return rows


BREAKAGES: list[tuple[str, Callable[[Path], object], str]] = [
    ("missing file", lambda f: (f / "types.jsonl.gz").unlink(), "types.jsonl is missing"),
    (
        "not JSON",
        lambda f: _write(f, "mapRegions", json.dumps(_read("mapRegions")[0]) + "\n{oops\n"),
        "mapRegions.jsonl line 2: not JSON",
    ),
    ("not an object", lambda f: _write(f, "groups", "[1, 2]\n"), "groups.jsonl line 1: not a JSON object"),
    (
        "missing field",
        lambda f: _write(f, "mapSolarSystems", _drop_key(_read("mapSolarSystems"), "securityStatus")),
        "mapSolarSystems.jsonl line 4: missing securityStatus",
    ),
    (
        "bad security",
        lambda f: _write(
            f,
            "mapSolarSystems",
            [
                {**row, "securityStatus": 7.5} if i == 0 else row
                for i, row in enumerate(_read("mapSolarSystems"))
            ],
        ),
        "securityStatus 7.5 is outside -1.0..1.0",
    ),
    (
        "gate to nowhere",
        lambda f: _write(
            f,
            "mapStargates",
            [
                *_read("mapStargates"),
                {"_key": 1, "solarSystemID": 30000142, "destination": {"solarSystemID": 31}},
            ],
        ),
        "mapStargates.jsonl line 69: solar system 31 is not in mapSolarSystems",
    ),
    (
        "station in an unknown system",
        lambda f: _write(f, "npcStations", [{**_read("npcStations")[0], "solarSystemID": 30000001}]),
        "npcStations.jsonl line 1: solarSystemID 30000001 is not in mapSolarSystems",
    ),
    (
        "duplicate key",
        lambda f: _write(f, "types", [*_read("types"), _read("types")[0]]),
        "types.jsonl line 284: _key 34 appears twice",
    ),
    (
        "type of an unknown group",
        lambda f: _write(f, "types", [{**_read("types")[0], "groupID": 4242}]),
        "types.jsonl line 1: groupID 4242 is not in groups",
    ),
    (
        "text key",
        lambda f: _write(f, "mapRegions", '{"_key": "x", "name": "A"}\n'),
        "_key must be an integer",
    ),
    ("no types", lambda f: _write(f, "types", ""), "types.jsonl: no types"),
    (
        "corrupt gzip",
        lambda f: (f / "groups.jsonl.gz").write_bytes(b"\x1f\x8bnot gzip"),
        "groups.jsonl.gz: unreadable",
    ),
]


@pytest.mark.parametrize(("case", "breakage", "message"), BREAKAGES, ids=[case[0] for case in BREAKAGES])
def test_a_bad_export_is_refused_with_the_file_line_and_problem(
    export: Path, case: str, breakage: Callable[[Path], object], message: str
) -> None:
    breakage(export)
    with pytest.raises(sde.SdeError) as refused:
        sde.read_sde(export)
    assert message in refused.value.message, (case, refused.value.message)
    assert refused.value.status == 400
    assert "\n" not in refused.value.message


def test_a_path_that_is_neither_a_zip_nor_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(sde.SdeError, match="does not exist"):
        sde.read_sde(tmp_path / "nothing-here.zip")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(sde.SdeError, match="is not a zip file or a folder"):
        sde.read_sde(tmp_path / "notes.txt")


# --- importing (every database) ----------------------------------------------------------------------------


async def test_importing_twice_gives_the_same_rows_and_keeps_player_structures(database: Database) -> None:
    async with database.transaction() as session:
        first = await sde.import_subset(session)
        before = await _snapshot(session)
        session.add(MarketStation(id=1_035_466_617_946, name="Perimeter - Tranquility Trading Tower",
                                  system_id=30000144, region_id=10000002, kind="structure"))  # fmt: skip
    async with database.transaction() as session:
        second = await sde.import_subset(session)
        after = await _snapshot(session)
        imports = await session.scalar(select(func.count()).select_from(MarketSdeImport))
    assert first.counts == second.counts == before["counts"] | {"stations": 5}
    assert {k: v for k, v in after.items() if k != "counts"} == {
        **{k: v for k, v in before.items() if k != "counts"},
        "stations": [*before["stations"], (1_035_466_617_946, "Perimeter - Tranquility Trading Tower")],
    }
    assert imports == 2
    assert dict(before["stations"]) == HUB_STATIONS


async def test_a_refused_import_changes_nothing(database: Database, export: Path) -> None:
    async with database.transaction() as session:
        await sde.import_subset(session)
        before = await _snapshot(session)
    _write(export, "npcStations", [{**_read("npcStations")[0], "ownerID": 1}])
    with pytest.raises(sde.SdeError, match="ownerID 1 is not in npcCorporations"):
        async with database.transaction() as session:
            await sde.import_sde(session, export)
    async with database.transaction() as session:
        assert await _snapshot(session) == before
        assert await session.scalar(select(func.count()).select_from(MarketSdeImport)) == 1


async def test_a_failure_while_writing_rolls_the_whole_import_back(
    database: Database, export: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with database.transaction() as session:
        await sde.import_subset(session)
        before = await _snapshot(session)
    # A different export (one type renamed) whose write fails half-way, after types were replaced.
    _write(export, "types", [{**row, "name": {"en": "Renamed"}} if row["_key"] == 34 else row
                             for row in _read("types")])  # fmt: skip
    real_insert = repository._insert

    async def failing(session: AsyncSession, model: Any, rows: Any) -> None:
        if model is MarketStation:
            raise RuntimeError("disk full")
        await real_insert(session, model, rows)

    monkeypatch.setattr(repository, "_insert", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        async with database.transaction() as session:
            await sde.import_sde(session, export)
    async with database.transaction() as session:
        assert await _snapshot(session) == before
