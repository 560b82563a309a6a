"""Stabilizer verification: Clifford circuits of any width, checked without listing outcomes."""

from collections import Counter
from types import SimpleNamespace
from typing import cast

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit.random import random_clifford_circuit
from qiskit.quantum_info import Pauli, Statevector, hellinger_fidelity, random_clifford

from qorch.pipeline.strategies.cut import CutWork
from qorch.pipeline.verification import (
    AffineDistribution,
    exact_distribution,
    stabilizer_distribution,
    verify_counts,
    verify_distribution,
)
from qorch.planner.cutting import CutPlan, exact_expectations


def measured(body: QuantumCircuit, qubits, clbits, num_clbits: int) -> QuantumCircuit:
    qc = QuantumCircuit(body.num_qubits, num_clbits)
    qc.compose(body, qubits=range(body.num_qubits), inplace=True)
    for q, c in zip(qubits, clbits, strict=True):
        qc.measure(int(q), int(c))
    return qc


def random_case(seed: int) -> QuantumCircuit:
    """A random Clifford circuit of 1 to 12 qubits measuring some or all of them into
    shuffled clbits, with clbits left unmeasured now and then."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 13))
    if seed % 2:
        body = random_clifford_circuit(n, int(rng.integers(0, 3 * n + 1)), seed=seed)
    else:
        body = random_clifford(n, seed=seed).to_circuit()
    qubits = rng.permutation(n)[: int(rng.integers(1, n + 1))]
    num_clbits = len(qubits) + int(rng.integers(0, 3))
    clbits = rng.permutation(num_clbits)[: len(qubits)]
    return measured(body, qubits, clbits, num_clbits)


def ghz(n: int, layers: int = 0, seed: int = 0) -> QuantumCircuit:
    """GHZ on n qubits, then `layers` of random S, Sdg, H and CZ, all measured."""
    rng = np.random.default_rng(seed)
    qc = QuantumCircuit(n, n)
    qc.h(0)
    for q in range(n - 1):
        qc.cx(q, q + 1)
    for _ in range(layers):
        for q in range(n):
            [qc.s, qc.sdg, qc.h, lambda _: None][int(rng.integers(4))](q)
        for q in range(0, n - 1, 2):
            if rng.random() < 0.5:
                qc.cz(q, q + 1)
    qc.measure(range(n), range(n))
    return qc


def sample(dist: AffineDistribution, shots: int, seed: int = 0) -> dict[str, int]:
    """Counts of an ideal run: uniform free bits pick uniform outcomes of the support."""
    free = np.random.default_rng(seed).integers(0, 2, (shots, dist.dimension))
    return dict(Counter(dist.outcomes(free)))


@pytest.mark.parametrize("seed", range(60))
def test_stabilizer_distribution_equals_the_statevector_one(seed):
    qc = random_case(seed)
    dist = stabilizer_distribution(qc)
    assert dist is not None
    listed = dist.as_dict()
    exact = exact_distribution(qc)
    assert exact is not None
    assert set(listed) == set(exact)
    assert listed == pytest.approx(exact, abs=1e-12)
    every = [format(i, f"0{qc.num_clbits}b") for i in range(1 << qc.num_clbits)]
    assert [key for key, inside in zip(every, dist.contains(every), strict=True) if inside] == (
        sorted(exact)
    )


def test_a_qubit_read_into_two_clbits_gives_both_the_same_bit():
    body = QuantumCircuit(2)
    body.h(0)
    body.cx(0, 1)
    qc = measured(body, [0, 0, 1], [2, 0, 1], 4)
    dist = stabilizer_distribution(qc)
    assert dist is not None
    assert dist.as_dict() == {"0000": 0.5, "0111": 0.5}
    assert exact_distribution(qc) == pytest.approx(dist.as_dict())
    assert list(dist.contains(["0111", "0011", "0101", "1111", "011", "01x1"])) == [
        True,
        False,
        False,
        False,
        False,
        False,
    ]


def test_wide_ghz_passes_ideal_counts_and_fails_a_flipped_bit():
    qc = ghz(1000)
    good = verify_counts(qc, {"0" * 1000: 520, "1" * 1000: 480}, estimated_fidelity=0.9)
    assert good.method == "stabilizer"
    assert good.hellinger_fidelity == pytest.approx(
        hellinger_fidelity({"a": 520, "b": 480}, {"a": 1, "b": 1})
    )
    assert good.threshold == pytest.approx(0.9 - 1 / 4000 - 0.05)
    flipped = verify_counts(qc, {"0" * 999 + "1": 520, "1" * 1000: 480}, estimated_fidelity=0.9)
    assert flipped.hellinger_fidelity == pytest.approx(0.48 / 2)
    assert flipped.hellinger_fidelity < flipped.threshold


def test_fidelity_and_threshold_match_the_listed_distribution_beyond_statevector_width():
    # 40 qubits, partly measured: too wide for a statevector, few enough outcomes to list.
    rng = np.random.default_rng(3)
    body = ghz(40, layers=2, seed=3).remove_final_measurements(inplace=False)
    qubits = rng.permutation(40)[:14]
    qc = measured(body, qubits, rng.permutation(16)[:14], 16)
    assert exact_distribution(qc) is None
    dist = stabilizer_distribution(qc)
    assert dist is not None and 2 <= dist.dimension <= 12
    listed = dist.as_dict()
    weights = {key: n * 0.37 for key, n in sample(dist, 3000).items()}  # a float distribution
    weights["1" * 16] = 40.0  # outside the support: a clbit that is never measured reads 1
    got = verify_distribution(qc, weights, 3000, estimated_fidelity=0.95)
    assert got.method.startswith("stabilizer")
    assert got.hellinger_fidelity == pytest.approx(hellinger_fidelity(weights, listed), abs=1e-6)
    expected_threshold = max(0.0, 0.95 - (len(listed) - 1) / (4 * 3000) - 0.05)
    assert got.threshold == pytest.approx(expected_threshold, abs=1e-6)


def test_thousands_of_equally_likely_outcomes_say_the_check_is_weak():
    qc = ghz(400, layers=3, seed=1)
    dist = stabilizer_distribution(qc)
    assert dist is not None and dist.dimension > 100
    got = verify_counts(qc, sample(dist, 100), estimated_fidelity=0.9)
    assert got.method.startswith("stabilizer; weak check: threshold 0")
    assert f"2^{dist.dimension} exact outcomes" in got.method
    assert "1.0000 of the weight is on exact outcomes" in got.method
    assert got.threshold == 0.0 and got.hellinger_fidelity == 0.0


def test_wide_circuits_that_are_not_clifford_or_not_final_are_not_verified():
    non_clifford = QuantumCircuit(30, 30)
    non_clifford.h(0)
    non_clifford.t(0)
    non_clifford.measure(range(30), range(30))
    assert stabilizer_distribution(non_clifford) is None
    assert verify_counts(non_clifford, {"0" * 30: 10}, 1.0).method.startswith(
        "none; 30 non-Clifford qubits"
    )
    mid = QuantumCircuit(30, 30)
    mid.h(0)
    mid.measure(0, 0)
    mid.cx(0, 1)
    mid.measure(range(30), range(30))
    assert stabilizer_distribution(mid) is None


def test_quasi_probabilities_are_refused():
    with pytest.raises(ValueError, match="non-negative"):
        verify_distribution(ghz(30), {"0" * 30: 0.6, "1" * 30: 0.5, "0" * 29 + "1": -0.1}, 100, 1.0)


@pytest.mark.parametrize("seed", range(5))
def test_stabilizer_expectation_values_equal_statevector_ones(seed):
    rng = np.random.default_rng(seed)
    clifford = random_clifford(8, seed=seed)
    qc = clifford.to_circuit()
    observables = ["".join(rng.choice(list("IXYZ"), 8)) for _ in range(6)]
    observables.append(clifford.to_labels(mode="S")[0][1:])  # a stabilizer, without its sign
    state = Statevector(qc)
    expected = [float(state.expectation_value(Pauli(obs)).real) for obs in observables]
    exact = exact_expectations(qc, observables, max_statevector_qubits=0)
    assert exact is not None and exact[0] == "stabilizer"
    assert exact[1] == pytest.approx(expected, abs=1e-9)


def test_wide_clifford_expectations_verify_a_cut_result():
    n = 60
    qc = ghz(n, layers=0)
    observables = ["Z" + "I" * (n - 2) + "Z", "X" * n, "I" * (n - 1) + "Z"]
    knitting = cast(CutPlan, SimpleNamespace(observables=observables))
    got = CutWork(qc, knitting).verify([0.97, 0.95, 0.02], [0.01, 0.01, 0.01], 0.98)
    assert got.method == "stabilizer"
    assert got.absolute_error == pytest.approx(0.05)
    assert exact_expectations(qc, observables, max_statevector_qubits=20) == (
        "stabilizer",
        [1.0, 1.0, 0.0],
    )
    non_clifford = QuantumCircuit(n)
    non_clifford.h(0)
    non_clifford.t(0)
    assert exact_expectations(non_clifford, observables, max_statevector_qubits=20) is None
    got = CutWork(non_clifford, knitting).verify([0.97, 0.95, 0.02], [0.01] * 3, 0.98)
    assert got.method == "none"
