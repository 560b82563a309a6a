"""Probing an entanglement link: heralded generation, then Bell pairs measured in two bases.

Each Bell pair takes a geometric number of attempts (success probability p per attempt, at
the link's generation rate), and arrives as a Werner state of the link's fidelity F. Half
of the pairs are measured in ZZ, half in XX, each end with its node's readout error. A pair
*agrees* when its two outcomes have the parity a perfect pair gives (even, for Phi+). For a
Werner state <ZZ> = <XX> = (4F - 1) / 3, and each end's readout error r shrinks a parity by
(1 - 2r); so from `k` agreements out of `n` pairs

    P = 2 k / n - 1,    F = 1/4 + 3/4 * P / ((1 - 2 r_a)(1 - 2 r_b)).

The agreements are a binomial count: the Wilson score interval of k / n, mapped through the
same (monotone) formula, is the confidence interval of F (`fidelity_interval`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from qiskit import QuantumCircuit
from qiskit_aer.noise import NoiseModel, ReadoutError

from .aer import bounded_simulator
from .composite_noise import werner_error

#: Standard normal quantile of the intervals probes state: 3 sigma, 99.73% two-sided.
Z = 3.0
CONFIDENCE = 0.9973


@dataclass(frozen=True)
class ProbeResult:
    measured_fidelity: float
    attempts: int
    successes: int
    mean_generation_seconds: float
    fidelity_std_error: float
    agreements: int = 0

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


def _agreements(counts: dict[str, int]) -> int:
    return sum(n for key, n in counts.items() if key.count("1") % 2 == 0)


def probe(
    fidelity: float,
    success_probability: float,
    generation_rate_hz: float,
    pairs: int,
    readout_errors: tuple[float, float] = (0.0, 0.0),
    seed: int | None = None,
) -> ProbeResult:
    """Generate and measure `pairs` Bell pairs on a link with these properties. The
    measured fidelity is as read, readout errors included (see `fidelity_interval`)."""
    rng = np.random.default_rng(seed)
    attempts = rng.geometric(success_probability, size=pairs)
    simulator = bounded_simulator(noise_model=_readout_model(readout_errors))
    agreements = 0
    for basis, shots in (("zz", pairs - pairs // 2), ("xx", pairs // 2)):
        if shots:
            # Aer seeds shot i with seed + i: seeds drawn far apart keep the two halves, and
            # consecutive probes, independent.
            basis_seed = None if seed is None else int(rng.integers(2**31))
            result = simulator.run(
                _pair_circuit(fidelity, basis), shots=shots, seed_simulator=basis_seed
            ).result()
            agreements += _agreements(result.get_counts())
    p = agreements / pairs
    return ProbeResult(
        measured_fidelity=(3 * p - 1) / 2,
        attempts=int(attempts.sum()),
        successes=pairs,
        mean_generation_seconds=float(attempts.mean() / generation_rate_hz),
        fidelity_std_error=1.5 * math.sqrt(p * (1 - p) / pairs),
        agreements=agreements,
    )


def wilson_interval(k: int, n: int, z: float = Z) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion k / n."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def pair_fidelity(agreement: float, readout_errors: tuple[float, float]) -> float:
    """The pairs' own fidelity from the fraction that agreed, readout errors taken out;
    clamped to [0, 1] (sampling may carry it a little past either end)."""
    shrink = (1 - 2 * readout_errors[0]) * (1 - 2 * readout_errors[1])
    if shrink <= 0:
        return 0.25  # the readout says nothing of the pairs
    return max(0.0, min(1.0, 0.25 + 0.75 * (2 * agreement - 1) / shrink))


def fidelity_interval(
    agreements: int,
    pairs: int,
    readout_errors: tuple[float, float],
    z: float = Z,
    readout_std_error: float = 0.0,
) -> tuple[float, float, float]:
    """Estimate, lower and upper bound of the pairs' fidelity from a probe's agreements.
    With `readout_std_error` (of readout errors that were themselves measured), the bounds
    also take the readout errors `z` standard errors lower and higher: a larger readout
    error takes more out, so it lifts the fidelity."""
    low, high = wilson_interval(agreements, pairs, z)
    estimate = pair_fidelity(agreements / pairs if pairs else 0.5, readout_errors)
    spread = z * readout_std_error
    less = (max(0.0, readout_errors[0] - spread), max(0.0, readout_errors[1] - spread))
    more = (min(0.5, readout_errors[0] + spread), min(0.5, readout_errors[1] + spread))
    return estimate, pair_fidelity(low, less), pair_fidelity(high, more)


def expected_fidelity(fidelity: float, readout_errors: tuple[float, float]) -> float:
    """What the probe should read on a healthy link: readout errors shrink each parity
    by (1 - 2 r) per end."""
    shrink = (1 - 2 * readout_errors[0]) * (1 - 2 * readout_errors[1])
    return (1 + (4 * fidelity - 1) * shrink) / 4
