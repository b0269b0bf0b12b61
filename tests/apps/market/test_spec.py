"""What the market app hands the core: its permissions reach the roles, its partitioned tables the core's
maintenance job, its settings `pentad config show` (secrets masked)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pentad.app import create_app
from pentad.apps.market import permissions
from pentad.apps.market.models import BOOK_STATS, HISTORY, HUB_LADDERS, ORDERS
from pentad.apps.market.spec import APP
from pentad.core.db.partitions import MAINTAIN_JOB
from pentad.core.platform import Platform
from tests.conftest import make_settings


def test_the_spec_names_its_parts() -> None:
    assert APP.name == "market"
    assert APP.migrations is not None
    assert (APP.migrations / "market_0001_initial.py").is_file()
    assert list(APP.partitioned_tables) == [ORDERS, BOOK_STATS, HISTORY, HUB_LADDERS]
    assert [(t.name, t.column, t.period) for t in APP.partitioned_tables] == [
        ("market_orders", "captured_at", "hour"),
        ("market_book_stats", "captured_at", "day"),
        ("market_history", "date", "month"),
        ("market_hub_ladders", "captured_at", "hour"),
    ]


def test_members_use_the_market_and_the_advisor_admins_also_run_it(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path}/db.sqlite",
        apps=["market"],
        market={"order_retention_hours": 3, "stats_retention_days": 2},
    )
    platform: Platform = create_app(settings).state.platform
    registry = platform.permissions
    assert registry.role_permissions("member") >= {"market.use", "market.advisor"}
    assert "market.admin" not in registry.role_permissions("member")
    assert "market.admin" in registry.role_permissions("admin")
    assert registry.resource_roles[permissions.CHARACTER_RESOURCE] == {
        "owner": frozenset({"market.character.view", "market.character.manage"}),
        "viewer": frozenset({"market.character.view"}),
    }
    assert platform.jobs.registry.get(MAINTAIN_JOB) is not None
    assert ORDERS.retention is not None
    assert BOOK_STATS.retention is not None
    assert ORDERS.retention(platform) == timedelta(hours=3)
    assert HUB_LADDERS.retention is ORDERS.retention  # the ladders go with their orders
    assert BOOK_STATS.retention(platform) == timedelta(days=2)
