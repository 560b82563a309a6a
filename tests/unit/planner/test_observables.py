"""Expectation values from measurement bases: grouped, rotated, and right."""

import pytest
from qiskit import QuantumCircuit
from qiskit_aer import AerSimulator

from qorch.planner.cutting import exact_expectation_values
from qorch.planner.observables import expectation, expectation_values, measurement_bases


def entangled() -> QuantumCircuit:
    qc = QuantumCircuit(3, 3)
    qc.h(0)
    qc.cx(0, 1)
    qc.ry(0.7, 2)
    qc.cx(1, 2)
    qc.rx(0.4, 0)
    qc.s(1)
    qc.measure(range(3), range(3))
    return qc


OBSERVABLES = ["ZZI", "XXI", "IYZ", "ZII", "XYZ", "IIZ", "YYI", "IXX"]


def test_qubit_wise_commuting_observables_share_a_basis():
    bases = measurement_bases(entangled(), OBSERVABLES)
    assert sorted(i for b in bases for i in b.observables) == list(range(len(OBSERVABLES)))
    assert len(bases) < len(OBSERVABLES)
    for basis in bases:
        letters = {}
        for i in basis.observables:
            for q, letter in enumerate(reversed(OBSERVABLES[i])):
                if letter != "I":
                    assert letters.setdefault(q, letter) == letter  # one basis per qubit
        assert basis.circuit.num_clbits == 3


def test_values_from_sampled_bases_match_the_exact_ones():
    circuit = entangled()
    bases = measurement_bases(circuit, OBSERVABLES)
    sim = AerSimulator()
    shots = 40_000
    counts = [
        sim.run(b.circuit, shots=shots, seed_simulator=11).result().get_counts() for b in bases
    ]
    values, errors = expectation_values(bases, counts, OBSERVABLES)
    exact = exact_expectation_values(circuit, OBSERVABLES)
    assert any(abs(e) > 0.3 for e in exact)  # not a test of zeros
    for v, err, e in zip(values, errors, exact, strict=True):
        assert abs(v - e) <= 4 * err + 1e-9, (v, e, err)
        assert 0 < err < 0.01


def test_parity_and_standard_error_of_one_pauli():
    value, error = expectation({"00": 75, "11": 25, "01": 0}, "ZZ")
    assert value == 1.0 and error == 0.0
    value, error = expectation({"00": 50, "01": 50}, "IZ")
    assert value == 0.0 and error == pytest.approx(0.1)


def test_a_circuit_measuring_mid_way_has_no_bases():
    qc = QuantumCircuit(2, 2)
    qc.h(0)
    qc.measure(0, 0)
    qc.cx(0, 1)
    qc.measure(1, 1)
    with pytest.raises(ValueError, match="mid-circuit"):
        measurement_bases(qc, ["ZZ"])
