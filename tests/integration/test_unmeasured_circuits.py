"""Circuits that measure nothing: refused at admission unless the job asks for observables,
whose measurement bases then do the measuring, under single and teleport alike."""

import yaml

from tests.support import qorch_run

NODES = [
    {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "QuantumNode",
        "metadata": {"name": name},
        "spec": {"qubits": 6},
    }
    for name in ("east", "west")
] + [
    {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "EntanglementLink",
        "metadata": {"name": "east-west"},
        "spec": {
            "nodes": ["east", "west"],
            "fidelity": 1.0,
            "generationRateHz": 100000,
            "successProbability": 0.5,
        },
    }
]


def ghz(width: int) -> str:
    body = "".join(f"cx q[{i}], q[{i + 1}];\n" for i in range(width - 1))
    return f'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[{width}];\nh q[0];\n{body}'


def job(name: str, width: int, **spec: object) -> dict:
    return {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "DistributedJob",
        "metadata": {"name": name},
        "spec": {"shots": 2000, "circuit": {"qasm": ghz(width)}, **spec},
    }


def test_unmeasured_circuits_are_refused_or_measured_through_their_observables(tmp_path):
    jobs = [
        job("counts-of-nothing", 3),
        job("single", 3, strategy="single", observables=["ZZZ", "XXX"]),
        job("teleport", 8, strategy="teleport", observables=["Z" * 8, "X" * 8]),
    ]
    (tmp_path / "m.yaml").write_text(yaml.safe_dump_all([*NODES, *jobs]))

    code, jobs = qorch_run(tmp_path, timeout=300)

    assert code == 1  # one job was rejected
    status = {name: j["status"] for name, j in jobs.items()}
    refused = status["counts-of-nothing"]
    assert refused["phase"] == "Rejected"
    [summary] = [c for c in refused["conditions"] if c["type"] == "Succeeded"]
    assert summary["reason"] == "NothingMeasured"
    assert "measures nothing" in refused["message"]
    for name, width in (("single", 3), ("teleport", 8)):
        assert status[name]["phase"] == "Succeeded", status[name].get("message")
        values = status[name]["result"]["expectationValues"]
        errors = status[name]["result"]["standardErrors"]
        # GHZ: <Z...Z> is 0 for odd width, 1 for even; <X...X> is 1. Noiseless nodes and
        # links, so only sampling moves them: 6 standard errors (plus a floor for a value
        # of exactly +-1, whose standard error is 0) miss far less than once in 10^4 runs.
        expected = [0.0 if width % 2 else 1.0, 1.0]
        for value, error, exact in zip(values, errors, expected, strict=True):
            assert abs(value - exact) <= 6 * error + 0.01, (name, values, errors)
