"""Purification through `qorch run`: the planner purifies for a job's fidelity budget, the
agent simulates the purified pairs, and the job measures better than one on raw pairs."""

from __future__ import annotations

import yaml
from qiskit.quantum_info import hellinger_fidelity

from tests.support import qorch_run

#: Link noise alone: nodes with a T2 would idle for the feed-forward latency `qorch run`
#: measures between its agents, which would decide the estimate instead of the pairs.
NOISE = {"readoutError": 0.001}
#: GHZ measured in the X basis: Z and Y errors on the pairs flip its parity.
GHZ_X = (
    'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[4];\ncreg c[4];\nh q[0];\n'
    "cx q[0], q[1];\ncx q[0], q[2];\ncx q[0], q[3];\nh q;\nmeasure q -> c;\n"
)
SHOTS = 4000


def manifests() -> list[dict]:
    def node(name: str) -> dict:
        return {
            "apiVersion": "qorch.dev/v1alpha1",
            "kind": "QuantumNode",
            "metadata": {"name": name},
            "spec": {"qubits": 3, "noise": NOISE},
        }

    def job(name: str, **spec: object) -> dict:
        return {
            "apiVersion": "qorch.dev/v1alpha1",
            "kind": "DistributedJob",
            "metadata": {"name": name},
            "spec": {"circuit": {"qasm": GHZ_X}, "shots": SHOTS, "strategy": "teleport", **spec},
        }

    link = {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "EntanglementLink",
        "metadata": {"name": "a-b"},
        "spec": {
            "nodes": ["qpu-a", "qpu-b"],
            "fidelity": 0.8,
            "generationRateHz": 1e6,
            "successProbability": 0.5,
            "purification": {"protocol": "dejmps", "maxRounds": 2},
        },
    }
    return [node("qpu-a"), node("qpu-b"), link, job("raw"), job("budget", fidelityBudget=0.9)]


def parity_even() -> dict[str, float]:
    even = [format(i, "04b") for i in range(16) if bin(i).count("1") % 2 == 0]
    return {k: 1 / len(even) for k in even}


def test_a_fidelity_budget_purifies_the_pairs_and_the_job_measures_better(tmp_path) -> None:
    (tmp_path / "all.yaml").write_text(yaml.safe_dump_all(manifests()))
    code, jobs = qorch_run(tmp_path)
    assert code == 0, {k: j["status"].get("message") for k, j in jobs.items()}
    raw, purified = jobs["raw"]["status"], jobs["budget"]["status"]
    (raw_use,) = raw["plan"]["bellPairs"]
    (use,) = purified["plan"]["bellPairs"]
    assert "purification" not in raw_use or raw_use["purification"] is None
    assert raw_use["rawBellPairs"] == raw_use["bellPairs"]
    assert use["purification"]["protocol"] == "dejmps" and use["purification"]["rounds"] >= 1
    assert use["rawBellPairs"] > 2 * use["bellPairs"]
    assert purified["plan"]["estimatedFidelity"] >= 0.9 > raw["plan"]["estimatedFidelity"]
    assert (
        purified["plan"]["reservation"]["qlink/default/a-b"]
        > (raw["plan"]["reservation"]["qlink/default/a-b"])
    )
    ideal = parity_even()
    raw_measured = hellinger_fidelity(raw["result"]["counts"], ideal)
    measured = hellinger_fidelity(purified["result"]["counts"], ideal)
    assert measured > raw_measured + 0.05
    assert measured >= 0.9
