"""`qorch run`: manifests in, DistributedJob objects out, exit code says how it went."""

import io
import json
import subprocess
import sys

import yaml

from qorch.api.manifests import load_manifests
from qorch.local import runner
from tests.support import REPO, fail_the_steps_of

NODES = (REPO / "examples" / "quickstart" / "nodes.yaml").read_text()


def qorch_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qorch", "run", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )


def test_quickstart_succeeds_and_prints_the_jobs_as_kubectl_would():
    proc = qorch_run("examples/quickstart", "--output", "json")
    assert proc.returncode == 0, proc.stderr
    jobs = json.loads(proc.stdout)
    assert jobs, "no DistributedJob in the quickstart"
    for job in jobs:
        assert job["apiVersion"] == "qorch.dev/v1alpha1" and job["kind"] == "DistributedJob"
        status = job["status"]
        assert status["phase"] == "Succeeded", status
        assert sum(status["result"]["counts"].values()) == job["spec"]["shots"]
        conditions = {c["type"]: c for c in status["conditions"]}
        for kind in ("Sanitized", "Authorized", "Planned", "Dispatched", "Succeeded"):
            assert conditions[kind]["status"] == "True", conditions[kind]
        assert conditions["Verified"]["status"] == "True", conditions["Verified"]
        assert status["plan"]["nodes"] in ("qpu-a", "qpu-b")
    assert "Succeeded" in proc.stderr  # progress goes to stderr when stdout is JSON


def test_broken_manifest_exits_2_naming_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(NODES.replace("qubits: 8", "qubits: -1"))
    proc = qorch_run(str(bad))
    assert proc.returncode == 2
    assert f"{bad} (document 1): QuantumNode/qpu-a: spec.qubits" in proc.stderr
    assert proc.stdout == ""


def test_job_that_fits_no_node_is_rejected_with_exit_1(tmp_path):
    (tmp_path / "nodes.yaml").write_text(NODES)
    (tmp_path / "job.yaml").write_text(
        """
apiVersion: qorch.dev/v1alpha1
kind: DistributedJob
metadata: {name: too-wide}
spec:
  shots: 100
  strategy: single
  circuit:
    qasm: |
      OPENQASM 2.0;
      include "qelib1.inc";
      qreg q[10];
      creg c[10];
      h q[0];
      measure q -> c;
"""
    )
    proc = qorch_run(str(tmp_path), "-o", "json")
    assert proc.returncode == 1, proc.stderr
    (job,) = json.loads(proc.stdout)
    assert job["status"]["phase"] == "Rejected"
    planned = next(c for c in job["status"]["conditions"] if c["type"] == "Planned")
    assert planned["reason"] == "Unschedulable"
    assert "no node has 10 free qubits (most: qpu-a with 8)" in planned["message"]


HOSTILE = """
apiVersion: qorch.dev/v1alpha1
kind: DistributedJob
metadata: {name: hostile, namespace: NAMESPACE}
spec:
  shots: 100
  circuit:
    qasm: |
      OPENQASM 2.0;
      include "qelib1.inc";
      qreg q[QUBITS];
      creg c[2];
      h q[0];
      measure q[0] -> c[0];
"""


def sanitized(job: dict) -> dict:
    return next(c for c in job["status"]["conditions"] if c["type"] == "Sanitized")


def test_sanitizer_rejection_names_the_rule(tmp_path):
    (tmp_path / "nodes.yaml").write_text(NODES)
    (tmp_path / "job.yaml").write_text(
        HOSTILE.replace("QUBITS", "1000000000").replace("NAMESPACE", "default")
    )
    proc = qorch_run(str(tmp_path), "-o", "json")
    assert proc.returncode == 1, proc.stderr
    (job,) = json.loads(proc.stdout)
    assert job["status"]["phase"] == "Rejected"
    cond = sanitized(job)
    assert cond["status"] == "False" and cond["reason"].startswith("QS")
    assert job["status"]["sanitizer"]["accepted"] is False
    assert job["status"]["sanitizer"]["violations"][0]["rule"] == cond["reason"]


def test_namespace_override_of_the_policy(tmp_path):
    nodes = NODES + "\n---\n" + NODES.replace("metadata:\n", "metadata:\n  namespace: tight\n")
    (tmp_path / "nodes.yaml").write_text(nodes)
    for ns in ("default", "tight"):
        (tmp_path / f"job-{ns}.yaml").write_text(
            HOSTILE.replace("QUBITS", "3").replace("NAMESPACE", ns).replace("hostile", ns)
        )
    policy = tmp_path / "policy.yaml"
    policy.write_text("namespaces:\n  tight:\n    maxQubits: 2\n")
    proc = qorch_run(
        str(tmp_path / "nodes.yaml"),
        str(tmp_path / "job-default.yaml"),
        str(tmp_path / "job-tight.yaml"),
        "--policy",
        str(policy),
        "-o",
        "json",
    )
    jobs = {j["metadata"]["namespace"]: j for j in json.loads(proc.stdout)}
    assert jobs["default"]["status"]["phase"] == "Succeeded"
    assert jobs["tight"]["status"]["phase"] == "Rejected"
    assert sanitized(jobs["tight"])["reason"] in ("QS006", "QS101")  # qubit limit


async def test_a_step_that_fails_on_a_bug_fails_its_job_not_the_run(tmp_path, monkeypatch):
    """As the operator retries a handler that raised, `qorch run` ends that job alone."""
    fail_the_steps_of("broken", monkeypatch)
    ghz = yaml.safe_load((REPO / "examples" / "quickstart" / "ghz-job.yaml").read_text())
    broken = {**ghz, "metadata": {"name": "broken"}}
    (tmp_path / "nodes.yaml").write_text(NODES)
    (tmp_path / "jobs.yaml").write_text(yaml.safe_dump_all([ghz, broken]))
    out = io.StringIO()
    code = await runner.run(load_manifests([tmp_path]), output="json", out=out)
    assert code == 1
    jobs = {j["metadata"]["name"]: j["status"] for j in json.loads(out.getvalue())}
    assert jobs["ghz"]["phase"] == "Succeeded"
    assert jobs["broken"]["phase"] == "Failed"
    message = jobs["broken"]["message"]
    assert "internal error: RuntimeError: injected (traceback on stderr)" in message
    summary = {c["type"]: c for c in jobs["broken"]["conditions"]}["Succeeded"]
    assert (summary["status"], summary["reason"]) == ("False", "InternalError")
