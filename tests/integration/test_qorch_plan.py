"""`qorch plan`: every job's candidates from the manifests' declared figures, nothing run.

The nodes point at an endpoint nothing listens on: a plan that needed an agent could not be
made. `qorch run` with a suspended job holds its plan and runs the rest.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from qorch.api.manifests import load_manifests
from qorch.local.plan import plan
from tests.support import REPO, fail_the_steps_of

NOISE = (
    "{t1Microseconds: 100, t2Microseconds: 80, singleQubitError: 0.0002, twoQubitError: 0.002,"
    " readoutError: 0.005, singleQubitGateNanoseconds: 50, twoQubitGateNanoseconds: 300,"
    " measureNanoseconds: 1000}"
)
NODES = f"""
apiVersion: qorch.dev/v1alpha1
kind: QuantumNode
metadata: {{name: qpu-a}}
spec:
  qubits: 4
  backend: {{type: external, endpoint: "http://127.0.0.1:9"}}
  noise: {NOISE}
---
apiVersion: qorch.dev/v1alpha1
kind: QuantumNode
metadata: {{name: qpu-b}}
spec:
  qubits: 4
  backend: {{type: external, endpoint: "http://127.0.0.1:9"}}
  noise: {NOISE}
---
apiVersion: qorch.dev/v1alpha1
kind: EntanglementLink
metadata: {{name: a-b}}
spec:
  nodes: [qpu-a, qpu-b]
  fidelity: 0.98
  generationRateHz: 1000000
  successProbability: 0.5
  classicalLatencyMicroseconds: 10
"""


def job(name: str, qasm_body: str, width: int, creg: bool = True, **spec: object) -> str:
    extra = "".join(f"  {k}: {json.dumps(v)}\n" for k, v in spec.items())
    source = f'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[{width}];\n'
    source += f"creg c[{width}];\n" if creg else ""
    lines = "\n".join(f"      {line}" for line in (source + qasm_body).splitlines())
    return f"""---
apiVersion: qorch.dev/v1alpha1
kind: DistributedJob
metadata: {{name: {name}}}
spec:
  shots: 1000
{extra}  circuit:
    qasm: |
{lines}
"""


CHAIN6 = "h q[0];\n" + "".join(f"cx q[{i}], q[{i + 1}];\n" for i in range(5))
JOBS = (
    # Wider than a node, with observables: cut, the LOCC cut and teleport can, single cannot.
    job("cuttable", CHAIN6, 6, creg=False, observables=["ZZZZZZ", "ZIIIIZ"])
    # Wider than a node, measured: only teleport.
    + job("teleportable", CHAIN6 + "measure q -> c;\n", 6)
    # Fits one node.
    + job("single", "h q[0];\ncx q[0], q[1];\nmeasure q -> c;\n", 2)
)


def qorch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qorch", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    (tmp_path / "nodes.yaml").write_text(NODES)
    (tmp_path / "jobs.yaml").write_text(JOBS)
    return tmp_path


def test_json_lists_every_candidate_with_its_figures_or_why_not(manifests):
    proc = qorch("plan", str(manifests), "-o", "json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert "declared figures" in report["basis"]
    jobs = {j["name"]: j for j in report["jobs"]}
    assert {n: j["chosen"] for n, j in jobs.items()} == {
        "cuttable": "locc-cut",  # one wire, overhead 9 as the gate cut, fewer gates a side
        "teleportable": "teleport",
        "single": "single",
    }
    for j in jobs.values():
        assert j["phase"] == "Planned"
        assert [c["strategy"] for c in j["candidates"]] == ["single", "teleport", "cut", "locc-cut"]
        for c in j["candidates"]:
            if c["feasible"]:
                # An LOCC cut's wire is on both nodes, one after the other.
                placed = sorted({q for p in c["placement"] for q in p["qubits"]})
                width = 2 if j["name"] == "single" else 6
                assert placed == list(range(width)), c
                assert c["estimatedSeconds"] > 0 and 0 < c["estimatedFidelity"] <= 1
            else:
                assert c["reason"] and not c["placement"]
    cuttable = {c["strategy"]: c for c in jobs["cuttable"]["candidates"]}
    assert cuttable["single"]["reason"] == "no node has 6 free qubits (most: qpu-a with 4)"
    assert cuttable["cut"]["samplingOverhead"] > 1 and cuttable["cut"]["subexperiments"] > 1
    assert cuttable["teleport"]["feasible"] and cuttable["teleport"]["bellPairs"]
    teleportable = {c["strategy"]: c for c in jobs["teleportable"]["candidates"]}
    assert "no observables" in teleportable["cut"]["reason"]
    assert [u["link"] for u in teleportable["teleport"]["bellPairs"]] == ["a-b"]
    assert "subexperiments" not in teleportable["teleport"]


def test_text_names_each_job_its_choice_and_every_candidate(manifests):
    proc = qorch("plan", str(manifests))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("# planned from the manifests' declared figures")
    assert "cuttable (default, 1000 shots): locc-cut on qpu-a,qpu-b" in out
    assert "teleportable (default, 1000 shots): teleport on qpu-a,qpu-b" in out
    assert "single (default, 1000 shots): single on qpu-a" in out
    assert "    single    infeasible: no node has 6 free qubits (most: qpu-a with 4)" in out
    assert "infeasible: cutting reconstructs expectation values: no observables" in out
    assert "    cut       fidelity " in out and "sampling overhead 9" in out
    assert "  * locc-cut  fidelity " in out and "without communication 16" in out
    assert "Bell pairs per shot: a-b=" in out
    assert "device time " in out


def test_a_broken_manifest_exits_2_naming_the_field(manifests):
    (manifests / "nodes.yaml").write_text(NODES.replace("qubits: 4", "qubits: -1", 1))
    proc = qorch("plan", str(manifests))
    assert proc.returncode == 2
    assert "QuantumNode/qpu-a: spec.qubits" in proc.stderr
    assert proc.stdout == ""


def test_a_circuit_the_sanitizer_refuses_exits_2_with_its_rule(manifests):
    (manifests / "jobs.yaml").write_text(job("broken", "h q[7];\nmeasure q -> c;\n", 2))
    proc = qorch("plan", str(manifests), "-o", "json")
    assert proc.returncode == 2, proc.stdout
    (broken,) = json.loads(proc.stdout)["jobs"]
    assert broken["phase"] == "Rejected" and broken["chosen"] is None
    assert proc.stderr.startswith("plan: broken: QS")


def test_a_job_no_strategy_can_place_exits_1_with_every_reason(manifests):
    (manifests / "jobs.yaml").write_text(job("huge", "h q[0];\nmeasure q -> c;\n", 12))
    proc = qorch("plan", str(manifests))
    assert proc.returncode == 1, proc.stderr
    assert "huge (default, 1000 shots): Rejected: no feasible plan: " in proc.stdout
    assert "single    infeasible: no node has 12 free qubits" in proc.stdout
    assert "teleport  infeasible: the nodes have 8 free qubits in all" in proc.stdout


def test_qorch_run_holds_a_suspended_job_and_runs_the_others(tmp_path):
    quickstart = REPO / "examples" / "quickstart"
    (tmp_path / "nodes.yaml").write_text((quickstart / "nodes.yaml").read_text())
    (tmp_path / "jobs.yaml").write_text(
        job("held", "h q[0];\ncx q[0], q[1];\nmeasure q -> c;\n", 2, suspend=True)
        + job("runs", "h q[0];\ncx q[0], q[1];\nmeasure q -> c;\n", 2)
    )
    proc = qorch("run", str(tmp_path), "-o", "json")
    assert proc.returncode == 0, proc.stderr
    jobs = {j["metadata"]["name"]: j["status"] for j in json.loads(proc.stdout)}
    assert jobs["runs"]["phase"] == "Succeeded"
    held = jobs["held"]
    assert held["phase"] == "Planned" and held["plan"]["reservation"] == {}
    suspended = next(c for c in held["conditions"] if c["type"] == "Suspended")
    assert (suspended["status"], suspended["reason"]) == ("True", "Suspended")
    assert not held.get("progress") and "result" not in held


def test_plan_and_run_agree_on_the_quickstart(tmp_path):
    """The same pipeline plans both: `qorch run` (agents, calibration, link probes) places
    the job where `qorch plan` said, and considers the same candidates. Teleport's figures
    may differ: the run measures the link's feed-forward latency."""
    planned = qorch("plan", "examples/quickstart", "-o", "json")
    ran = qorch("run", "examples/quickstart", "-o", "json")
    assert planned.returncode == 0 and ran.returncode == 0, planned.stderr + ran.stderr
    plans = {j["name"]: j for j in json.loads(planned.stdout)["jobs"]}
    for job in json.loads(ran.stdout):
        plan, run_plan = plans[job["metadata"]["name"]], job["status"]["plan"]
        assert plan["chosen"] == run_plan["strategy"]
        assert plan["message"] == run_plan["reason"]
        for a, b in zip(plan["candidates"], run_plan["candidates"], strict=True):
            assert (a["strategy"], a["feasible"]) == (b["strategy"], b["feasible"])
            assert a["placement"] == b["placement"] and a["bellPairs"] == b["bellPairs"]
            if a["strategy"] != "teleport":
                assert a == b


def test_a_step_that_fails_on_a_bug_fails_its_job_not_the_plan(tmp_path, monkeypatch):
    fail_the_steps_of("broken", monkeypatch)
    quickstart = REPO / "examples" / "quickstart"
    ghz = yaml.safe_load((quickstart / "ghz-job.yaml").read_text())
    (tmp_path / "nodes.yaml").write_text((quickstart / "nodes.yaml").read_text())
    (tmp_path / "jobs.yaml").write_text(
        yaml.safe_dump_all([ghz, {**ghz, "metadata": {"name": "broken"}}])
    )
    out = io.StringIO()
    assert plan(load_manifests([tmp_path]), output="json", out=out) == 1
    jobs = {j["name"]: j for j in json.loads(out.getvalue())["jobs"]}
    assert jobs["ghz"]["chosen"] == "single"
    assert "internal error: RuntimeError: injected" in jobs["broken"]["message"]
