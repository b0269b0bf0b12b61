"""Resource limits: the cgroup v2 backend against a fake cgroupfs (this host has cgroup v1), the rlimits
backend for real (a game cannot write a file larger than its disk quota), and which one is reported."""

from __future__ import annotations

from pathlib import Path

from pentad.agent.limits import Limits
from pentad.agent.runtime import Runtime
from pentad.panel_wire.serverspec import ServerLimits, ServerSpec
from tests.agent.conftest import Events, agent_settings, require_bwrap


def fake_cgroupfs(root: Path, controllers: str = "cpuset cpu io memory hugetlb pids rdma misc") -> Path:
    root.mkdir(parents=True)
    (root / "cgroup.controllers").write_text(controllers + "\n")
    (root / "cgroup.subtree_control").write_text("")
    return root


def test_cgroup2_is_used_when_memory_cpu_and_pids_can_be_delegated(tmp_path: Path) -> None:
    root = fake_cgroupfs(tmp_path / "cgroup")
    limits = Limits(agent_settings(tmp_path / "data", cgroup_root=root))
    assert limits.backend == "cgroup2"
    plan = limits.plan(
        "srv1", ServerLimits(memory_mb=512, cpu_percent=150, pids=64, disk_mb=100), own_uid=True
    )
    group = root / "pentad-agent" / "srv1"
    assert plan.backend == "cgroup2"
    assert plan.cgroup == str(group)
    assert (group / "memory.max").read_text() == str(512 * 1024 * 1024)
    assert (group / "cpu.max").read_text() == "150000 100000"
    assert (group / "pids.max").read_text() == "64"
    assert (root / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    assert plan.rlimits == {"RLIMIT_FSIZE": 100 * 1024 * 1024, "RLIMIT_NOFILE": 4096}  # quota per file
    assert plan.notes == ()
    unlimited = limits.plan("srv2", ServerLimits(), own_uid=True)
    assert unlimited.cgroup is not None
    assert (Path(unlimited.cgroup) / "memory.max").read_text() == "max"
    limits.release("srv1")
    assert not group.exists()


def test_rlimits_when_cgroup2_lacks_controllers_and_the_reason_says_why(tmp_path: Path) -> None:
    root = fake_cgroupfs(tmp_path / "cgroup", controllers="hugetlb")  # what this host's unified mount has
    limits = Limits(agent_settings(tmp_path / "data", cgroup_root=root))
    assert limits.backend == "rlimits"
    assert "lacks the cpu, memory, pids controller(s)" in limits.reason
    plan = limits.plan("srv", ServerLimits(memory_mb=256, cpu_percent=50, pids=32, disk_mb=10), own_uid=True)
    assert plan.rlimits == {
        "RLIMIT_FSIZE": 10 * 1024 * 1024,
        "RLIMIT_NOFILE": 4096,
        "RLIMIT_AS": 256 * 1024 * 1024,
        "RLIMIT_NPROC": 32,
    }
    assert any(note.startswith("cpu_percent: not enforced") for note in plan.notes)
    assert "rlimits" in Limits(agent_settings(tmp_path / "d2", cgroup_root=tmp_path / "none")).backend


async def test_a_game_cannot_write_past_its_disk_quota(opened: tuple[Runtime, Events]) -> None:
    runtime, events = opened
    spec = ServerSpec(
        server_id="quota",
        startup='head -c 2097152 /dev/zero > big; echo "head status $?"; echo "size $(stat -c %s big)"; cat',
        limits=ServerLimits(disk_mb=1),
    )
    await runtime.start(spec)
    await events.wait_line("quota", "size ")
    lines = events.lines("quota")
    assert "head status 153" in lines  # SIGXFSZ: the write past RLIMIT_FSIZE was refused
    assert f"size {1024 * 1024}" in lines
    assert runtime.facts()["limits_backend"] == "rlimits"


async def test_the_game_joins_its_cgroup(data_root: Path) -> None:
    require_bwrap()
    root = fake_cgroupfs(data_root / "cgroup")
    runtime = Runtime(agent_settings(data_root / "agent", cgroup_root=root))
    await runtime.open()
    events = Events(runtime)
    try:
        assert runtime.facts()["limits_backend"] == "cgroup2"
        await runtime.start(
            ServerSpec(server_id="grouped", startup="echo up; cat", limits=ServerLimits(memory_mb=64))
        )
        await events.wait_line("grouped", "up")
        procs = (root / "pentad-agent" / "grouped" / "cgroup.procs").read_text()
        assert procs == "0"  # the shim's child wrote itself ("0": the writing process) before exec
        assert runtime.status("grouped").game_pid is not None
    finally:
        await runtime.kill("grouped")
        await events.close()
        await runtime.close()
