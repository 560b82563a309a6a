"""`qorch operator` as the README runs it, on a cluster that has no `qorch-system`.

Outside a cluster the operator keeps its identity in the kubeconfig context's namespace and
says so once; a namespace that is set but missing stops it with one line naming the fix.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import Cluster

pytestmark = pytest.mark.e2e

SIM = {
    "apiVersion": "qorch.dev/v1alpha1",
    "kind": "QuantumNode",
    "metadata": {"name": "sim"},
    "spec": {"qubits": 5},
}


def context_kubeconfig(cluster: Cluster, namespace: str, path: Path) -> Path:
    """The admin kubeconfig, its current context set to `namespace` (as `kubens` would)."""
    config = yaml.safe_load(Path(cluster.env["KUBECONFIG"]).read_text())
    current = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    current["context"]["namespace"] = namespace
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def start_operator(
    cluster: Cluster, namespace: str, kubeconfig: Path, log: Path, **env: str
) -> subprocess.Popen[bytes]:
    """`qorch operator --namespace NS` with the default log level and no QORCH_* identity
    settings beyond `env`."""
    clean = {k: v for k, v in cluster.env.items() if not k.startswith("QORCH_")}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "qorch", "operator", "--namespace", namespace],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**clean, "KUBECONFIG": str(kubeconfig), "QORCH_METRICS_PORT": "0", **env},
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def assert_no_qorch_system(cluster: Cluster) -> None:
    out = cluster.kubectl("get", "namespace", "qorch-system", check=False)
    assert "NotFound" in out, "this test needs a cluster without qorch-system"


def test_outside_a_cluster_the_identity_goes_to_the_context_namespace(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    assert_no_qorch_system(cluster)
    kubeconfig = context_kubeconfig(cluster, namespace, tmp_path / "kubeconfig")
    log = tmp_path / "operator.log"
    proc = start_operator(cluster, namespace, kubeconfig, log)
    try:
        cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(SIM))
        cluster.wait_for("deployment", "qpu-sim", namespace, lambda o: True, timeout=60)
        identity = cluster.get("secret", "qorch-operator-identity", namespace)
        assert set(identity["data"]) == {"identity.key", "identity.pub"}
    finally:
        stop(proc)
    output = log.read_text()
    lines = [line for line in output.splitlines() if "operator identity" in line]
    assert len(lines) == 1, output[-3000:]
    assert f"Secret {namespace}/qorch-operator-identity" in lines[0]
    assert "kubeconfig context" in lines[0] and "QORCH_OPERATOR_NAMESPACE" in lines[0]
    assert "not found" not in output, output[-3000:]
    assert_no_qorch_system(cluster)


def test_a_missing_operator_namespace_stops_the_operator_with_one_line(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    assert_no_qorch_system(cluster)
    kubeconfig = context_kubeconfig(cluster, namespace, tmp_path / "kubeconfig")
    log = tmp_path / "operator.log"
    proc = start_operator(
        cluster, namespace, kubeconfig, log, QORCH_OPERATOR_NAMESPACE="qorch-system"
    )
    try:
        code = proc.wait(timeout=60)
    finally:
        stop(proc)
    output = log.read_text()
    assert code == 2, output[-3000:]
    lines = [line for line in output.splitlines() if "qorch-system" in line]
    assert len(lines) == 1, output[-3000:]
    assert " ERROR qorch." in lines[0]
    assert 'namespace "qorch-system" (from QORCH_OPERATOR_NAMESPACE) does not exist' in lines[0]
    assert "kubectl create namespace qorch-system" in lines[0]
    assert "Traceback" not in output, output[-3000:]
    assert_no_qorch_system(cluster)  # the operator creates no namespace
