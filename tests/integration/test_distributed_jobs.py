"""Distributed execution through `qorch run`: teleport, cut, auto, and clear rejections."""

import json
import subprocess
import sys

import pytest
import yaml
from qiskit.quantum_info import hellinger_fidelity

from qorch.planner.cutting import exact_expectation_values
from qorch.sanitizer import sanitize
from tests.support import REPO, qorch_run

EXAMPLES = REPO / "examples" / "distributed"


def nodes(noiseless: bool) -> str:
    docs = list(yaml.safe_load_all((EXAMPLES / "nodes.yaml").read_text()))
    if noiseless:
        for doc in docs:
            if doc["kind"] == "QuantumNode":
                doc["spec"].pop("noise", None)
            else:
                doc["spec"]["fidelity"] = 1.0
    return yaml.safe_dump_all(docs)


def job(name: str, **spec) -> dict:
    return {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "DistributedJob",
        "metadata": {"name": name},
        "spec": spec,
    }


def run(tmp_path, *jobs: dict, noiseless: bool = False) -> tuple[int, dict[str, dict]]:
    (tmp_path / "nodes.yaml").write_text(nodes(noiseless))
    (tmp_path / "jobs.yaml").write_text(yaml.safe_dump_all(jobs))
    return qorch_run(tmp_path)


def ghz(n: int) -> str:
    body = "".join(f"cx q[{i}], q[{i + 1}];\n" for i in range(n - 1))
    return (
        f'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[{n}];\ncreg c[{n}];\nh q[0];\n'
        f"{body}measure q -> c;\n"
    )


def qft_based(n: int) -> str:
    """A QFT of a prepared basis state, then its inverse: ideally the state comes back."""
    lines = [
        "OPENQASM 2.0;",
        'include "qelib1.inc";',
        f"qreg q[{n}];",
        f"creg c[{n}];",
        "x q[0];",
        "x q[3];",
        "x q[6];",
    ]
    for j in range(n):
        lines.append(f"h q[{j}];")
        lines += [f"cp(pi/{2 ** (k - j)}) q[{k}], q[{j}];" for k in range(j + 1, n)]
    lines.append("barrier q;")
    for j in reversed(range(n)):
        lines += [f"cp(-pi/{2 ** (k - j)}) q[{k}], q[{j}];" for k in reversed(range(j + 1, n))]
        lines.append(f"h q[{j}];")
    lines.append("measure q -> c;")
    return "\n".join(lines) + "\n"


def ideal(qasm: str) -> dict[str, float]:
    from qorch.pipeline.verification import exact_distribution

    circuit = sanitize(qasm).circuit
    assert circuit is not None
    return exact_distribution(circuit)


@pytest.mark.parametrize(
    ("name", "qasm", "width"), [("ghz", ghz(10), 10), ("qft", qft_based(8), 8)]
)
def test_noiseless_teleport_matches_the_ideal_distribution(tmp_path, name, qasm, width):
    code, jobs = run(
        tmp_path, job(name, shots=8000, strategy="teleport", circuit={"qasm": qasm}), noiseless=True
    )
    status = jobs[name]["status"]
    assert code == 0, status["message"]
    plan = status["plan"]
    assert plan["strategy"] == "teleport" and plan["nodes"] == "qpu-east,qpu-west"
    # Remote gates sharing a cat state (or a moved qubit) share its Bell pair.
    assert 0 < plan["bellPairs"][0]["bellPairs"] <= plan["nonlocalGates"]
    counts = status["result"]["counts"]
    assert sum(counts.values()) == 8000
    assert hellinger_fidelity(counts, ideal(qasm)) >= 0.99
    if name == "ghz":
        assert set(counts) == {"0" * width, "1" * width}
    assert "co-simulated" in plan["programs"][0]["note"]


def test_single_and_teleport_give_expectation_values_of_observables(tmp_path):
    """Not only cut: the other strategies measure each observable group's basis too."""
    observables = ["Z" * 10, "X" * 10, "IIIIIIIIZZ", "YYIIIIIIII"]  # GHZ: 1, 1, 1, 0
    small = ["ZZZZ", "XXXX", "YYII"]
    code, jobs = run(
        tmp_path,
        job(
            "wide",
            shots=4000,
            strategy="teleport",
            observables=observables,
            circuit={"qasm": ghz(10)},
        ),
        job("narrow", shots=4000, strategy="single", observables=small, circuit={"qasm": ghz(4)}),
        noiseless=True,
    )
    assert code == 0, {n: j["status"]["message"] for n, j in jobs.items()}
    for name, obs in (("wide", observables), ("narrow", small)):
        result = jobs[name]["status"]["result"]
        exact = exact_expectation_values(sanitize(ghz(len(obs[0]))).circuit, obs)
        assert sum(result["counts"].values()) == 4000  # the circuit's own counts stay
        for v, err, e in zip(
            result["expectationValues"], result["standardErrors"], exact, strict=True
        ):
            assert abs(v - e) <= 4 * err + 0.02, (name, v, e, err)


def test_cut_matches_exact_expectation_values_within_three_standard_errors(tmp_path):
    spec = yaml.safe_load((EXAMPLES / "ansatz-cut.yaml").read_text())["spec"]
    code, jobs = run(tmp_path, job("ansatz", **spec))
    status = jobs["ansatz"]["status"]
    assert code == 0, status["message"]
    assert status["plan"]["samplingOverhead"] > 1
    result = status["result"]
    circuit = sanitize(spec["circuit"]["qasm"]).circuit
    exact = exact_expectation_values(circuit, spec["observables"])
    for value, error, truth in zip(
        result["expectationValues"], result["standardErrors"], exact, strict=True
    ):
        # noise of the nodes moves the values a little beyond pure sampling error
        assert abs(value - truth) <= 3 * error + 0.05, (value, error, truth)
    verified = next(c for c in status["conditions"] if c["type"] == "Verified")
    assert verified["status"] == "True"


def test_auto_records_every_candidate_and_picks_the_best_feasible(tmp_path):
    code, jobs = run(tmp_path, job("wide", shots=2000, strategy="auto", circuit={"qasm": ghz(10)}))
    plan = jobs["wide"]["status"]["plan"]
    estimates = {c["strategy"]: c for c in plan["candidates"]}
    assert set(estimates) == {"single", "teleport", "cut", "locc-cut"}
    assert not estimates["single"]["feasible"]  # 10 qubits fit neither 6-qubit node
    assert not estimates["cut"]["feasible"]  # no observables to reconstruct
    assert plan["strategy"] == "teleport" and code == 0


def test_wider_than_all_nodes_together_is_rejected(tmp_path):
    code, jobs = run(tmp_path, job("huge", shots=100, circuit={"qasm": ghz(14)}))
    status = jobs["huge"]["status"]
    assert code == 1 and status["phase"] == "Rejected"
    planned = next(c for c in status["conditions"] if c["type"] == "Planned")
    assert planned["reason"] == "Unschedulable"
    assert "14" in planned["message"]


def test_unreachable_fidelity_budget_is_rejected_naming_the_best_estimate(tmp_path):
    code, jobs = run(
        tmp_path, job("picky", shots=100, fidelityBudget=0.9999, circuit={"qasm": ghz(10)})
    )
    status = jobs["picky"]["status"]
    assert code == 1 and status["phase"] == "Rejected"
    planned = next(c for c in status["conditions"] if c["type"] == "Planned")
    assert planned["reason"] == "FidelityBudgetNotMet"
    assert "the best estimate is 0." in planned["message"]


async def test_a_node_noisier_than_its_spec_is_planned_with_its_calibrated_figures(
    tmp_path, start_agent, operator_key
):
    """A node noisier than its spec claims: calibration measures it, so the plan estimates
    with the calibrated figures (and says so), and the result is verified against that honest
    estimate, with or without --fail-unverified. (The guard that fails a job whose result
    misses its estimate: tests/unit/pipeline/test_job_transitions.py.)"""
    from tests.support import make_node

    agent = await start_agent(make_node("liar", 3, noise={"readoutError": 0.3}))
    node = {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "QuantumNode",
        "metadata": {"name": "liar"},
        "spec": {
            "qubits": 3,
            "safety": {"maxErrorRate": 1},  # let calibration pass: the check is verification's
            "backend": {"type": "external", "endpoint": agent.endpoint},
            "identity": {"publicKey": agent.public_key},
        },
    }
    (tmp_path / "manifests.yaml").write_text(
        yaml.safe_dump_all([node, job("bell", shots=2000, circuit={"qasm": ghz(3)})])
    )
    for flags in ([], ["--fail-unverified"]):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "qorch",
                "run",
                str(tmp_path),
                "-o",
                "json",
                "--identity-key",
                str(operator_key.key_file),
                *flags,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=REPO,
        )
        (result,) = json.loads(proc.stdout)
        plan = result["status"]["plan"]
        assert plan["figures"] == {"qn/liar": "calibrated"}
        assert plan["estimatedFidelity"] < 0.6  # three readouts at 0.3, not the spec's none
        verified = next(c for c in result["status"]["conditions"] if c["type"] == "Verified")
        assert verified["status"] == "True", verified
        assert result["status"]["phase"] == "Succeeded"
