"""`pentad market …` run as an operator runs it, against a fresh SQLite database."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

from pentad.apps.market import sde
from tests.test_cli import env
from tests.test_cli import pentad_here as pentad

__all__ = ["env"]


def test_static_data_and_hubs_from_the_command_line(env: dict[str, str], tmp_path: Path) -> None:
    pentad(env, "migrate")
    assert "No static data imported yet" in pentad(env, "market", "sde", "status").stdout
    unknown = pentad(env, "market", "hubs").stdout.splitlines()
    assert len(unknown) == 5
    assert all("not in the static data" in line for line in unknown)

    imported = pentad(env, "market", "sde", "import").stdout
    assert imported == (
        "Imported static data subset-1 from shipped subset: 283 types, 33 systems, 68 stargates, 5 stations,"
        " 5 regions, 13 market groups.\n"
    )
    status = pentad(env, "market", "sde", "status").stdout.splitlines()
    assert status[0].startswith("Imported ")
    assert status[0].endswith(": build subset-1 from shipped subset.")
    assert (
        status[1] == "Holding 283 types, 33 systems, 68 stargates, 5 stations, 5 regions, 13 market groups."
    )

    hubs = pentad(env, "market", "hubs").stdout.splitlines()
    assert hubs[0] == "jita\t60003760\tJita IV - Moon 4 - Caldari Navy Assembly Plant\tJita (0.9)\tThe Forge"
    assert hubs[4] == "hek\t60005686\tHek VIII - Moon 12 - Boundless Creation Factory\tHek (0.5)\tMetropolis"

    # A folder of plain files imports too; a broken one is refused with its file and line, changing nothing.
    folder = tmp_path / "export"
    folder.mkdir()
    for file in sde.SUBSET.iterdir():
        (folder / file.name.removesuffix(".gz")).write_bytes(gzip.decompress(file.read_bytes()))
    assert "from " + str(folder) in pentad(env, "market", "sde", "import", str(folder)).stdout
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    (broken / "mapSolarSystems.jsonl").write_text('{"_key": 30000142, "name": {"en": "Jita"}}\n')
    refused = pentad(env, "market", "sde", "import", str(broken), check=False)
    assert refused.returncode != 0
    assert "mapSolarSystems.jsonl line 1: missing regionID" in refused.stderr
    assert f"from {folder}." in pentad(env, "market", "sde", "status").stdout
    missing = pentad(env, "market", "sde", "import", str(tmp_path / "nope.zip"), check=False)
    assert missing.returncode != 0
    assert "does not exist" in missing.stderr

    # HUBS naming a station the static data lacks, or the wrong region, says so.
    env = {**env, "PENTAD_MARKET__HUBS": "jita:60003760:10000043,x:60000001:10000002"}
    assert pentad(env, "market", "hubs").stdout.splitlines() == [
        "jita\t60003760\tstation is in region 10000002, not 10000043 as configured",
        "x\t60000001\tnot in the static data (run: pentad market sde import)",
    ]
