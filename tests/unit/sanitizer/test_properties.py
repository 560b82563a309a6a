"""Properties over generated sources: valid circuits pass or meet a limit, and no text,
however garbled, makes ``sanitize`` raise or fail internally."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qiskit import QuantumCircuit, qasm2, qasm3

from qorch.sanitizer import RULES, SanitizerResult, sanitize
from qorch.sanitizer.parsing import load
from qorch.sanitizer.source.scan import SourceScan
from qorch.sanitizer.source.statements import instruction_lines

from .sources import BELL2, BELL3

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: name -> (qubits, parameters) of gates both OpenQASM 2 (qelib1.inc) and 3 (stdgates.inc) know.
GATES: dict[str, tuple[int, int]] = {
    "h": (1, 0), "x": (1, 0), "y": (1, 0), "z": (1, 0), "s": (1, 0), "sdg": (1, 0),
    "t": (1, 0), "tdg": (1, 0), "sx": (1, 0), "rx": (1, 1), "ry": (1, 1), "rz": (1, 1),
    "p": (1, 1), "u": (1, 3), "cx": (2, 0), "cy": (2, 0), "cz": (2, 0), "ch": (2, 0),
    "swap": (2, 0), "crx": (2, 1), "cry": (2, 1), "crz": (2, 1), "cp": (2, 1),
    "ccx": (3, 0), "cswap": (3, 0),
}  # fmt: skip
#: Rules a valid circuit may still meet: limits and probe patterns, nothing about its form.
LIMIT_RULES = {"QS104", "QS105", "QS106", "QS107", "QS108", "QS401", "QS402"}
angles = st.floats(-4 * math.pi, 4 * math.pi, allow_nan=False)


@st.composite
def circuits(draw: st.DrawFn) -> QuantumCircuit:
    width = draw(st.integers(1, 6))
    circuit = QuantumCircuit(width, width)
    usable = [name for name, (arity, _) in GATES.items() if arity <= width]
    for _ in range(draw(st.integers(0, 40))):
        name = draw(st.sampled_from(usable))
        arity, n_params = GATES[name]
        qubits = draw(st.permutations(range(width)))[:arity]
        params = [draw(angles) for _ in range(n_params)]
        getattr(circuit, name)(*params, *qubits)
        if draw(st.integers(0, 9)) == 0:
            circuit.measure(qubits[0], qubits[0])
    if draw(st.booleans()):
        circuit.measure(range(width), range(width))
    return circuit


def _well_formed(result: SanitizerResult) -> None:
    """What holds for every result: known rules, no internal failure, a consistent verdict."""
    report = result.report
    rules = {v.rule for v in report.violations}
    assert rules <= set(RULES)
    assert "QS000" not in rules, report.violations
    assert report.accepted == all(v.severity != "deny" for v in report.violations)
    refused_early = any(RULES[r].stage in ("pre-parse", "parse") for r in rules)
    assert (result.circuit is None) == refused_early


@PROPERTY
@given(circuits())
def test_valid_openqasm2_circuits_are_accepted_or_meet_a_limit(circuit: QuantumCircuit) -> None:
    result = sanitize(qasm2.dumps(circuit))

    _well_formed(result)
    assert {v.rule for v in result.report.violations} <= LIMIT_RULES
    assert result.circuit is not None
    assert result.report.stats.qubits == circuit.num_qubits


@settings(max_examples=15, deadline=None)
@given(circuits())
def test_valid_openqasm3_circuits_are_accepted_or_meet_a_limit(circuit: QuantumCircuit) -> None:
    result = sanitize(qasm3.dumps(circuit))

    _well_formed(result)
    assert {v.rule for v in result.report.violations} <= LIMIT_RULES


_QASM_ALPHABET = "qc[](){};,->=\"'/*@$.0123456789e+hxcgateifforwhile \n"


@st.composite
def garbled(draw: st.DrawFn, base: str) -> str:
    """A valid source with a few random cuts, insertions, duplications and huge numbers."""
    text = base
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        edit = draw(st.sampled_from(["cut", "insert", "duplicate", "number", "nest"]))
        if edit == "cut":
            text = text[:at] + text[at + draw(st.integers(1, 20)) :]
        elif edit == "insert":
            text = text[:at] + draw(st.text(_QASM_ALPHABET, max_size=12)) + text[at:]
        elif edit == "duplicate":
            text = text[:at] + text[at : at + 30] * draw(st.integers(2, 50)) + text[at:]
        elif edit == "number":
            text = text[:at] + str(draw(st.integers(0, 10**40))) + text[at:]
        else:
            depth = draw(st.integers(1, 80))
            text = text[:at] + "(" * depth + "1" + ")" * depth + text[at:]
    return text


@PROPERTY
@given(garbled(BELL2))
def test_garbled_openqasm2_never_raises(source: str) -> None:
    _well_formed(sanitize(source, shots=100))


@settings(max_examples=30, deadline=None)
@given(garbled(BELL3))
def test_garbled_openqasm3_never_raises(source: str) -> None:
    _well_formed(sanitize(source))


@PROPERTY
@given(st.text(max_size=300))
def test_arbitrary_text_never_raises(source: str) -> None:
    _well_formed(sanitize(source))


@PROPERTY
@given(circuits(), st.booleans())
def test_every_instruction_of_a_dumped_circuit_gets_its_source_line(
    circuit: QuantumCircuit, version3: bool
) -> None:
    source = qasm3.dumps(circuit) if version3 else qasm2.dumps(circuit)
    scan = SourceScan(source)

    lines = instruction_lines(scan, len(load(scan).data))

    assert lines is not None
    assert lines == sorted(lines)
    assert all(1 <= line <= source.count("\n") + 1 for line in lines)
