"""The example circuits users start from are accepted by the default policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from qorch.sanitizer import TargetTiming, load_policy, sanitize

EXAMPLES = Path(__file__).parents[3] / "examples" / "circuits"
#: A node like the simulated QPUs: 35 ns / 300 ns gates, 1.5 µs readout, T2 of 120 µs.
NODE = TargetTiming(
    single_qubit_gate_ns=35, two_qubit_gate_ns=300, measure_ns=1500, shortest_t2_us=120
)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.qasm")), ids=lambda p: p.name)
def test_example_circuit_is_accepted_with_the_default_policy(path: Path) -> None:
    result = sanitize(path.read_text(), shots=4000, timing=NODE)

    assert result.report.accepted, result.report.violations
    assert result.report.violations == []
    assert result.circuit is not None
    assert result.report.stats.estimated_duration_seconds is not None


def test_all_the_promised_examples_exist() -> None:
    names = {p.stem for p in EXAMPLES.glob("*.qasm")}

    assert {"ghz", "qft", "grover", "vqe_ansatz", "teleportation"} <= names


def test_teleportation_feeds_forward_on_single_bits_in_openqasm3() -> None:
    source = (EXAMPLES / "teleportation.qasm").read_text()
    result = sanitize(source)

    assert "OPENQASM 3" in source and "if (m[0] == true)" in source
    assert result.circuit is not None
    assert result.circuit.count_ops()["if_else"] == 2
    assert result.report.stats.measurements == 3


def test_the_example_policy_loads_and_admits_the_examples() -> None:
    policy_file = load_policy(EXAMPLES / "policy.yaml")

    assert policy_file.for_namespace("calibration").trusted
    assert policy_file.for_namespace("teaching").rule_severity == {"QS305": "warn"}
    for path in EXAMPLES.glob("*.qasm"):
        for namespace in ("default", "calibration", "teaching"):
            policy = policy_file.for_namespace(namespace)
            assert sanitize(path.read_text(), policy, timing=NODE).report.accepted, path.name
