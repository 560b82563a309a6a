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


def dephasing_time_us(noise: NoiseSpec) -> float | None:
    """T2, or 2*T1 when only T1 is known (relaxation-limited), or None without either."""
    if noise.t2_microseconds:
        return noise.t2_microseconds
    return 2 * noise.t1_microseconds if noise.t1_microseconds else None


def idle_survival(noise: NoiseSpec, microseconds: float) -> float:
    """Probability that waiting this long (e.g. for a feed-forward message) does no harm.

    The same exp(-t/T2) that `fidelity_factors` charges a circuit for its run time.
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


#: Work the noise model charges nothing for: frame changes, markers, and bookkeeping.
_FREE = frozenset({"rz", "p", "u1", "id", "barrier", "delay", "reset", "initialize"})


def noisy_profile(circuit: QuantumCircuit, qubits: set[int] | None = None) -> GateProfile:
    """The work that carries error in the Aer noise model: gates that are not frame changes
    (`rz` is virtual) and measurements, inside feed-forward blocks too; optionally only the
    instructions confined to `qubits`. Count it on the circuit as the node runs it (in its
    basis) so that strategies compare on equal terms.
    """
    counts = [0, 0, 0]

    def confined(indices: list[int]) -> bool:
        return qubits is None or all(q in qubits for q in indices)

    def walk(block: QuantumCircuit, outer: list[int]) -> None:
        for inst in block.data:
            indices = [outer[block.find_bit(q).index] for q in inst.qubits]
            blocks = getattr(inst.operation, "blocks", None)
            if blocks:
                for body in blocks:
                    walk(body, indices)
                continue
            if inst.operation.name in _FREE or not confined(indices):
                continue
            if inst.operation.name == "measure":
                counts[2] += 1
            else:
                counts[0 if len(indices) == 1 else 1] += 1

    walk(circuit, list(range(circuit.num_qubits)))

    def counted(inst: object) -> bool:
        op, bits = inst.operation, inst.qubits  # type: ignore[attr-defined]
        return op.name not in _FREE and confined([circuit.find_bit(q).index for q in bits])

    return GateProfile(counts[0], counts[1], counts[2], circuit.depth(counted))


def loses_nothing(noise: NoiseSpec) -> bool:
    """Whether every factor of `fidelity_factors` is 1 whatever the circuit: no error rate,
    no T1 or T2."""
    errors = (noise.single_qubit_error, noise.two_qubit_error, noise.readout_error)
    return not any(errors) and not dephasing_time_us(noise)


def fidelity_factors(profile: GateProfile, noise: NoiseSpec) -> dict[str, float]:
    """Probability that no error occurs, split by source: gates, readout, and decoherence over
    the run time. The factors multiply to the estimate."""
    factors = {
        "one-qubit gates": (1 - (noise.single_qubit_error or 0)) ** profile.one_qubit,
        "two-qubit gates": (1 - (noise.two_qubit_error or 0)) ** profile.two_qubit,
        "readout": (1 - (noise.readout_error or 0)) ** profile.measurements,
    }
    t2 = dephasing_time_us(noise)
    if t2:
        layer_ns = max(
            noise.two_qubit_gate_nanoseconds or 0, noise.single_qubit_gate_nanoseconds or 0
        )
        duration_us = (profile.depth * layer_ns + (noise.measure_nanoseconds or 0)) / 1e3
        factors["decoherence"] = math.exp(-duration_us / t2)
    return factors
