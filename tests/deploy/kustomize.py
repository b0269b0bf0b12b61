"""Renders this repository's kustomizations for the tests, as `kubectl kustomize` would, for the features
they use: `resources` (files and other kustomizations), `namespace`, `images`, `labels` and `patches` with
JSON 6902 operations on a target (kind and name). Any other field fails the render, so a kustomization
that grows a feature this renderer does not know cannot pass unchecked."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

KNOWN_FIELDS = {"apiVersion", "kind", "resources", "namespace", "images", "labels", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass"}


class KustomizeError(Exception):
    pass


def render(folder: Path) -> list[dict[str, Any]]:
    """The documents `folder`'s kustomization.yaml produces."""
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(spec) - KNOWN_FIELDS
    if unknown:
        raise KustomizeError(f"{folder}: fields this renderer does not know: {sorted(unknown)}")
    documents: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        path = (folder / entry).resolve()
        if path.is_dir():
            documents += render(path)
        else:
            documents += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    documents = copy.deepcopy(documents)
    for label in spec.get("labels", []):
        for doc in documents:
            doc.setdefault("metadata", {}).setdefault("labels", {}).update(label["pairs"])
    for patch in spec.get("patches", []):
        _patch(documents, patch)
    for image in spec.get("images", []):
        for container in _containers(documents):
            if container.get("image", "").split(":")[0] == image["name"]:
                container["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
    if namespace := spec.get("namespace"):
        for doc in documents:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = namespace
    return documents


def _containers(documents: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for doc in documents:
        pod = pod_spec(doc)
        if pod is not None:
            yield from pod.get("initContainers", [])
            yield from pod.get("containers", [])


def pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    if doc["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
        spec: dict[str, Any] = doc["spec"]["template"]["spec"]
        return spec
    return None


def _patch(documents: list[dict[str, Any]], patch: dict[str, Any]) -> None:
    target = patch["target"]
    matched = [
        doc
        for doc in documents
        if doc["kind"] == target["kind"] and doc["metadata"]["name"] == target["name"]
    ]
    if len(matched) != 1:
        raise KustomizeError(f"patch target {target} matches {len(matched)} documents")
    for operation in yaml.safe_load(patch["patch"]):
        _apply(matched[0], operation)


def _apply(doc: dict[str, Any], operation: dict[str, Any]) -> None:
    *parents, last = [_unescape(part) for part in operation["path"].lstrip("/").split("/")]
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) else last
    if operation["op"] == "replace":
        node[key]
        node[key] = operation["value"]
    elif operation["op"] == "add":
        if isinstance(node, list):
            node.insert(len(node) if last == "-" else key, operation["value"])
        else:
            node[key] = operation["value"]
    elif operation["op"] == "remove":
        del node[key]
    else:
        raise KustomizeError(f"op {operation['op']!r} is not supported here")


def _unescape(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")
