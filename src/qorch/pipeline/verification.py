"""Verify measured counts against an exact classical simulation where that is tractable."""

from __future__ import annotations

import math

from qiskit import QuantumCircuit
from qiskit.quantum_info import Statevector

from qorch.api.distributed_job import Verification

# Statevector of 2^n amplitudes: 20 qubits is 16 MiB, cheap next to the sampling itself.
MAX_STATEVECTOR_QUBITS = 20


def _final_measurements(circuit: QuantumCircuit) -> dict[int, int] | None:
    """clbit -> qubit for a circuit whose only measurements come last; None otherwise."""
    measured: dict[int, int] = {}
    done: set[int] = set()
    for inst in circuit.data:
        name = inst.operation.name
        qubits = [circuit.find_bit(q).index for q in inst.qubits]
        if name == "measure":
            measured[circuit.find_bit(inst.clbits[0]).index] = qubits[0]
            done.add(qubits[0])
        elif name == "barrier":
            continue
        elif name in ("reset", "delay") or inst.operation.name in (
            "if_else",
            "while_loop",
            "for_loop",
            "switch_case",
        ):
            return None
        elif done.intersection(qubits):
            return None  # a gate after a measurement: mid-circuit measurement
    return measured


def exact_distribution(circuit: QuantumCircuit) -> dict[str, float] | None:
    """Exact outcome probabilities over all clbits (clbit 0 rightmost), when tractable."""
    measured = _final_measurements(circuit)
    if measured is None or not measured or circuit.num_qubits > MAX_STATEVECTOR_QUBITS:
        return None
    state = Statevector(circuit.remove_final_measurements(inplace=False))
    order = sorted(measured)  # clbits that carry a measurement
    probs = state.probabilities_dict(qargs=[measured[c] for c in order])
    out: dict[str, float] = {}
    for key, p in probs.items():
        if p < 1e-12:
            continue
        bits = ["0"] * circuit.num_clbits
        for i, clbit in enumerate(order):
            bits[circuit.num_clbits - 1 - clbit] = key[len(order) - 1 - i]
        out["".join(bits)] = out.get("".join(bits), 0.0) + p
    return out


def total_variation(counts: dict[str, int], exact: dict[str, float]) -> float:
    """TVD between the empirical distribution of `counts` and `exact`."""
    shots = sum(counts.values())
    flat = {}
    for key, n in counts.items():
        k = key.replace(" ", "")
        flat[k] = flat.get(k, 0) + n / shots
    keys = flat.keys() | exact.keys()
    return 0.5 * sum(abs(flat.get(k, 0.0) - exact.get(k, 0.0)) for k in keys)


def verify_counts(
    circuit: QuantumCircuit, counts: dict[str, int], estimated_fidelity: float | None
) -> Verification:
    """Distance to the exact distribution, and the tolerance it is judged against.

    The tolerance adds the two effects an honest run shows: device noise, bounded through
    Fuchs-van de Graaf by sqrt(1 - F) for the estimated fidelity F, and sampling error,
    which for K outcomes and N shots stays below sqrt(K / N).
    """
    exact = exact_distribution(circuit)
    if exact is None:
        return Verification(method="none")
    shots = sum(counts.values())
    fidelity = estimated_fidelity if estimated_fidelity is not None else 1.0
    tolerance = math.sqrt(max(0.0, 1 - fidelity)) + math.sqrt(len(exact) / shots)
    return Verification(
        method="statevector",
        distance=round(total_variation(counts, exact), 6),
        tolerance=round(min(1.0, tolerance), 6),
    )
