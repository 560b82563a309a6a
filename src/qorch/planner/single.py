"""The `single` strategy: the whole circuit on the one node that fits with the best fidelity."""

from __future__ import annotations

from dataclasses import dataclass

from qorch.api import QuantumNode

from .fidelity import GateProfile, estimate_fidelity


@dataclass(frozen=True)
class Candidate:
    node: QuantumNode
    estimated_fidelity: float


def rank_single(
    nodes: list[QuantumNode], width: int, profile: GateProfile, free: dict[str, int]
) -> tuple[list[Candidate], list[str]]:
    """Nodes able to hold the whole circuit, best first, and why the others cannot."""
    fits: list[Candidate] = []
    why_not: list[str] = []
    for node in nodes:
        name = node.metadata.name
        if node.spec.qubits < width:
            why_not.append(f"{name} has {node.spec.qubits} qubits, the circuit needs {width}")
            continue
        if free.get(name, node.spec.qubits) < width:
            why_not.append(f"{name} has {free.get(name, 0)} free qubits now")
            continue
        fits.append(Candidate(node, estimate_fidelity(profile, node.spec.noise)))
    fits.sort(key=lambda c: (-c.estimated_fidelity, c.node.metadata.name))
    return fits, why_not
