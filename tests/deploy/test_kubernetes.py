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
            "StatefulSet",
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


def test_the_streams_node_runs_nginx_rtmp_in_its_pod_with_rtmp_exposed_and_the_media_routes() -> None:
    documents = render(KUBERNETES / "overlays" / "production")
    (streams,) = _by_kind(documents, "StatefulSet").values()
    pod = pod_spec(streams)
    assert pod is not None
    assert streams["spec"]["replicas"] == 1
    assert pod["securityContext"]["runAsNonRoot"] is True
    containers = {container["name"]: container for container in pod["containers"]}
    assert set(containers) == {"streams", "nginx-rtmp"}
    assert containers["nginx-rtmp"]["image"] == "ghcr.io/pentad/pentad-nginx-rtmp:0.1.0"
    init = {container["name"]: container for container in pod["initContainers"]}
    assert init["wait-for-schema"]["args"][:2] == ["migrate", "--check"]
    # The config nginx-rtmp runs is written by Pentad from the node's own settings, where nginx reads it.
    config = _by_kind(documents, "ConfigMap")["pentad-streams-config"]["data"]
    prefix = config["PENTAD_STREAMS__NGINX__PREFIX"]
    assert f"-o {prefix}/nginx.conf" in init["nginx-config"]["args"][0]
    for container in [*init.values(), *containers.values()]:
        assert container["resources"]["limits"]["memory"], container["name"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
    for container in [*init.values(), containers["streams"]]:
        refs = [
            source.get("configMapRef", source.get("secretRef"))["name"] for source in container["envFrom"]
        ]
        assert refs == ["pentad-config", "pentad-streams-config", "pentad-secrets"]
    mounts = {m["name"]: m["mountPath"] for m in containers["nginx-rtmp"]["volumeMounts"]}
    assert mounts["nginx-rtmp"] == prefix
    assert containers["streams"]["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # RTMP on a LoadBalancer to the pod's nginx-rtmp port; HLS and snapshots through the Ingress to the node.
    services = _by_kind(documents, "Service")
    rtmp = services["pentad-streams-rtmp"]
    assert rtmp["spec"]["type"] == "LoadBalancer"
    assert rtmp["spec"]["ports"][0]["port"] == int(config["PENTAD_STREAMS__RTMP_PORT"])
    assert rtmp["spec"]["ports"][0]["targetPort"] == "rtmp"
    paths = {
        path["path"]: path["backend"]["service"]["name"]
        for rule in _by_kind(documents, "Ingress")["pentad"]["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert paths == {"/": "pentad-web", "/streams/media/": "pentad-streams"}
    labels = streams["spec"]["template"]["metadata"]["labels"]
    for service in ("pentad-streams", "pentad-streams-rtmp"):
        assert services[service]["spec"]["selector"].items() <= labels.items()
    # The web pods run no media plane: the streams node is the only one.
    (web,) = pod_spec(_by_kind(documents, "Deployment")["pentad-web"])["containers"]  # type: ignore[index]
    assert {"name": "PENTAD_STREAMS__MEDIA_PLANE", "value": "false"} in web["env"]
    assert "PENTAD_STREAMS__MEDIA_PLANE" not in config
    policy = _by_kind(documents, "NetworkPolicy")["pentad-streams"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()


def test_the_streams_configuration_is_valid_for_pentad() -> None:
    documents = render(KUBERNETES / "overlays" / "production")
    configs = _by_kind(documents, "ConfigMap")
    secret = yaml.safe_load((KUBERNETES / "base" / "secret.example.yaml").read_text())["stringData"]
    keys = {name: VALID_SECRETS[name] for name in ("PENTAD_CRYPTO__KEYS", "PENTAD_AUTH__SECRET_KEY")}
    streams = configs["pentad-streams-config"]["data"]
    assert not set(streams) & set(configs["pentad-config"]["data"])
    shown = config_show({**configs["pentad-config"]["data"], **streams, **secret, **keys})
    assert shown.returncode == 0, shown.stderr
    assert "unknown setting" not in shown.stderr, shown.stderr
    assert "warning" not in shown.stderr.lower(), shown.stderr
