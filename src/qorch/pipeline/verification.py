"""Verify measured counts against an exact classical simulation where that is tractable."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from qiskit import QuantumCircuit
from qiskit.quantum_info import Statevector, hellinger_fidelity

from qorch.api.distributed_job import Verification

# Statevector of 2^n amplitudes: 20 qubits is 16 MiB, cheap next to the sampling itself.
MAX_STATEVECTOR_QUBITS = 20
VERIFY_SLACK = 0.05

N = TypeVar("N", int, float)


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


def flatten(counts: Mapping[str, N]) -> dict[str, N]:
    """Counts keyed by one bitstring over all clbits (Qiskit separates registers by spaces)."""
    flat: dict[str, N] = {}
    for key, n in counts.items():
        k = key.replace(" ", "")
        flat[k] = flat[k] + n if k in flat else n
    return flat


def verify_counts(
    circuit: QuantumCircuit, counts: dict[str, int], estimated_fidelity: float | None
) -> Verification:
    """Hellinger fidelity to the exact distribution, and the threshold it is judged against.

    Measurement cannot lower fidelity, so the classical fidelity of the output distribution
    is at least the state fidelity, which the plan estimates as F. Finite sampling lowers
    the empirical Hellinger fidelity by about (K - 1) / (4 N) for K outcomes and N shots;
    a further 0.05 absorbs the roughness of the estimate of F.
    """
    return verify_distribution(circuit, counts, sum(counts.values()), estimated_fidelity)


def verify_distribution(
    circuit: QuantumCircuit,
    distribution: Mapping[str, float],
    shots: int,
    estimated_fidelity: float | None,
) -> Verification:
    """`verify_counts` for outcome weights that are not counts (a mitigated distribution,
    normalised or not) drawn from `shots` shots."""
    exact = exact_distribution(circuit)
    if exact is None:
        return Verification(method="none")
    fidelity = estimated_fidelity if estimated_fidelity is not None else 1.0
    threshold = fidelity - (len(exact) - 1) / (4 * shots) - VERIFY_SLACK
    return Verification(
        method="statevector",
        hellinger_fidelity=round(hellinger_fidelity(flatten(distribution), exact), 6),
        threshold=round(max(0.0, threshold), 6),
    )
