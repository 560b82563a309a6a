"""Verification against the exact distribution: what is tractable, and how it is judged."""

from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister

from qorch.pipeline.verification import exact_distribution, verify_counts


def bell() -> QuantumCircuit:
    qc = QuantumCircuit(2, 2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure([0, 1], [0, 1])
    return qc


def test_exact_distribution_follows_clbits_across_registers():
    q = QuantumRegister(2)
    a, b = ClassicalRegister(1, "a"), ClassicalRegister(2, "b")
    qc = QuantumCircuit(q, a, b)
    qc.x(0)
    qc.measure(q[0], b[1])  # qubit 0 (|1>) lands in clbit 2, the leftmost
    qc.measure(q[1], a[0])
    assert exact_distribution(qc) == {"100": 1.0}


def test_mid_circuit_measurement_and_feed_forward_are_verified_by_deferred_measurement():
    qc = QuantumCircuit(2, 2)
    qc.h(0)
    qc.measure(0, 0)
    with qc.if_test((qc.clbits[0], 1)):
        qc.x(1)
    qc.measure(1, 1)
    assert exact_distribution(qc) is None  # final measurements only
    got = verify_counts(qc, {"00": 5, "11": 5}, 1.0)
    assert got.method == "deferred measurement" and got.hellinger_fidelity == 1.0


def test_ideal_counts_pass_and_wrong_counts_fail():
    good = verify_counts(bell(), {"00": 510, "11": 490}, estimated_fidelity=0.95)
    assert good.hellinger_fidelity > 0.999 and good.hellinger_fidelity >= good.threshold
    bad = verify_counts(bell(), {"01": 500, "10": 500}, estimated_fidelity=0.95)
    assert bad.hellinger_fidelity == 0.0 and bad.hellinger_fidelity < bad.threshold


def test_threshold_loosens_with_the_estimated_noise():
    tight = verify_counts(bell(), {"00": 500, "11": 500}, 0.99).threshold
    loose = verify_counts(bell(), {"00": 500, "11": 500}, 0.70).threshold
    assert loose < tight


def test_more_outcomes_than_shots_can_resolve_are_reported_as_a_weak_check():
    qc = QuantumCircuit(10, 10)
    qc.h(range(10))
    qc.measure(range(10), range(10))
    got = verify_counts(qc, {"0" * 10: 60, "1" * 10: 40}, estimated_fidelity=0.95)
    assert got.threshold == 0.0
    assert got.method.startswith("statevector; weak check: threshold 0")
    assert "1024 exact outcomes and 100 shots" in got.method
    assert verify_counts(bell(), {"00": 50, "11": 50}, 0.95).method == "statevector"


def test_array_verification_equals_the_dictionary_hellinger_fidelity():
    """Against Statevector.probabilities_dict and Qiskit's hellinger_fidelity, on random
    circuits whose clbits read qubits in any order, some twice, some never."""
    import numpy as np
    from qiskit.circuit.random import random_circuit
    from qiskit.quantum_info import Statevector, hellinger_fidelity

    rng = np.random.default_rng(3)
    for seed in range(12):
        unitary = random_circuit(5, 6, seed=seed)
        qc = QuantumCircuit(5, 7)
        qc.compose(unitary, inplace=True)
        reads = [int(q) for q in rng.permutation(5)[:4]]
        reads.append(reads[0])  # one qubit read by two clbits
        clbits = [int(c) for c in rng.permutation(7)[:5]]  # two clbits never written
        for q, c in zip(reads, clbits, strict=True):
            qc.measure(q, c)
        probs = Statevector(unitary).probabilities_dict(qargs=sorted(set(reads)))
        exact: dict[str, float] = {}
        order = sorted(set(reads))
        for key, p in probs.items():
            bits = ["0"] * 7
            for q, c in zip(reads, clbits, strict=True):
                bits[6 - c] = key[len(order) - 1 - order.index(q)]
            exact["".join(bits)] = exact.get("".join(bits), 0.0) + p
        keys = [*exact, "1" * 7, "0" * 7]  # outcomes that cannot occur, too
        counts = {k: int(n) for k, n in zip(keys, rng.integers(1, 50, len(keys)), strict=True)}

        got = verify_counts(qc, counts, 1.0)

        assert got.method.startswith("statevector")
        assert abs(got.hellinger_fidelity - hellinger_fidelity(counts, exact)) < 1e-6
