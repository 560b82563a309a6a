"""The LOCC wire-cut decomposition: the weighted measure-and-prepare channels are exactly the
identity channel (superoperators and Choi matrices, from the very basis circuits the
subexperiments use), gamma = 2^(n+1) - 1, and the subexperiments knit back exactly."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit.random import random_circuit
from qiskit.quantum_info import Choi, Operator, Statevector, SuperOp

from qorch.planner.cutting import exact_expectation_values
from qorch.planner.locc import (
    Shots,
    bases,
    basis_circuit,
    coefficient,
    find_wire_cuts,
    gamma,
    lo_gamma,
    plan_locc_cut,
    shift_probabilities,
)


def measure_and_prepare(wires: int, k: int, r: int) -> SuperOp:
    """M_{k,r}: measure in basis k (U_k^+ then Z), prepare U_k |i xor r>."""
    d = 2**wires
    u = Operator(basis_circuit(wires, k)).data
    kraus = []
    for i in range(d):
        ket_in, ket_out = np.zeros(d), np.zeros(d)
        ket_in[i], ket_out[i ^ r] = 1, 1
        kraus.append(u @ np.outer(ket_out, ket_in) @ u.conj().T)
    return SuperOp(sum(np.kron(np.conj(K), K) for K in kraus))


def terms(wires: int) -> list[tuple[float, SuperOp]]:
    return [
        (coefficient(wires, r), measure_and_prepare(wires, k, r))
        for k in range(bases(wires))
        for r in range(2**wires)
    ]


@pytest.mark.parametrize("wires", [1, 2])
def test_the_weighted_channels_are_the_identity_channel(wires: int) -> None:
    d = 2**wires
    total = sum(c * channel.data for c, channel in terms(wires))
    np.testing.assert_allclose(total, np.eye(d * d), atol=1e-12)
    choi = sum(c * Choi(channel).data for c, channel in terms(wires))
    omega = np.zeros(d * d)
    omega[:: d + 1] = 1  # sum_i |ii>, unnormalised
    np.testing.assert_allclose(choi, np.outer(omega, omega), atol=1e-12)


@pytest.mark.parametrize("wires", [1, 2])
def test_gamma_is_two_to_the_n_plus_one_minus_one(wires: int) -> None:
    cs = [c for c, _ in terms(wires)]
    assert sum(abs(c) for c in cs) == pytest.approx(gamma(wires))
    assert gamma(wires) == {1: 3, 2: 7}[wires]
    assert lo_gamma(wires) == {1: 4, 2: 16}[wires]
    assert sum(cs) == pytest.approx(1.0)  # trace preserving overall
    np.testing.assert_allclose(shift_probabilities(wires).sum(), 1.0)


@pytest.mark.parametrize("wires", [1, 2])
def test_each_term_is_a_channel_and_the_bases_are_mutually_unbiased(wires: int) -> None:
    d = 2**wires
    for _, channel in terms(wires):
        assert channel.is_cptp()
    vectors = [Operator(basis_circuit(wires, k)).data for k in range(bases(wires))]
    for a, b in itertools.combinations(vectors, 2):
        overlaps = np.abs(a.conj().T @ b) ** 2
        np.testing.assert_allclose(overlaps, np.full((d, d), 1 / d), atol=1e-12)


def test_a_wrong_coefficient_breaks_the_identity() -> None:
    """The check above can fail: without the negative terms the sum is not the identity."""
    total = sum(c * ch.data for c, ch in terms(1) if c > 0)
    assert not np.allclose(total, np.eye(4), atol=1e-3)


def _probabilities(circuit: QuantumCircuit) -> dict[str, float]:
    """Exact outcome probabilities of a circuit with final measurements only."""
    unitary = circuit.remove_final_measurements(inplace=False)
    probs = Statevector(unitary).probabilities_dict()
    out: dict[str, float] = {}
    measured = [
        (circuit.find_bit(i.qubits[0]).index, circuit.find_bit(i.clbits[0]).index)
        for i in circuit.data
        if i.operation.name == "measure"
    ]
    for key, p in probs.items():
        bits = ["0"] * circuit.num_clbits
        for q, c in measured:
            bits[circuit.num_clbits - 1 - c] = key[len(key) - 1 - q]
        label = "".join(bits)
        out[label] = out.get(label, 0.0) + p
    return out


def _exact_knit(plan, observable: int) -> float:
    """sum_k sum_r c_{k,r} sum_i P_s(i, s) s P_r(q | prep i^r) q, exactly."""
    n, d = plan.wires, 2**plan.wires
    label = plan.observables[observable]
    kept = [q for q in plan.cut.sender_qubits if q not in plan.cut.wires]
    [g] = [g for g, grp in enumerate(plan.groups) if observable in grp.members]
    total = 0.0
    for k in range(bases(n)):
        sender = _probabilities(plan.sender_circuits[g * bases(n) + k])
        for key, p in sender.items():
            i = plan.cut_bits(key)
            s = (-1) ** sum(
                key[len(key) - 1 - (n + j)] == "1"
                for j, q in enumerate(kept)
                if label[-1 - q] != "I"
            )
            for r in range(d):
                receiver = _probabilities(plan.receiver_circuits[(g * bases(n) + k) * d + (i ^ r)])
                q_mean = sum(
                    pq
                    * (-1)
                    ** sum(
                        kq[len(kq) - 1 - j] == "1"
                        for j, q in enumerate(plan.cut.receiver_qubits)
                        if label[-1 - q] != "I"
                    )
                    for kq, pq in receiver.items()
                )
                total += coefficient(n, r) * p * s * q_mean
    return total


@pytest.mark.parametrize("seed", [3, 11])
def test_the_subexperiments_knit_back_exactly(seed: int) -> None:
    """Sender and receiver circuits, as sent to the agents, give the exact expectation values
    when their exact distributions are knitted with the coefficients."""
    first = random_circuit(3, 3, max_operands=2, seed=seed)
    circuit = QuantumCircuit(5)
    circuit.compose(first, qubits=[0, 1, 2], inplace=True)
    circuit.cx(2, 3)
    circuit.compose(random_circuit(3, 3, max_operands=2, seed=seed + 1), [2, 3, 4], inplace=True)
    observables = ["ZZIZZ", "XIXII", "YZZXI", "IIZIZ"]
    cut = find_wire_cuts(circuit)[0]
    assert len(cut.wires) == 1
    plan = plan_locc_cut(circuit, observables, "a", "b", cut)
    exact = exact_expectation_values(circuit, observables)
    for o in range(len(observables)):
        assert _exact_knit(plan, o) == pytest.approx(exact[o], abs=1e-9)


def test_two_wires_knit_back_exactly() -> None:
    circuit = QuantumCircuit(4)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.ry(0.7, 1)
    circuit.t(0)
    circuit.cx(0, 2)
    circuit.cx(1, 3)
    circuit.cx(2, 3)
    circuit.rx(0.3, 2)
    observables = ["ZZZZ", "XXXX", "IYZX"]
    cut = next(c for c in find_wire_cuts(circuit) if len(c.wires) == 2)
    plan = plan_locc_cut(circuit, observables, "a", "b", cut)
    assert plan.gamma == 7 and plan.sampling_overhead == 49
    exact = exact_expectation_values(circuit, observables)
    for o in range(len(observables)):
        assert _exact_knit(plan, o) == pytest.approx(exact[o], abs=1e-9)


def test_reconstruct_from_shots_is_the_per_shot_mean() -> None:
    circuit = QuantumCircuit(3)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.cx(1, 2)
    plan = plan_locc_cut(circuit, ["ZZZ"], "a", "b", find_wire_cuts(circuit)[0])
    assert plan.cut.wires == (1,) and plan.num_subexperiments == 3
    # Every shot gives +gamma (r = 0, even parities on both sides).
    shots = [Shots(["0 0"] * 4, [0] * 4, ["00"] * 4) for _ in range(plan.num_subexperiments)]
    values, errors = plan.reconstruct(shots)
    assert values == [pytest.approx(3.0)] and errors == [pytest.approx(0.0)]
    with pytest.raises(ValueError, match="subexperiments returned"):
        plan.reconstruct(shots[:1])


def test_the_estimate_is_unbiased_and_its_standard_error_calibrated() -> None:
    """Shots drawn from the exact distributions of the subexperiments, as the agents would
    produce them (stratified shifts): over 300 seeded repetitions the z-scores against the
    exact value have mean 0 and spread 1 (bounds at about 4 standard errors each)."""
    from qorch.qpu.peer import stratified_shifts

    circuit = QuantumCircuit(4)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.ry(0.7, 1)
    circuit.cx(1, 2)
    circuit.cx(1, 3)
    circuit.rx(0.4, 3)
    observables = ["ZIZZ", "IXXX"]
    plan = plan_locc_cut(circuit, observables, "a", "b", find_wire_cuts(circuit)[0])
    exact = exact_expectation_values(circuit, observables)
    d = 2**plan.wires
    senders = [_probabilities(c) for c in plan.sender_circuits]
    receivers = [_probabilities(c) for c in plan.receiver_circuits]
    rng = np.random.default_rng(2024)
    p = shift_probabilities(plan.wires)
    z = []
    for _ in range(300):
        shots = []
        for index, dist in enumerate(senders):
            keys = list(dist)
            sent = [keys[j] for j in rng.choice(len(keys), size=200, p=list(dist.values()))]
            shifts = stratified_shifts(200, p, rng)
            received = []
            for outcome, r in zip(sent, shifts, strict=True):
                variant = receivers[index * d + (plan.cut_bits(outcome) ^ int(r))]
                rkeys = list(variant)
                received.append(rkeys[rng.choice(len(rkeys), p=list(variant.values()))])
            shots.append(Shots(sent, [int(r) for r in shifts], received))
        values, errors = plan.reconstruct(shots)
        z.append([(v - e) / s for v, e, s in zip(values, exact, errors, strict=True)])
    scores = np.array(z)
    assert np.all(np.abs(scores.mean(axis=0)) < 0.25), scores.mean(axis=0)
    assert np.all(np.abs(scores.std(axis=0) - 1) < 0.2), scores.std(axis=0)
