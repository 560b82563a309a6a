"""Helm and the chart, for the chart's unit and end-to-end tests; no cluster needed here."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.support import REPO

CHART = REPO / "charts" / "qorch"
HELM = REPO / ".tools" / "bin" / "helm"

# Kinds whose objects run pods, and where their pod template sits.
POD_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": (),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


def helm(
    *args: str, env: dict[str, str] | None = None, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the helm built by `make tools`; on failure the AssertionError carries its output."""
    proc = subprocess.run(
        [str(HELM), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def set_args(values: dict[str, Any] | None) -> list[str]:
    """`--set-json` arguments, one per top-level key (lists and maps pass through whole)."""
    return [f"--set-json={key}={json.dumps(value)}" for key, value in (values or {}).items()]


def render(
    values: dict[str, Any] | None = None,
    *,
    release: str = "qorch",
    namespace: str = "qorch-system",
    chart: Path = CHART,
) -> list[dict[str, Any]]:
    """`helm template` with these values, as a list of manifests."""
    out = helm("template", release, str(chart), "--namespace", namespace, *set_args(values))
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [d for d in by_kind(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, got {len(matches)}"
    return matches[0]


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) of every object that runs pods."""
    for doc in docs:
        path = POD_TEMPLATE_PATHS.get(doc["kind"])
        if path is None:
            continue
        template: dict[str, Any] = doc
        for key in path:
            template = template[key]
        yield f"{doc['kind']}/{doc['metadata']['name']}", template["spec"]


def containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        *pod_spec.get("initContainers", []),
        *pod_spec["containers"],
        *pod_spec.get("ephemeralContainers", []),
    ]


def rbac_rules(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind/namespace/name, rule) of every Role and ClusterRole."""
    for doc in docs:
        if doc["kind"] in ("Role", "ClusterRole"):
            meta = doc["metadata"]
            where = f"{doc['kind']}/{meta.get('namespace', '')}/{meta['name']}"
            for rule in doc.get("rules") or []:
                yield where, rule
