"""The rules as Qiskit analysis passes: the same verdict in a PassManager, no mutation."""

from __future__ import annotations

import pytest
from qiskit import QuantumCircuit, qasm2
from qiskit.converters import circuit_to_dag

from qorch.sanitizer import (
    SanitizerPolicy,
    build_passes,
    run_passes,
    sanitize,
    sanitizer_pass_manager,
)
from qorch.sanitizer.rules import VIOLATIONS, DepthLimit, SanitizerRule
from qorch.sanitizer.verdict import VERDICT

from .sources import BELL2
from .sources import qasm2 as source2


def _circuit() -> QuantumCircuit:
    return qasm2.loads(
        source2("h q[0];\nrz(5000) q[1];\n" + "cx q[0], q[1];\n" * 40 + "measure q -> c;\n"),
        custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS,
    )


def test_every_rule_is_an_analysis_pass_with_an_id() -> None:
    rules = [p for p in build_passes(SanitizerPolicy()) if isinstance(p, SanitizerRule)]

    assert len(rules) >= 15
    assert all(p.is_analysis_pass and p.rule_id.startswith("QS") for p in rules)


def test_pass_manager_and_direct_run_reach_the_same_verdict() -> None:
    circuit = _circuit()
    policy = SanitizerPolicy()

    pm = sanitizer_pass_manager(policy)
    pm.run(circuit)
    direct = run_passes(circuit_to_dag(circuit), build_passes(policy))

    assert pm.property_set[VERDICT] == direct[VERDICT]
    assert {v.rule for v in direct[VERDICT].violations} == {"QS204", "QS402"}


def test_rules_leave_the_circuit_alone() -> None:
    circuit = _circuit()
    dag = circuit_to_dag(circuit)
    before = circuit_to_dag(circuit)

    run_passes(dag, build_passes(SanitizerPolicy()))

    assert dag == before


def test_findings_go_to_one_property_set_key() -> None:
    properties = run_passes(circuit_to_dag(_circuit()), build_passes(SanitizerPolicy()))

    assert [v.rule for v in properties[VIOLATIONS]] == ["QS204", "QS402"]


def test_dag_nodes_come_in_circuit_order() -> None:
    # Violations locate nodes by their position among op_nodes(): it must be data order.
    circuit = _circuit()
    names = [node.name for node in circuit_to_dag(circuit).op_nodes()]

    assert names == [instruction.operation.name for instruction in circuit.data]


def test_a_failing_rule_refuses_the_circuit_with_qs000(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: object, dag: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(DepthLimit, "run", broken)
    result = sanitize(BELL2, SanitizerPolicy(max_depth=77))  # a policy of its own: fresh passes

    assert not result.report.accepted
    assert [v.rule for v in result.report.violations] == ["QS000"]
    assert "DepthLimit" in result.report.violations[0].message


def test_an_unforeseen_failure_outside_the_rules_fails_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_: object) -> None:
        raise MemoryError

    monkeypatch.setattr("qorch.sanitizer.engine.load", broken)
    result = sanitize(BELL2)

    assert [v.rule for v in result.report.violations] == ["QS000"]
    assert result.circuit is None
