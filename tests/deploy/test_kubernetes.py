"""deploy/kubernetes: the base and both overlays render, every object validates against the Kubernetes
OpenAPI schemas (strict: no unknown fields), and the manifests keep the promises docs/deploy.md makes
(probes, limits, non-root, the migration order, one source for the alert rules)."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy.kustomize import pod_spec, render
from tests.deploy.support import ROOT, VALID_SECRETS, config_show

KUBERNETES = ROOT / "deploy" / "kubernetes"
OVERLAYS = ["staging", "production"]
KUBERNETES_VERSION = "1.33.0"
"""The oldest minor the manifests target (sleep preStop hooks: 1.30+)."""


def _by_kind(documents: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in documents if doc["kind"] == kind}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_renders_objects_valid_for_kubernetes(overlay: str) -> None:
    documents = render(KUBERNETES / "overlays" / overlay)
    kinds = sorted({doc["kind"] for doc in documents})
    assert kinds == sorted(
        {
            "ConfigMap",
            "Deployment",
            "HorizontalPodAutoscaler",
            "Ingress",
            "Job",
            "Namespace",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount",
        }
    )
    for doc in documents:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    namespace = f"pentad-{overlay}" if overlay == "staging" else "pentad"
    assert all(
        doc["metadata"].get("namespace") == namespace for doc in documents if doc["kind"] != "Namespace"
    )


def test_a_schema_violation_is_caught() -> None:
    """The validator is not a rubber stamp: a typo in a field name fails."""
    deployment = _by_kind(render(KUBERNETES / "overlays" / "production"), "Deployment")["pentad-web"]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_pods_are_probed_limited_non_root_and_wait_for_the_schema() -> None:
    documents = render(KUBERNETES / "overlays" / "production")
    deployments = _by_kind(documents, "Deployment")
    assert set(deployments) == {"pentad-web", "pentad-worker"}
    for name, deployment in deployments.items():
        pod = pod_spec(deployment)
        assert pod is not None
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["serviceAccountName"] == "pentad"
        # The pod starts only once the migration Job brought the schema to this release.
        (init,) = pod["initContainers"]
        assert init["args"][:2] == ["migrate", "--check"]
        for container in [init, *pod["containers"]]:
            assert container["image"] == "ghcr.io/pentad/pentad:0.1.0", name
            assert container["resources"]["requests"]["cpu"], name
            assert container["resources"]["limits"]["memory"], name
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            refs = [
                source.get("configMapRef", source.get("secretRef"))["name"] for source in container["envFrom"]
            ]
            assert refs == ["pentad-config", "pentad-secrets"]
    web = pod_spec(deployments["pentad-web"])
    assert web is not None
    (container,) = web["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert deployments["pentad-web"]["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    # The overlay's patches landed.
    assert deployments["pentad-web"]["spec"]["replicas"] == 4
    assert container["resources"]["limits"]["memory"] == "2Gi"
    assert _by_kind(documents, "HorizontalPodAutoscaler")["pentad-web"]["spec"]["minReplicas"] == 4
    job = _by_kind(documents, "Job")["pentad-migrate"]
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    # Disruption budgets and the network policy select the pods that exist.
    for budget in _by_kind(documents, "PodDisruptionBudget").values():
        selector = budget["spec"]["selector"]["matchLabels"]
        assert any(
            selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
            for d in deployments.values()
        )


def test_the_configuration_is_every_setting_pentad_knows_and_valid() -> None:
    """The ConfigMap plus the example Secret, given to `pentad config show` with every app enabled: no
    unknown variable (a typo would be silently ignored by a pod) and every value valid."""
    documents = render(KUBERNETES / "overlays" / "production")
    config = _by_kind(documents, "ConfigMap")["pentad-config"]["data"]
    secret = yaml.safe_load((KUBERNETES / "base" / "secret.example.yaml").read_text())["stringData"]
    assert not set(config) & set(secret)
    keys = {name: VALID_SECRETS[name] for name in ("PENTAD_CRYPTO__KEYS", "PENTAD_AUTH__SECRET_KEY")}
    shown = config_show({**config, **secret, **keys})
    assert shown.returncode == 0, shown.stderr
    assert "unknown setting" not in shown.stderr, shown.stderr
    assert "warning" not in shown.stderr.lower(), shown.stderr


def test_the_operator_rules_are_the_alert_rules() -> None:
    rules = yaml.safe_load((KUBERNETES / "monitoring" / "prometheusrule.yaml").read_text())
    alerts = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    assert rules["kind"] == "PrometheusRule"
    assert rules["spec"]["groups"] == alerts["groups"]
    monitors = list(yaml.safe_load_all((KUBERNETES / "monitoring" / "servicemonitor.yaml").read_text()))
    ports = {monitor["spec"]["endpoints"][0]["port"] for monitor in monitors}
    assert ports == {"http", "metrics"}
    base = render(KUBERNETES / "base")
    service_ports = {
        port["name"] for doc in base if doc["kind"] == "Service" for port in doc["spec"]["ports"]
    }
    assert ports <= service_ports
