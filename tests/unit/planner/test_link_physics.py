"""The physics of heralded, aged and purified pairs against density-matrix computations."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.quantum_info import DensityMatrix, Kraus, SuperOp, partial_trace

from qorch.api import NoiseSpec
from qorch.planner.link_physics import (
    BellDiagonal,
    MemoryDecay,
    PurificationError,
    PurificationPolicy,
    aged,
    bbpssw_round,
    dejmps_round,
    geometric_mean_decay,
    heralding_wait,
    purify,
)
from qorch.qpu.composite_noise import BellPairNoise, MemoryFactors, bell_pair_error

S = 1 / math.sqrt(2)
#: Bell states on (first, second) qubit, qiskit's little-endian order (first is qubit 0).
BELL = {
    "phi_plus": np.array([S, 0, 0, S]),
    "phi_minus": np.array([S, 0, 0, -S]),
    "psi_plus": np.array([0, S, S, 0]),
    "psi_minus": np.array([0, S, -S, 0]),
}
STATES = [
    BellDiagonal(0.7, 0.1, 0.15, 0.05),
    BellDiagonal(0.9, 0.02, 0.05, 0.03),
    BellDiagonal(0.55, 0.2, 0.1, 0.15),
    BellDiagonal.werner(0.8),
    BellDiagonal.werner(0.51),
]


def density(state: BellDiagonal) -> DensityMatrix:
    return DensityMatrix(sum(getattr(state, k) * np.outer(v, v) for k, v in BELL.items()))


def weights(rho: DensityMatrix | np.ndarray) -> BellDiagonal:
    data = rho.data if isinstance(rho, DensityMatrix) else rho
    w = {k: float(np.real(v @ data @ v)) for k, v in BELL.items()}
    return BellDiagonal(**w)


def relaxation_kraus(population: float, coherence: float) -> Kraus:
    """The relaxation with these factors, written from its definition: amplitude damping with
    gamma = 1 - population, then pure dephasing down to the coherence."""
    gamma = 1 - population
    damping = [
        np.array([[1, 0], [0, math.sqrt(1 - gamma)]]),
        np.array([[0, math.sqrt(gamma)], [0, 0]]),
    ]
    lam = coherence / math.sqrt(population)
    dephasing = [np.diag([1, lam]), np.diag([0, math.sqrt(1 - lam**2)])]
    return Kraus(damping).compose(Kraus(dephasing))


def close(a: BellDiagonal, b: BellDiagonal, tol: float) -> bool:
    return all(
        abs(getattr(a, k) - getattr(b, k)) <= tol
        for k in ("phi_plus", "phi_minus", "psi_plus", "psi_minus")
    )


# -- memory --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "decay"),
    list(itertools.product(STATES[:3], [(0.9, 0.85), (0.5, 0.3), (0.2, 0.2), (1.0, 0.6)])),
)
def test_aging_one_half_matches_the_density_matrix(
    state: BellDiagonal, decay: tuple[float, float]
) -> None:
    population, coherence = decay
    channel = relaxation_kraus(population, coherence)
    for half in (0, 1):  # which half waits does not change the Bell-diagonal weights
        rho = density(state).evolve(channel, qargs=[half])
        assert close(aged(state, MemoryDecay(population, coherence)), weights(rho), 1e-12)


def test_the_werner_fidelity_after_aging_has_its_closed_form() -> None:
    for f, e1, e2 in itertools.product([0.6, 0.9, 1.0], [0.3, 0.8], [0.2, 0.5]):
        e2 = min(e2, math.sqrt(e1))
        expected = (f * (1 + e1 + 2 * e2) + (1 - f) * (3 - e1 - 2 * e2) / 3) / 4
        assert aged(BellDiagonal.werner(f), MemoryDecay(e1, e2)).fidelity == pytest.approx(
            expected, abs=1e-12
        )


def test_the_expected_decay_is_the_mean_over_the_geometric_wait() -> None:
    rate, p, t = 2e4, 0.3, 80.0  # 50 us per attempt, T = 80 us
    series = sum(p * (1 - p) ** (n - 1) * math.exp(-n / (rate * t * 1e-6)) for n in range(1, 400))
    assert geometric_mean_decay(t, rate, p) == pytest.approx(series, abs=1e-12)
    # Sampled with a seeded generator, the mean agrees within its standard error.
    rng = np.random.default_rng(7)
    waits = rng.geometric(p, 200_000) / rate
    samples = np.exp(-waits / (t * 1e-6))
    err = samples.std() / math.sqrt(len(samples))
    assert abs(samples.mean() - geometric_mean_decay(t, rate, p)) < 4 * err


def test_the_wait_uses_the_nodes_t1_and_t2_and_nothing_without_t1() -> None:
    noise = NoiseSpec(t1_microseconds=100, t2_microseconds=60)
    decay = heralding_wait(noise, 1e5, 0.5)
    assert decay.population == pytest.approx(geometric_mean_decay(100, 1e5, 0.5))
    assert decay.coherence == pytest.approx(geometric_mean_decay(60, 1e5, 0.5))
    assert decay.coherence**2 <= decay.population
    assert heralding_wait(NoiseSpec(), 1e5, 0.5).is_identity()
    # A slower link leaves the waiting half longer in memory.
    assert heralding_wait(noise, 1e3, 0.5).coherence < decay.coherence


def test_the_agents_marker_channel_gives_the_planners_pair() -> None:
    """What the agent applies (Werner or Bell-diagonal weights, then the relaxation) leaves
    the Bell-diagonal weights the planner computed."""
    memory = MemoryDecay(0.7, 0.6)
    for f in (0.8, 0.95):
        marker = BellPairNoise(
            label="qorch_bell_0",
            link="a-b",
            fidelity=f,
            qubits=[0],
            memory=MemoryFactors(population_decay=0.7, coherence_decay=0.6),
        )
        error = bell_pair_error(marker)
        assert error is not None
        rho = density(BellDiagonal(1, 0, 0, 0)).evolve(SuperOp(error), qargs=[1])
        assert close(weights(rho), aged(BellDiagonal.werner(f), memory), 1e-9)
    state = STATES[0]
    px, py, pz = state.paulis()
    marker = BellPairNoise(
        label="qorch_bell_0", link="a-b", fidelity=state.fidelity, qubits=[0], paulis=[px, py, pz]
    )
    error = bell_pair_error(marker)
    assert error is not None
    rho = density(BellDiagonal(1, 0, 0, 0)).evolve(SuperOp(error), qargs=[0])
    assert close(weights(rho), state, 1e-12)


# -- purification --------------------------------------------------------------------------


def _bilateral(state: BellDiagonal, rotate: bool) -> tuple[BellDiagonal, float]:
    """One round on two copies, computed on 4 qubits (A1 B1 A2 B2): optional DEJMPS rotations,
    bilateral CNOTs from pair 1 to pair 2, both halves of pair 2 measured, kept when equal."""
    pair = density(state)
    rho = pair.tensor(pair)  # pair 1 on qubits 0 (A1), 1 (B1); pair 2 on 2 (A2), 3 (B2)
    qc = QuantumCircuit(4)
    if rotate:
        qc.rx(math.pi / 2, [0, 2])  # Alice
        qc.rx(-math.pi / 2, [1, 3])  # Bob
    qc.cx(0, 2)
    qc.cx(1, 3)
    data = rho.evolve(qc).data
    kept = np.zeros((4, 4), dtype=complex)
    for outcome in (0, 1):
        keep = np.diag(
            [1.0 if (i >> 2) & 1 == outcome and (i >> 3) & 1 == outcome else 0.0 for i in range(16)]
        )
        kept += partial_trace(DensityMatrix(keep @ data @ keep), [2, 3]).data
    success = float(np.real(np.trace(kept)))
    return weights(kept / success), success


@pytest.mark.parametrize("state", STATES)
def test_dejmps_matches_bilateral_cnots_on_the_density_matrix(state: BellDiagonal) -> None:
    out, success = dejmps_round(state)
    want, want_success = _bilateral(state, rotate=True)
    assert success == pytest.approx(want_success, abs=1e-9)
    assert close(out, want, 1e-9)


@pytest.mark.parametrize("fidelity", [0.51, 0.6, 0.75, 0.9, 0.99])
def test_bbpssw_matches_bilateral_cnots_on_twirled_pairs(fidelity: float) -> None:
    out, success = bbpssw_round(fidelity)
    want, want_success = _bilateral(BellDiagonal.werner(fidelity), rotate=False)
    assert success == pytest.approx(want_success, abs=1e-9)
    assert out == pytest.approx(want.fidelity, abs=1e-9)


def test_rounds_consume_two_pairs_each_and_improve_fidelity() -> None:
    raw = BellDiagonal.werner(0.8)
    for protocol in ("dejmps", "bbpssw"):
        one = purify(raw, protocol, 1)
        two = purify(raw, protocol, 2)
        assert raw.fidelity < one.state.fidelity < two.state.fidelity
        (p1,) = one.success_probabilities
        assert one.raw_pairs == pytest.approx(2 / p1)
        q1, q2 = two.success_probabilities
        assert two.raw_pairs == pytest.approx(2 * (2 / q1) / q2)
        assert two.success_probability == pytest.approx(q1 * q2)
    # DEJMPS keeps the Bell-diagonal weights, so it beats BBPSSW from the second round on.
    assert purify(raw, "dejmps", 2).state.fidelity > purify(raw, "bbpssw", 2).state.fidelity
    assert purify(raw, None, 0).state == raw


@pytest.mark.parametrize("fidelity", [0.5, 0.4, 0.3])
def test_purification_refuses_pairs_at_or_below_one_half(fidelity: float) -> None:
    for protocol in ("dejmps", "bbpssw"):
        with pytest.raises(PurificationError, match="cannot converge"):
            purify(BellDiagonal.werner(fidelity), protocol, 1)


def test_policy_options_fewest_rounds_first() -> None:
    assert PurificationPolicy("dejmps", None, 2).options() == [
        (None, 0),
        ("dejmps", 1),
        ("dejmps", 2),
    ]
    assert PurificationPolicy("auto", 1).options() == [("dejmps", 1), ("bbpssw", 1)]
    assert PurificationPolicy("bbpssw", 0).options() == [(None, 0)]
