"""Dynamic circuits (mid-circuit measurement, reset, feed-forward, loops) as teleport jobs
through `qorch run`, their counts checked against the exact distribution by branch
enumeration, and verified by the job itself. Shots are not seeded end to end: each check is
an L1 bound that a correct run exceeds with probability below 1e-4."""

from __future__ import annotations

import qiskit.qasm3
import yaml
from qiskit import QuantumCircuit

from tests.dynamic_circuits import (
    branch_distribution,
    conditioned_x_across,
    l1_bound,
    l1_distance,
    mid_circuit_reset,
    repeat_until_success,
    teleportation,
)
from tests.integration.test_distributed_jobs import job, nodes
from tests.support import qorch_run

SHOTS = 8000


def _circuits() -> dict[str, QuantumCircuit]:
    circuits = {
        "teleportation": teleportation(),
        "repeat-until-success": repeat_until_success(3),
        "mid-circuit-reset": mid_circuit_reset(),
        "conditioned-x": conditioned_x_across(5, switch=False),
    }
    try:
        from mqt.bench import BenchmarkLevel, get_benchmark
    except ImportError:
        return circuits
    circuits["mqt-ghz-dynamic"] = get_benchmark("ghz_dynamic", BenchmarkLevel.INDEP, 6)
    circuits["mqt-dynamic-qft"] = get_benchmark("dynamic_qft", BenchmarkLevel.INDEP, 5)
    return circuits


def _run(tmp_path, jobs: list[dict], noiseless: bool) -> tuple[int, dict[str, dict]]:
    (tmp_path / "nodes.yaml").write_text(nodes(noiseless))
    (tmp_path / "jobs.yaml").write_text(yaml.safe_dump_all(jobs))
    return qorch_run(tmp_path)


def test_dynamic_circuits_run_across_two_nodes_and_verify_exactly(tmp_path):
    circuits = _circuits()
    jobs = [
        job(name, shots=SHOTS, strategy="teleport", circuit={"qasm": qiskit.qasm3.dumps(qc)})
        for name, qc in circuits.items()
    ]
    code, done = _run(tmp_path, jobs, noiseless=True)
    assert code == 0, {n: j["status"].get("message") for n, j in done.items()}
    messages = 0
    for name, circuit in circuits.items():
        status = done[name]["status"]
        plan = status["plan"]
        assert plan["strategy"] == "teleport" and plan["nodes"] == "qpu-east,qpu-west", name
        counts = status["result"]["counts"]
        exact = branch_distribution(circuit)
        assert l1_distance(counts, exact) <= l1_bound(len(exact), SHOTS), name
        verification = status["result"]["verification"]
        assert verification["method"] == "deferred measurement", name
        assert verification["hellingerFidelity"] >= verification["threshold"] > 0.9, name
        verified = next(c for c in status["conditions"] if c["type"] == "Verified")
        assert verified["status"] == "True", name
        messages += "classical message" in plan["reason"]
    assert messages >= 1  # some conditional reads bits measured on the other node


def test_auto_runs_a_dynamic_circuit_wider_than_any_node_by_teleport(tmp_path):
    circuit = QuantumCircuit(8, 8)  # a GHZ chain with a looped conditional flip: 8 qubits, 6 a node
    circuit.h(0)
    for q in range(7):
        circuit.cx(q, q + 1)
    circuit.measure(3, 3)
    with circuit.for_loop(range(2)), circuit.if_test((circuit.clbits[3], 1)):
        circuit.x(7)
        circuit.measure(7, 3)
    circuit.measure(range(8), range(8))
    spec = {"shots": SHOTS, "circuit": {"qasm": qiskit.qasm3.dumps(circuit)}}
    code, done = _run(tmp_path, [job("wide", **spec)], noiseless=True)
    status = done["wide"]["status"]
    assert code == 0, status.get("message")
    plan = status["plan"]
    candidates = {c["strategy"]: c for c in plan["candidates"]}
    assert plan["strategy"] == "teleport"
    assert not candidates["single"]["feasible"]
    exact = branch_distribution(circuit)
    assert l1_distance(status["result"]["counts"], exact) <= l1_bound(len(exact), SHOTS)
    assert status["result"]["verification"]["method"] == "deferred measurement"


def test_noisy_feed_forward_across_the_link_still_verifies(tmp_path):
    circuit = teleportation(theta=1.2)
    qasm = qiskit.qasm3.dumps(circuit)
    code, done = _run(
        tmp_path, [job("noisy", shots=SHOTS, strategy="teleport", circuit={"qasm": qasm})], False
    )
    status = done["noisy"]["status"]
    assert code == 0, status.get("message")
    assert status["plan"]["estimatedFidelity"] < 1.0
    verification = status["result"]["verification"]
    assert verification["method"] == "deferred measurement"
    assert verification["hellingerFidelity"] >= verification["threshold"]


def test_cut_refuses_a_dynamic_circuit_naming_why(tmp_path):
    qasm = qiskit.qasm3.dumps(conditioned_x_across(5, switch=False))
    spec = {"shots": 1000, "strategy": "cut", "circuit": {"qasm": qasm}, "observables": ["Z" * 5]}
    code, done = _run(tmp_path, [job("cut-dynamic", **spec)], noiseless=True)
    status = done["cut-dynamic"]["status"]
    assert code == 1 and status["phase"] == "Rejected"
    planned = next(c for c in status["conditions"] if c["type"] == "Planned")
    assert planned["status"] == "False"
    assert "reads a bit measured on" in planned["message"] or "classical bits" in planned["message"]
