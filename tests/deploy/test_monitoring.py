"""The monitoring files name only series Pentad exports: every metric in the alert rules and the Grafana
dashboards is on a real platform's /metrics output (the core's, made at start) or is an app series made
through `metrics.for_app(...)` in the apps' code. A renamed metric breaks this test, not a dashboard
nobody looks at until the day it is needed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from pentad.apps import INSTALLED, enabled_apps
from pentad.core.platform import Platform
from tests.conftest import make_settings
from tests.deploy.support import ROOT

DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
PROVISIONED = ROOT / "deploy" / "compose" / "grafana" / "provisioning" / "datasources" / "prometheus.yaml"
METRIC = re.compile(r"\bpentad_[a-z0-9_]+")
SUFFIXES = ("_bucket", "_count", "_sum", "_total")
APP_SERIES = re.compile(
    r"for_app\((APP_NAME|\"[a-z]+\")\)\s*\.(counter|gauge|histogram)\(\s*\"([a-z0-9_]+)\"", re.MULTILINE
)


def _exported(tmp_path: Path) -> set[str]:
    """Every series name a platform with every app exports, plus the apps' own series found in their code."""
    settings = make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'metrics.db'}", apps=["*"])
    platform = Platform.build(settings, enabled_apps(settings), installed=INSTALLED)
    assert platform.services.specs, "the apps have services"
    assert platform.services.metrics is not None  # registered as the first service starts
    names = set(METRIC.findall(platform.metrics.render().decode()))
    for app_folder in (ROOT / "src" / "pentad" / "apps").iterdir():
        for source in app_folder.rglob("*.py"):
            for app, kind, name in APP_SERIES.findall(source.read_text()):
                app_name = app_folder.name if app == "APP_NAME" else app.strip('"')
                full = f"pentad_{app_name}_{name}"
                names.add(full + "_total" if kind == "counter" else full)
    return names


def _base(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _expressions() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            found.setdefault(f"alert {rule['alert']}", []).append(rule["expr"])
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                found.setdefault(f"{path.name}: {panel['title']}", []).append(target["expr"])
    return found


def test_every_metric_the_alerts_and_dashboards_name_is_exported(tmp_path: Path) -> None:
    exported = _exported(tmp_path)
    exported_bases = {_base(name) for name in exported}
    assert "pentad_jobs_finished_total" in exported
    assert "pentad_chat_messages_sent_total" in exported
    missing = {
        where: sorted(name for name in METRIC.findall(" ".join(exprs)) if _base(name) not in exported_bases)
        for where, exprs in _expressions().items()
    }
    assert {where: names for where, names in missing.items() if names} == {}


def test_the_checker_notices_a_metric_that_does_not_exist(tmp_path: Path) -> None:
    exported_bases = {_base(name) for name in _exported(tmp_path)}
    assert _base("pentad_jobs_finishd_total") not in exported_bases


@pytest.mark.parametrize("path", sorted(DASHBOARDS.glob("*.json")), ids=lambda path: path.name)
def test_each_dashboard_is_well_formed_and_uses_the_provisioned_datasource(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    datasource = yaml.safe_load(PROVISIONED.read_text())["datasources"][0]["uid"]
    assert dashboard["uid"]
    assert dashboard["title"].startswith("Pentad")
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == datasource
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                expression = target["expr"]
                assert expression.count("(") == expression.count(")"), expression
                assert expression.count("{") == expression.count("}"), expression


def test_dashboard_uids_are_unique() -> None:
    uids = [json.loads(path.read_text())["uid"] for path in DASHBOARDS.glob("*.json")]
    assert len(uids) == len(set(uids))
