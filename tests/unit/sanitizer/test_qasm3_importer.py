"""OpenQASM 3 as Qiskit writes it: conditions over bit logic import, and what the importer
cannot represent is refused as the importer's limit, not as a syntax error or a policy."""

from __future__ import annotations

import pytest
from qiskit import QuantumCircuit, qasm3
from qiskit.circuit import ClassicalRegister, QuantumRegister
from qiskit.circuit.classical import expr
from qiskit_aer import AerSimulator

from qorch.sanitizer import sanitize

from .sources import QASM3


def dynamic_ghz() -> QuantumCircuit:
    """GHZ-5 by measurement and feed-forward on measurement parities (as MQT Bench's
    ghz_dynamic), exported by Qiskit with ``^`` in its conditions."""
    q, mid, out = QuantumRegister(5, "q"), ClassicalRegister(2, "mid"), ClassicalRegister(5, "c")
    qc = QuantumCircuit(q, mid, out)
    for a in (0, 2, 4):
        qc.h(a)
    qc.cx(0, 1)
    qc.cx(2, 1)
    qc.cx(2, 3)
    qc.cx(4, 3)
    qc.measure(1, mid[0])
    qc.measure(3, mid[1])
    with qc.if_test(expr.lift(mid[0])):
        qc.x(1)
        qc.x(2)
    with qc.if_test(expr.equal(expr.bit_xor(mid[0], mid[1]), True)):
        qc.x(4)
    with qc.if_test((mid[1], 1)):
        qc.x(3)
    qc.cx(0, 1)
    qc.cx(2, 3)
    qc.measure(q, out)
    return qc


def test_a_circuit_qiskit_exported_with_bit_logic_imports_and_runs_the_same() -> None:
    original = dynamic_ghz()
    source = qasm3.dumps(original)
    assert "^" in source

    result = sanitize(source)

    assert result.report.accepted, result.report.violations
    assert result.circuit is not None
    run = AerSimulator(seed_simulator=5).run
    assert run(result.circuit, shots=500).result().get_counts() == (
        run(original, shots=500).result().get_counts()
    )


@pytest.mark.parametrize(
    "condition",
    ["c[0] ^ c[1]", "!(c[0] && c[1])", "(c[0] | c[1]) == false", "~c[0] & c[1]"],
)
def test_conditions_over_bit_logic_import(condition: str) -> None:
    source = (
        QASM3 + f"qubit[2] q;\nbit[2] c;\nc[0] = measure q[0];\nif ({condition}) {{ x q[1]; }}\n"
    )

    result = sanitize(source + "c = measure q;\n")

    assert result.report.accepted, result.report.violations


def test_what_the_importer_cannot_represent_is_named_as_its_limit_with_a_line() -> None:
    source = QASM3 + "qubit[2] q;\nbit[2] c;\nint n = 3;\nc = measure q;\n"

    result = sanitize(source)

    [violation] = result.report.violations
    assert violation.rule == "QS001"
    assert violation.location.line == 5
    assert "importer cannot represent" in violation.message
    assert "valid OpenQASM 3" in violation.message


def test_a_syntax_error_is_named_as_the_parser_s() -> None:
    result = sanitize(QASM3 + "qubit[2] q;\nfoo bar baz;\n")

    [violation] = result.report.violations
    assert violation.message.startswith("the OpenQASM 3 parser refused the source")
