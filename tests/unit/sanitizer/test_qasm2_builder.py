"""The fast OpenQASM 2 builder: the circuit qasm2.loads builds, the errors it raises, or None."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qiskit import QuantumCircuit, qasm2

from qorch.sanitizer import SanitizerPolicy, qasm2_builder, sanitize
from qorch.sanitizer.parsing import load
from qorch.sanitizer.prechecks import run_prechecks
from qorch.sanitizer.source.scan import SourceScan

from .sources import BELL2, QASM2, doubling_chain
from .test_properties import garbled

#: OpenQASM 2 name -> (qubits, parameters): every gate the loaders know without a definition.
GATES: dict[str, tuple[int, int]] = {
    c.name: (c.num_qubits, c.num_params)
    for c in qasm2.LEGACY_CUSTOM_INSTRUCTIONS
    if c.name != "delay"  # needs a definition in the source
} | {"U": (1, 3), "CX": (2, 0)}
WIDTH = 6
QUBITS = [f"q[{i}]" for i in range(WIDTH)] + ["r[0]", "r[1]"]
angles = st.one_of(
    st.floats(-10, 10, allow_nan=False).map(repr),
    st.sampled_from(["pi", "-pi/2", "2*pi", "1e-3", "0", "cos(1)", "3"]),
)


def _loads(source: str) -> QuantumCircuit:
    return qasm2.loads(
        source, include_path=(), custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS
    )


def _instructions(circuit: QuantumCircuit) -> list[tuple[Any, ...]]:
    return [
        (type(i.operation), i.operation.name, i.operation.params, i.qubits, i.clbits)
        for i in circuit.data
    ]


def _assert_identical(built: QuantumCircuit | None, loaded: QuantumCircuit) -> None:
    assert built is not None
    assert built == loaded
    assert _instructions(built) == _instructions(loaded)
    assert (built.qregs, built.cregs) == (loaded.qregs, loaded.cregs)


def _outcome(parse: Any, source: str) -> tuple[Any, ...]:
    try:
        circuit = parse(source)
        return ("declined",) if circuit is None else ("circuit", _instructions(circuit))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # pyo3 panics included
        return ("error", type(exc), str(exc))


@st.composite
def statements(draw: st.DrawFn) -> str:
    """A gate call (any gate, any parameters), a broadcast, barrier, reset or measurement."""
    kind = draw(st.sampled_from(["gate"] * 6 + ["broadcast", "barrier", "reset", "measure"]))
    if kind == "broadcast":
        name = draw(st.sampled_from([n for n, (arity, k) in GATES.items() if arity == 1 and not k]))
        return f"{name} {draw(st.sampled_from(['q', 'r']))};"
    if kind == "barrier":
        return f"barrier {', '.join(draw(st.permutations(QUBITS))[: draw(st.integers(1, 4))])};"
    if kind == "reset":
        return f"reset {draw(st.sampled_from([*QUBITS, 'q', 'r']))};"
    if kind == "measure":
        return draw(
            st.sampled_from(["measure q -> c;", "measure r[1] -> d[0];", "measure q[2] -> c[5];"])
        )
    name = draw(st.sampled_from(sorted(GATES)))
    arity, n_params = GATES[name]
    params = [
        str(draw(st.integers(0, 3))) if name == "u0" else draw(angles) for _ in range(n_params)
    ]
    qubits = draw(st.permutations(QUBITS))[:arity]
    arguments = "(" + ", ".join(params) + ")" if params else ""
    return f"{name}{arguments} {', '.join(qubits)};"


@st.composite
def programs(draw: st.DrawFn) -> str:
    """A program over two quantum and two classical registers."""
    body = "\n".join(draw(st.lists(statements(), max_size=40)))
    return QASM2 + f"qreg q[{WIDTH}];\nqreg r[2];\ncreg c[{WIDTH}];\ncreg d[2];\n" + body + "\n"


def test_the_self_check_passes_so_the_fast_path_is_on() -> None:
    _assert_identical(qasm2_builder.build(qasm2_builder.SAMPLE), _loads(qasm2_builder.SAMPLE))


def test_standard_gates_go_in_without_a_python_gate_object() -> None:
    table = qasm2_builder._checked_table()

    assert table is not None
    custom = qasm2.LEGACY_CUSTOM_INSTRUCTIONS
    fast = {c.name for c, entry in zip(custom, table[: len(custom)], strict=True) if entry[0]}
    assert {"rz", "cx", "h", "p", "sx", "swap", "u3"} <= fast
    assert not fast & {"u0", "delay", "c4x"}  # no standard gate: built by their constructor


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_programs_of_every_gate_build_as_qasm2_loads_builds_them(source: str) -> None:
    _assert_identical(qasm2_builder.build(source), _loads(source))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(garbled(BELL2))
def test_garbled_sources_build_or_fail_exactly_as_under_qasm2_loads(source: str) -> None:
    scan, found = run_prechecks(source, SanitizerPolicy())
    if scan is None or found:
        return  # refused before any parser runs (and some would exhaust memory unchecked)
    built = _outcome(qasm2_builder.build, source)
    if built != ("declined",):  # else left to qasm2.loads
        assert built == _outcome(_loads, source)


@pytest.mark.parametrize(
    "body",
    [
        "foo q[0];\n",
        "cx q[0];\n",
        "rz(1, 2) q[0];\n",
        "h q[2];\n",
        "cx q[0], q[0];\n",
        "delay(10) q[0];\n",
        "measure q[0] -> x[0];\n",
        "u0(0.5) q[0];\n",
        "rz(1/0) q[0];\n",
    ],
)
def test_errors_are_qiskits_own(body: str) -> None:
    source = QASM2 + "qreg q[2];\ncreg c[2];\n" + body

    with pytest.raises(qasm2.QASM2ParseError) as fast:
        qasm2_builder.build(source)
    with pytest.raises(qasm2.QASM2ParseError) as reference:
        _loads(source)
    assert str(fast.value) == str(reference.value)


@pytest.mark.parametrize("body", ["rz q[0];\n", "U q[0];\n", "cu1 q[0], q[1];\n", "u0 q[0];\n"])
def test_parameters_left_out_fail_as_under_qasm2_loads(body: str) -> None:
    # Qiskit's parser does not count parameters when the parentheses are left out; the gate's
    # constructor refuses them. The builder must not make a gate without its angles.
    source = QASM2 + "qreg q[2];\ncreg c[2];\n" + body

    assert qasm2_builder.build(source) is None
    with pytest.raises(TypeError, match="missing"):
        _loads(source)
    assert sanitize(source).report.violations[0].rule == "QS001"


@pytest.mark.parametrize(
    "source",
    [
        BELL2 + "if (c == 1) x q[0];\n",
        BELL2 + "if (c == 1) measure q[0] -> c[0];\n",
        doubling_chain(2),
        QASM2 + "qreg q[1];\nopaque magic q;\nmagic q[0];\n",
    ],
    ids=["if", "conditioned measure", "gate definitions", "opaque"],
)
def test_conditions_and_definitions_are_left_to_qasm2_loads(source: str) -> None:
    assert qasm2_builder.build(source) is None
    _assert_identical(load(SourceScan(source)), _loads(source))


def test_a_failed_self_check_keeps_the_fast_path_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qasm2_builder, "_CHECKED", False)
    monkeypatch.setattr(qasm2_builder, "_TABLE", None)
    monkeypatch.setattr(qasm2_builder, "_same", lambda *_: False)

    assert qasm2_builder.build(BELL2) is None
    _assert_identical(load(SourceScan(BELL2)), _loads(BELL2))
    assert sanitize(BELL2).report.accepted


def test_a_failing_builder_hands_over_to_qasm2_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    assert qasm2_builder._checked_table() is not None  # checked before the builder breaks

    class Broken:
        @staticmethod
        def from_standard(*_: object) -> None:
            raise RuntimeError("broken")

    monkeypatch.setattr(qasm2_builder, "CircuitInstruction", Broken)

    assert qasm2_builder.build(BELL2) is None
    _assert_identical(load(SourceScan(BELL2)), _loads(BELL2))
