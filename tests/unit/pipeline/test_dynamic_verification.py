"""Exact verification of dynamic circuits by deferred measurement, checked against branch
enumeration with quantum_info (tests/dynamic_circuits.py), which shares no code with it."""

from __future__ import annotations

import pytest
from qiskit import QuantumCircuit
from qiskit.circuit.classical import expr
from qiskit.circuit.random import random_circuit
from qiskit_aer import AerSimulator

from qorch.pipeline.verification import (
    MAX_DEFERRED_QUBITS,
    ExactProbabilities,
    dynamic_probabilities,
    unverifiable,
    verify_counts,
)
from tests.dynamic_circuits import (
    branch_distribution,
    conditioned_x_across,
    mid_circuit_reset,
    repeat_until_success,
    teleportation,
)


def _agrees(circuit: QuantumCircuit) -> None:
    exact = dynamic_probabilities(circuit)
    assert isinstance(exact, ExactProbabilities), exact
    reference = branch_distribution(circuit)
    keys = list(reference)
    got = exact.of(keys)
    assert got.sum() == pytest.approx(1.0, abs=1e-9)  # no outcome the reference lacks
    assert got.tolist() == pytest.approx([reference[k] for k in keys], abs=1e-9)
    assert exact.support == len(reference)


def _parity_feed_forward() -> QuantumCircuit:
    """Conditions as MQT Bench writes them: a bit, `bit == true`, a parity of two bits."""
    qc = QuantumCircuit(5, 4)
    qc.h(0)
    qc.cx(0, 1)
    qc.h(2)
    qc.cx(2, 1)
    qc.ry(0.6, 3)
    qc.measure(1, 0)
    qc.measure(3, 1)
    with qc.if_test(expr.lift(qc.clbits[0])):
        qc.x(1)
    with qc.if_test(expr.equal(expr.bit_xor(qc.clbits[0], qc.clbits[1]), True)):
        qc.x(4)
    with qc.if_test(expr.logic_not(qc.clbits[1])) as otherwise:
        qc.h(3)
    with otherwise:
        qc.measure(2, 1)  # a conditional measurement, in the else-branch
    qc.measure([0, 4], [2, 3])
    return qc


CIRCUITS = [
    ("teleportation", teleportation()),
    ("repeat-until-success", repeat_until_success(3)),
    ("mid-circuit reset", mid_circuit_reset()),
    ("conditioned X and switch", conditioned_x_across(4)),
    ("parity feed-forward", _parity_feed_forward()),
]


@pytest.mark.parametrize("circuit", [c for _, c in CIRCUITS], ids=[n for n, _ in CIRCUITS])
def test_deferred_measurement_equals_branch_enumeration(circuit: QuantumCircuit) -> None:
    _agrees(circuit)


@pytest.mark.parametrize("seed", range(8))
def test_random_dynamic_circuits_equal_branch_enumeration(seed: int) -> None:
    circuit = random_circuit(4, 5, measure=True, conditional=True, reset=True, seed=seed)
    _agrees(circuit)


def test_sampled_counts_pass_and_a_dropped_correction_fails() -> None:
    circuit = teleportation(theta=1.2)
    counts = AerSimulator().run(circuit, shots=4000, seed_simulator=3).result().get_counts()
    good = verify_counts(circuit, counts, 0.95)
    assert good.method == "deferred measurement"
    assert good.hellinger_fidelity >= good.threshold > 0.8
    broken = circuit.copy_empty_like()
    for inst in circuit.data:  # the Z correction lost: q2's X-basis outcome flips when m0 = 1
        if not (inst.operation.name == "if_else" and "z" in inst.operation.blocks[0].count_ops()):
            broken.append(inst)
    wrong = AerSimulator().run(broken, shots=4000, seed_simulator=3).result().get_counts()
    bad = verify_counts(circuit, wrong, 0.95)
    assert bad.hellinger_fidelity < bad.threshold


def test_beyond_the_qubit_bound_the_reason_is_given() -> None:
    width = MAX_DEFERRED_QUBITS - 3
    qc = QuantumCircuit(width, 8)
    qc.h(range(width))
    for k in range(4):  # mid-circuit: every qubit is acted on again afterwards
        qc.measure(k, k)
        qc.h(k)
    qc.measure(range(4), range(4, 8))
    reason = dynamic_probabilities(qc)
    assert isinstance(reason, str)
    assert f"more than {MAX_DEFERRED_QUBITS} qubits" in reason
    assert unverifiable(qc) == reason
    assert verify_counts(qc, {"0" * 8: 10}, 1.0).method == reason


def test_a_loop_over_the_limit_is_unverifiable_with_the_loop_reason() -> None:
    qc = QuantumCircuit(1, 1)
    with qc.for_loop(range(5000)):
        qc.x(0)
    qc.measure(0, 0)
    assert "maxForLoopIterations" in unverifiable(qc)


MQT = [("ghz_dynamic", 6), ("dynamic_qft", 5), ("iqpe", 4), ("seven_qubit_steane_code", 13)]


@pytest.mark.parametrize(("name", "size"), MQT, ids=[f"{n}-{s}" for n, s in MQT])
def test_mqt_bench_dynamic_circuits_equal_branch_enumeration(name: str, size: int) -> None:
    bench = pytest.importorskip("mqt.bench")
    _agrees(bench.get_benchmark(name, bench.BenchmarkLevel.INDEP, size))
