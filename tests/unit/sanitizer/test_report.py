"""The report: what the status field and the CLI's JSON carry."""

from __future__ import annotations

import json

from qorch.api.distributed_job import SanitizerStatus
from qorch.sanitizer import SanitizerPolicy, TargetTiming, sanitize

from .sources import BELL2, qasm2

NODE = TargetTiming(
    single_qubit_gate_ns=35, two_qubit_gate_ns=300, measure_ns=1500, shortest_t2_us=120
)


def test_status_is_camel_case_json_and_leaves_unknowns_out() -> None:
    status = sanitize(BELL2, timing=NODE).report.to_status()

    assert json.loads(json.dumps(status)) == status
    assert status["accepted"] is True
    assert status["stats"] == {
        "qubits": 2,
        "clbits": 2,
        "depth": 3,
        "size": 4,
        "twoQubitGates": 1,
        "measurements": 2,
        "estimatedDurationSeconds": status["stats"]["estimatedDurationSeconds"],
    }
    # h (35 ns), cx (300 ns), measure (1500 ns) on the critical path
    assert abs(status["stats"]["estimatedDurationSeconds"] - 1.835e-6) < 1e-12


def test_status_fits_the_distributed_job_status_schema() -> None:
    refused = sanitize(qasm2("h q[0];\nh q[0];\nh q[0];\n"), SanitizerPolicy(max_depth=2))

    status = SanitizerStatus.model_validate(refused.report.to_status())

    assert not status.accepted
    assert status.violations[0].rule == "QS104"


def test_violations_say_which_limit_which_value_and_where() -> None:
    source = qasm2("h q[0];\nrz(5000) q[1];\nmeasure q -> c;\n")
    (violation,) = sanitize(source).report.violations

    assert violation.rule == "QS204"
    assert "5000" in violation.message and "maxAbsAngle" in violation.message
    assert violation.location.instruction == 1
    assert violation.location.line == 6


def test_summary_has_the_cli_json_shape() -> None:
    summary = sanitize(qasm2("rz(5000) q[1];\n")).report.to_summary()

    assert set(summary) == {"accepted", "violations"}
    assert set(summary["violations"][0]) == {"rule", "severity", "message", "location"}
    assert summary["violations"][0]["location"] == {"instruction": 0, "line": 5}


def test_the_parsed_circuit_comes_with_the_result() -> None:
    result = sanitize(BELL2)

    assert result.accepted
    assert result.circuit is not None
    assert result.circuit.count_ops() == {"measure": 2, "h": 1, "cx": 1}
