"""Fidelity estimates: the product of the survival probabilities of every noisy operation."""

from __future__ import annotations

import math
from dataclasses import dataclass

from qiskit import QuantumCircuit

from qorch.api.quantum_node import NoiseSpec


@dataclass(frozen=True)
class GateProfile:
    """How much noisy work a circuit does, counted once and reused per candidate node."""

    one_qubit: int
    two_qubit: int
    measurements: int
    depth: int

    @classmethod
    def of(cls, circuit: QuantumCircuit) -> GateProfile:
        one = two = meas = 0
        for inst in circuit.data:
            name = inst.operation.name
            if name == "measure":
                meas += 1
            elif name in ("barrier", "delay", "reset"):
                continue
            elif len(inst.qubits) >= 2:
                two += 1
            else:
                one += 1
        return cls(one, two, meas, circuit.depth())


def estimate_fidelity(profile: GateProfile, noise: NoiseSpec) -> float:
    """Probability that no error occurs: gates, readout, and decoherence over the run time."""
    f = (1 - (noise.single_qubit_error or 0)) ** profile.one_qubit
    f *= (1 - (noise.two_qubit_error or 0)) ** profile.two_qubit
    f *= (1 - (noise.readout_error or 0)) ** profile.measurements
    t2 = noise.t2_microseconds or (2 * noise.t1_microseconds if noise.t1_microseconds else None)
    if t2:
        layer_ns = max(
            noise.two_qubit_gate_nanoseconds or 0, noise.single_qubit_gate_nanoseconds or 0
        )
        duration_us = (profile.depth * layer_ns + (noise.measure_nanoseconds or 0)) / 1e3
        f *= math.exp(-duration_us / t2)
    return max(0.0, min(1.0, f))


def dephasing_time_us(noise: NoiseSpec) -> float | None:
    """T2, or 2*T1 when only T1 is known (relaxation-limited), or None without either."""
    if noise.t2_microseconds:
        return noise.t2_microseconds
    return 2 * noise.t1_microseconds if noise.t1_microseconds else None


def idle_survival(noise: NoiseSpec, microseconds: float) -> float:
    """Probability that waiting this long (e.g. for a feed-forward message) does no harm.

    The same exp(-t/T2) per circuit that `estimate_fidelity` charges for its run time.
    """
    t2 = dephasing_time_us(noise)
    if not t2 or microseconds <= 0:
        return 1.0
    return math.exp(-microseconds / t2)


def bell_pair_survival(fidelity: float, pairs: int) -> float:
    """Each Bell pair of fidelity F carries its gate through unharmed with probability ~F.

    A Werner pair errs with X, Y or Z each (1-F)/3; all three corrupt a remote CNOT (X on the
    target side, Z through the disentangling measurement onto the control).
    """
    return fidelity**pairs
