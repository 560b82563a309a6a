"""Kueue's controller beside the test control plane (hack/kueue_local.py), and the Kueue
objects the tests need: a ResourceFlavor per QuantumNode, ClusterQueues, LocalQueues."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Cluster
from tests.support import REPO

sys.path.insert(0, str(REPO / "hack"))
from kueue_local import LocalKueue

KUEUE = "kueue.x-k8s.io/v1beta2"


@pytest.fixture(scope="session", name="kueue")
def kueue_controller(cluster: Cluster) -> Iterator[LocalKueue]:
    local = LocalKueue(cluster.cp).start()
    try:
        yield local
    finally:
        local.stop()


def apply(cluster: Cluster, *objects: dict[str, Any]) -> None:
    text = "\n---\n".join(json.dumps(o) for o in objects)
    cluster.kubectl("apply", "-f", "-", stdin=text)


def node_flavor(namespace: str, node: str) -> dict[str, Any]:
    """The ResourceFlavor that stands for one QuantumNode (docs/kueue.md)."""
    return {
        "apiVersion": KUEUE,
        "kind": "ResourceFlavor",
        "metadata": {"name": f"qn.{namespace}.{node}"},
        "spec": {"nodeLabels": {"qorch.dev/quantum-node": f"{namespace}.{node}"}},
    }


def cluster_queue(
    name: str,
    quotas: dict[str, int],
    *,
    cohort: str | None = None,
    preemption: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ClusterQueue with a qubits quota per node flavor (flavor name -> qubits)."""
    spec: dict[str, Any] = {
        "namespaceSelector": {},
        "resourceGroups": [
            {
                "coveredResources": ["qorch.dev/qubits"],
                "flavors": [
                    {"name": flavor, "resources": [{"name": "qorch.dev/qubits", "nominalQuota": n}]}
                    for flavor, n in quotas.items()
                ],
            }
        ],
    }
    if cohort:
        spec["cohortName"] = cohort
    if preemption:
        spec["preemption"] = preemption
    return {"apiVersion": KUEUE, "kind": "ClusterQueue", "metadata": {"name": name}, "spec": spec}


def local_queue(namespace: str, name: str, cq: str) -> dict[str, Any]:
    return {
        "apiVersion": KUEUE,
        "kind": "LocalQueue",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"clusterQueue": cq},
    }


def priority_class(name: str, value: int) -> dict[str, Any]:
    return {
        "apiVersion": KUEUE,
        "kind": "WorkloadPriorityClass",
        "metadata": {"name": name},
        "value": value,
    }
