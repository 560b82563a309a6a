"""The image and the kind testbed agree with the chart (Docker and kind do not run here)."""

from __future__ import annotations

import re
import subprocess
import sys

import yaml

from qorch.api import QuantumNode
from qorch.channel.identity import Identity
from qorch.operator.agent_workload import build_deployment
from qorch.settings import Settings
from tests.support import REPO

sys.path.insert(0, str(REPO / "hack"))
from controlplane import SITES

DOCKERFILE = (REPO / "Dockerfile").read_text()
VALUES = yaml.safe_load((REPO / "charts" / "qorch" / "values.yaml").read_text())


def test_image_user_is_the_uid_the_pods_run_as() -> None:
    (user,) = re.findall(r"^USER (\d+)(?::(\d+))?$", DOCKERFILE, re.MULTILINE)
    uid, gid = int(user[0]), int(user[1])
    assert uid == gid == 10001
    assert VALUES["podSecurityContext"]["runAsUser"] == uid
    assert VALUES["podSecurityContext"]["runAsGroup"] == gid
    node = QuantumNode.model_validate({"metadata": {"name": "n"}, "spec": {"qubits": 2}})
    deployment = build_deployment(node, Settings(), Identity.generate().public_key)
    agent_pod = deployment["spec"]["template"]["spec"]
    assert agent_pod["securityContext"]["runAsUser"] == uid


def test_image_runs_the_one_qorch_entry_point() -> None:
    assert 'ENTRYPOINT ["qorch"]' in DOCKERFILE
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\}$", DOCKERFILE, re.MULTILINE)
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in DOCKERFILE
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert ignored[ignored.index("*") :][:4] == ["*", "!pyproject.toml", "!README.md", "!src/"]


def test_kind_cluster_has_two_workers_at_the_test_sites() -> None:
    config = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    assert config["kind"] == "Cluster" and config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    roles = [n["role"] for n in config["nodes"]]
    assert roles == ["control-plane", "worker", "worker"]
    zones = [n["labels"]["topology.kubernetes.io/zone"] for n in config["nodes"][1:]]
    assert tuple(zones) == SITES, "kind and the test control plane name the same edge sites"


def test_kind_up_script_parses() -> None:
    subprocess.run(["bash", "-n", str(REPO / "hack" / "kind-up.sh")], check=True)
