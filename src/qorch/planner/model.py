"""What the planner knows of the world: nodes with free qubits and links, as plain values.

The pipeline fills these from the API objects (Ready nodes, Up links), so the planner stays a
pure function of its inputs and never reads a resource itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from qorch.api import EntanglementLink, QuantumNode
from qorch.api.quantum_node import NoiseSpec

from .link_physics import PurificationPolicy


@dataclass(frozen=True)
class NodeSlot:
    """A node as the planner sees it: how many qubits it can give this job, and how noisy."""

    name: str
    free_qubits: int
    noise: NoiseSpec
    basis_gates: tuple[str, ...]
    # Where `noise` comes from: "declared" (the spec) or "calibrated" (qorch.pipeline.figures).
    figures: str = "declared"

    @classmethod
    def of(cls, node: QuantumNode, free_qubits: int | None = None) -> NodeSlot:
        """From a QuantumNode; `free_qubits` defaults to all of its qubits."""
        free = node.spec.qubits if free_qubits is None else free_qubits
        return cls(node.metadata.name, free, node.spec.noise, tuple(node.spec.basis_gates))


@dataclass(frozen=True)
class LinkSlot:
    """A link as the planner sees it: Bell-pair quality, supply rate and feed-forward latency.

    `classical_latency_us` is the link's physical latency, the only one charged as idle
    decoherence; `measured_latency_us`, the classical path between the agents as measured,
    counts only towards the time of a job whose messages take that path (an LOCC cut's).
    `figures` says where fidelity and rates come from: "declared" or "measured"
    (qorch.pipeline.figures).
    """

    name: str
    a: str
    b: str
    fidelity: float
    generation_rate_hz: float
    success_probability: float
    classical_latency_us: float
    purification: PurificationPolicy | None = None
    measured_latency_us: float | None = None
    figures: str = "declared"

    @classmethod
    def of(cls, link: EntanglementLink) -> LinkSlot:
        spec = link.spec
        return cls(
            name=link.metadata.name,
            a=spec.nodes[0],
            b=spec.nodes[1],
            fidelity=spec.fidelity,
            generation_rate_hz=spec.generation_rate_hz,
            success_probability=spec.success_probability,
            classical_latency_us=spec.classical_latency_microseconds,
            purification=_policy(link),
        )

    @property
    def expected_attempts_per_pair(self) -> float:
        """Heralded generation: attempts are Bernoulli trials, so 1/p of them per success."""
        return 1.0 / self.success_probability

    @property
    def seconds_per_pair(self) -> float:
        """Expected time to herald one Bell pair at the link's attempt rate."""
        return self.expected_attempts_per_pair / self.generation_rate_hz

    def joins(self, x: str, y: str) -> bool:
        return {x, y} == {self.a, self.b}


def _policy(link: EntanglementLink) -> PurificationPolicy | None:
    spec = link.spec.purification
    if spec is None:
        return None
    return PurificationPolicy(spec.protocol, spec.rounds, spec.max_rounds)
