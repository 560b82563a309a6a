"""Probing an entanglement link: heralded generation, then Bell pairs measured in two bases.

Each Bell pair takes a geometric number of attempts (success probability p per attempt, at
the link's generation rate), and arrives as a Werner state of the link's fidelity F. Half
of the pairs are measured in ZZ, half in XX, each end with its node's readout error. For a
Werner state <ZZ> = <XX> = (4F - 1) / 3, so F = (1 + 3 <P>) / 4 for the mean parity <P>.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from qiskit import QuantumCircuit
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel, ReadoutError

from .composite_noise import werner_error


@dataclass(frozen=True)
class ProbeResult:
    measured_fidelity: float
    attempts: int
    successes: int
    mean_generation_seconds: float
    fidelity_std_error: float

    @property
    def success_rate(self) -> float:
        return self.successes / self.attempts


def _pair_circuit(fidelity: float, basis: str) -> QuantumCircuit:
    qc = QuantumCircuit(2, 2)
    qc.h(0)
    qc.cx(0, 1)
    qc.append(werner_error(fidelity), [1])
    if basis == "xx":
        qc.h([0, 1])
    qc.measure([0, 1], [0, 1])
    return qc


def _readout_model(readout_errors: tuple[float, float]) -> NoiseModel:
    model = NoiseModel()
    for qubit, p in enumerate(readout_errors):
        if p:
            model.add_readout_error(ReadoutError([[1 - p, p], [p, 1 - p]]), [qubit])
    return model


def _parity(counts: dict[str, int]) -> float:
    total = sum(counts.values())
    return sum(n if key.count("1") % 2 == 0 else -n for key, n in counts.items()) / total


def probe(
    fidelity: float,
    success_probability: float,
    generation_rate_hz: float,
    pairs: int,
    readout_errors: tuple[float, float] = (0.0, 0.0),
    seed: int | None = None,
) -> ProbeResult:
    """Generate and measure `pairs` Bell pairs on a link with these properties."""
    rng = np.random.default_rng(seed)
    attempts = rng.geometric(success_probability, size=pairs)
    simulator = AerSimulator(noise_model=_readout_model(readout_errors))
    half = max(1, pairs // 2)
    parities = []
    for basis in ("zz", "xx"):
        result = simulator.run(
            _pair_circuit(fidelity, basis), shots=half, seed_simulator=seed
        ).result()
        parities.append(_parity(result.get_counts()))
    mean = sum(parities) / 2
    # Each parity is a mean of +-1 outcomes over `half` pairs.
    std_parity = float(np.sqrt(sum(1 - p * p for p in parities) / (4 * half)))
    return ProbeResult(
        measured_fidelity=(1 + 3 * mean) / 4,
        attempts=int(attempts.sum()),
        successes=pairs,
        mean_generation_seconds=float(attempts.mean() / generation_rate_hz),
        fidelity_std_error=0.75 * std_parity,
    )


def expected_fidelity(fidelity: float, readout_errors: tuple[float, float]) -> float:
    """What the probe should measure on a healthy link: readout errors shrink each parity
    by (1 - 2 r) per end."""
    shrink = (1 - 2 * readout_errors[0]) * (1 - 2 * readout_errors[1])
    return (1 + (4 * fidelity - 1) * shrink) / 4
