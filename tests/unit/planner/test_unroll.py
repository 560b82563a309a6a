"""Loops unrolled within the sanitizer's limits; switches as if/else chains; refusals."""

from __future__ import annotations

import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister

from qorch.planner.unroll import UnrollLimits, needs_unrolling, predicated_steps, unroll
from qorch.sanitizer import SanitizerPolicy
from tests.dynamic_circuits import branch_distribution, repeat_until_success


def _close(a: dict[str, float], b: dict[str, float]) -> bool:
    return set(a) == set(b) and all(abs(a[k] - b[k]) < 1e-9 for k in a)


def test_unrolled_loops_keep_the_exact_distribution_and_bind_the_index() -> None:
    qc = QuantumCircuit(2, 2)
    qc.h(0)
    with qc.for_loop(range(3)) as i:
        qc.rx(0.4 * i + 0.1, 1)
        with qc.for_loop(range(2)):
            qc.cx(0, 1)
            qc.rz(0.3, 1)
    qc.measure([0, 1], [0, 1])
    flat = unroll(qc)
    assert not needs_unrolling(flat)
    assert flat.count_ops()["cx"] == 6
    angles = [inst.operation.params[0] for inst in flat.data if inst.operation.name == "rx"]
    assert angles == pytest.approx([0.1, 0.5, 0.9])
    assert _close(branch_distribution(flat), branch_distribution(qc))


def test_repeat_until_success_unrolls_into_nested_conditionals() -> None:
    qc = repeat_until_success(3)
    flat = unroll(qc)
    assert flat.count_ops()["if_else"] == 3
    assert _close(branch_distribution(flat), branch_distribution(qc))
    steps = predicated_steps(flat)
    retries = [s for s in steps if s.operation.name == "reset"]
    assert len(retries) == 3 and all(len(s.predicate) == 1 for s in retries)


def test_switch_becomes_an_if_else_chain_with_the_same_distribution() -> None:
    q, m, out = QuantumRegister(3, "q"), ClassicalRegister(2, "m"), ClassicalRegister(1, "out")
    qc = QuantumCircuit(q, m, out)
    qc.h([0, 1])
    qc.measure([0, 1], m)
    with qc.switch(m) as case:
        with case(0):
            qc.x(2)
        with case(1, 3):
            qc.ry(0.8, 2)
        with case(case.DEFAULT):
            qc.h(2)
    qc.measure(2, out[0])
    flat = unroll(qc)
    assert "switch_case" not in flat.count_ops()
    assert _close(branch_distribution(flat), branch_distribution(qc))


def test_a_loop_over_the_sanitizer_limit_is_refused_naming_it() -> None:
    limit = SanitizerPolicy().max_for_loop_iterations
    qc = QuantumCircuit(1)
    with qc.for_loop(range(limit + 1)):
        qc.x(0)
    with pytest.raises(ValueError, match=rf"{limit + 1} times .*maxForLoopIterations.* {limit}"):
        unroll(qc)


def test_nested_loops_multiply_against_the_limit() -> None:
    qc = QuantumCircuit(1)
    with qc.for_loop(range(4)), qc.for_loop(range(3)):
        qc.x(0)
    assert unroll(qc, UnrollLimits(max_iterations=12)).size() == 12
    with pytest.raises(ValueError, match="12 times"):
        unroll(qc, UnrollLimits(max_iterations=11))


def test_the_unrolled_size_is_bounded_too() -> None:
    qc = QuantumCircuit(1)
    with qc.for_loop(range(10)):
        for _ in range(20):
            qc.x(0)
    with pytest.raises(ValueError, match=r"more than 150 operations.*maxGates"):
        unroll(qc, UnrollLimits(max_iterations=1000, max_operations=150))


def test_while_break_and_continue_are_refused() -> None:
    loop = QuantumCircuit(1, 1)
    with loop.while_loop((loop.clbits[0], 0)):
        loop.h(0)
        loop.measure(0, 0)
    with pytest.raises(ValueError, match="while loop"):
        unroll(loop)
    broken = QuantumCircuit(1, 1)
    with broken.for_loop(range(3)):
        broken.measure(0, 0)
        with broken.if_test((broken.clbits[0], 1)):
            broken.break_loop()
    with pytest.raises(ValueError, match="break"):
        unroll(broken)


def test_a_body_that_rewrites_its_condition_and_goes_on_is_refused() -> None:
    qc = QuantumCircuit(2, 1)
    qc.measure(0, 0)
    with qc.if_test((qc.clbits[0], 1)):
        qc.measure(1, 0)
        qc.x(1)
    with pytest.raises(ValueError, match="its own condition"):
        predicated_steps(qc)


def test_a_branch_that_rewrites_its_condition_runs_after_the_other() -> None:
    qc = QuantumCircuit(2, 1)
    qc.h(0)
    qc.measure(0, 0)
    with qc.if_test((qc.clbits[0], 1)) as otherwise:
        qc.x(1)
        qc.measure(1, 0)
    with otherwise:
        qc.h(1)
    steps = predicated_steps(qc)
    names = [(s.operation.name, s.predicate[0].holds) for s in steps if s.predicate]
    assert names == [("h", False), ("x", True), ("measure", True)]


def test_parity_conditions_are_tabulated() -> None:
    from qiskit.circuit.classical import expr

    qc = QuantumCircuit(3, 2)
    qc.h([0, 1])
    qc.measure([0, 1], [0, 1])
    with qc.if_test(expr.equal(expr.bit_xor(qc.clbits[0], qc.clbits[1]), True)):
        qc.x(2)
    (step,) = [s for s in predicated_steps(qc) if s.predicate]
    (test,) = step.predicate
    assert test.bits == (0, 1) and test.accepts == {0b01, 0b10}
    assert [test.passes(r) for r in range(4)] == [False, True, True, False]
